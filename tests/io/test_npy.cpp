// .npy reader/writer: round trips, versions 1.0/2.0/3.0, byte orders, Fortran order,
// bool, and rejection of bad files with errors that name them.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ewe/io/npy.hpp"

using namespace ewe;
using namespace ewe::io;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_npy_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir;
}

// A .npy file from a header dict and raw data bytes (header padded to 64 bytes).
void write_raw(const fs::path& path, int major, std::string dict, const std::string& data) {
    const std::size_t prefix = major == 1 ? 10 : 12;
    std::size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
    dict.append(total - prefix - dict.size() - 1, ' ');
    dict += '\n';
    std::string head = "\x93NUMPY";
    head += static_cast<char>(major);
    head += '\0';
    const std::size_t len = dict.size();
    for (std::size_t b = 0; b < prefix - 8; ++b) head += static_cast<char>((len >> (8 * b)) & 0xff);
    std::ofstream out(path, std::ios::binary);
    out << head << dict << data;
}

template <class T>
std::string bytes_of(const std::vector<T>& v, bool big_endian = false) {
    std::string s(v.size() * sizeof(T), '\0');
    std::memcpy(s.data(), v.data(), s.size());
    if (big_endian)
        for (std::size_t i = 0; i < v.size(); ++i) std::reverse(s.begin() + i * sizeof(T), s.begin() + (i + 1) * sizeof(T));
    return s;
}

std::string error_of(const fs::path& path) {
    try {
        read_npy(path);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("round trip for every dtype") {
    const fs::path dir = temp_dir();
    const std::vector<float> f = {1.5f, -2, 3, 4, 5, 6};
    write_npy(dir / "f.npy", f.data(), Shape{2, 3});
    NpyArray a = read_npy(dir / "f.npy");
    CHECK(a.dtype == DType::f32);
    CHECK(a.shape == Shape{2, 3});
    const Tensor<double> t = npy_to_tensor<double>(a, "f.npy");
    CHECK(t[0] == 1.5);
    CHECK(t[5] == 6);

    const std::vector<double> d = {0.25, 1e300};
    write_npy(dir / "d.npy", d.data(), Shape{2});
    CHECK(npy_to_tensor<double>(read_npy(dir / "d.npy"), "d")[1] == 1e300);

    const std::vector<std::int32_t> i32 = {-1, 7, 2147483647};
    write_npy(dir / "i.npy", i32.data(), Shape{3, 1});
    a = read_npy(dir / "i.npy");
    CHECK(a.dtype == DType::i32);
    CHECK(npy_to_tensor<double>(a, "i")[2] == 2147483647.0);

    const std::vector<std::int64_t> i64 = {-5, 1ll << 40};
    write_npy(dir / "l.npy", i64.data(), Shape{1, 1, 2});
    CHECK(read_npy(dir / "l.npy").shape == Shape{1, 1, 2});
    CHECK(npy_to_tensor<double>(read_npy(dir / "l.npy"), "l")[1] == static_cast<double>(1ll << 40));

    const std::vector<std::uint8_t> u8 = {0, 255};
    write_npy(dir / "u.npy", u8.data(), Shape{2});
    CHECK(npy_to_tensor<float>(read_npy(dir / "u.npy"), "u")[1] == 255.0f);

    // Empty and rank-0 arrays.
    write_npy<float>(dir / "e.npy", nullptr, Shape{0, 4});
    CHECK(read_npy(dir / "e.npy").shape == Shape{0, 4});
    const float scalar = 42;
    write_npy(dir / "s.npy", &scalar, Shape{});
    CHECK(read_npy(dir / "s.npy").shape.rank() == 0);
    CHECK(npy_to_tensor<float>(read_npy(dir / "s.npy"), "s")[0] == 42.0f);

    // The header is padded to 64 bytes and no temporary file is left behind.
    CHECK((fs::file_size(dir / "f.npy") - 24) % 64 == 0);
    for (const auto& entry : fs::directory_iterator(dir)) CHECK(entry.path().extension() == ".npy");
    fs::remove_all(dir);
}

TEST_CASE("versions, byte orders, Fortran order, bool") {
    const fs::path dir = temp_dir();
    const std::vector<double> v = {1, 2, 3, 4, 5, 6};
    write_raw(dir / "v2.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", bytes_of(v));
    write_raw(dir / "v3.npy", 3, "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (6,)}", bytes_of(v));
    write_raw(dir / "be.npy", 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", bytes_of(v, true));
    const std::vector<std::int32_t> iv = {1, -2, 3};
    write_raw(dir / "bei.npy", 1, "{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }", bytes_of(iv, true));
    // Fortran order: column-major storage of [[1, 2, 3], [4, 5, 6]] is 1 4 2 5 3 6.
    const std::vector<float> fortran = {1, 4, 2, 5, 3, 6};
    write_raw(dir / "f.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", bytes_of(fortran));
    // 3-D Fortran: element (i, j, k) at i + 2j + 4k for shape (2, 2, 2).
    std::vector<float> f3(8);
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
            for (int k = 0; k < 2; ++k) f3[i + 2 * j + 4 * k] = static_cast<float>(100 * i + 10 * j + k);
    write_raw(dir / "f3.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2, 2), }", bytes_of(f3));
    write_raw(dir / "b.npy", 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", std::string("\x01\x00\x01", 3));

    for (const char* name : {"v2.npy", "be.npy"}) {
        const Tensor<double> t = npy_to_tensor<double>(read_npy(dir / name), name);
        CHECK(t.shape() == Shape{2, 3});
        for (int i = 0; i < 6; ++i) CHECK(t[i] == v[i]);
    }
    CHECK(read_npy(dir / "v3.npy").shape == Shape{6});
    const Tensor<double> bi = npy_to_tensor<double>(read_npy(dir / "bei.npy"), "bei");
    CHECK(bi[1] == -2);
    const Tensor<float> f = npy_to_tensor<float>(read_npy(dir / "f.npy"), "f");
    for (int i = 0; i < 6; ++i) CHECK(f[i] == static_cast<float>(i + 1));
    const Tensor<float> g = npy_to_tensor<float>(read_npy(dir / "f3.npy"), "f3");
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
            for (int k = 0; k < 2; ++k) CHECK(g[4 * i + 2 * j + k] == static_cast<float>(100 * i + 10 * j + k));
    const NpyArray b = read_npy(dir / "b.npy");
    CHECK(b.dtype == DType::boolean);  // not uint8: a bool array is no 0..255 data
    CHECK(std::string(to_string(b.dtype)) == "bool");
    CHECK(npy_to_tensor<double>(b, "b")[2] == 1);
    fs::remove_all(dir);
}

TEST_CASE("bad files are rejected with the file named") {
    const fs::path dir = temp_dir();
    const std::vector<float> v = {1, 2, 3, 4};
    write_raw(dir / "complex.npy", 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", bytes_of(v));
    write_raw(dir / "string.npy", 1, "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", std::string(12, 'a'));
    write_raw(dir / "object.npy", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", std::string(8, '\0'));
    write_raw(dir / "struct.npy", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", bytes_of(v));
    write_raw(dir / "short.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", bytes_of(v));
    write_raw(dir / "long.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", bytes_of(v));
    write_raw(dir / "huge.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", bytes_of(v));
    write_raw(dir / "big.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }", bytes_of(v));
    write_raw(dir / "version.npy", 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", bytes_of(v));
    write_raw(dir / "garbage.npy", 1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4,), }", bytes_of(v));
    write_raw(dir / "nokey.npy", 1, "{'descr': '<f4', 'shape': (4,), }", bytes_of(v));
    { std::ofstream(dir / "text.npy") << "hello, this is not numpy"; }
    { std::ofstream(dir / "tiny.npy") << "\x93NU"; }
    {
        // Header length pointing past the end of the file.
        std::ofstream out(dir / "cut.npy", std::ios::binary);
        out << std::string("\x93NUMPY\x01\x00\xff\x7f", 10) << "{'descr'";
    }
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"complex.npy", "<c8"},    {"string.npy", "<U3"},      {"object.npy", "|O"},   {"struct.npy", "structured"},
        {"short.npy", "truncated"}, {"long.npy", "trailing"},  {"huge.npy", "overflow"}, {"big.npy", "800000000000 bytes"},
        {"version.npy", "4.0"},    {"garbage.npy", "True or False"}, {"nokey.npy", "fortran_order"},
        {"text.npy", "magic"},     {"tiny.npy", "at least 10 bytes"}, {"cut.npy", "header"}, {"missing.npy", "does not exist"}};
    for (const auto& [name, expected] : cases) {
        CAPTURE(name);
        const std::string message = error_of(dir / name);
        CHECK(message.find(name) != std::string::npos);
        CHECK(message.find(expected) != std::string::npos);
    }
    fs::remove_all(dir);
}

TEST_CASE("write to a folder that does not exist fails cleanly") {
    const float x = 1;
    CHECK_THROWS_AS(write_npy("/nonexistent_folder_ewe/x.npy", &x, Shape{1}), Error);
}
