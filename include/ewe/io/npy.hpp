// NumPy .npy files: read (format versions 1.0, 2.0, 3.0; either byte order; C or
// Fortran order) and write (version 1.0, or 2.0 for very long headers; C order,
// little-endian; atomically, see ewe/io/atomic_file.hpp), following
// numpy/lib/format.py ("NEP 1"). Bool arrays read as DType::boolean (0 or 1 per
// byte), never as uint8: a reader that wants numbers converts them explicitly
// (npy_to_tensor) or refuses them. Errors are ewe::Error.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/io/atomic_file.hpp"
#include "ewe/io/files.hpp"

namespace ewe::io {

enum class DType { u8, boolean, i32, i64, f32, f64 };

inline std::size_t dtype_size(DType t) {
    switch (t) {
        case DType::u8: return 1;
        case DType::boolean: return 1;
        case DType::i32: return 4;
        case DType::i64: return 8;
        case DType::f32: return 4;
        case DType::f64: return 8;
    }
    return 0;
}

inline const char* to_string(DType t) {
    switch (t) {
        case DType::u8: return "uint8";
        case DType::boolean: return "bool";
        case DType::i32: return "int32";
        case DType::i64: return "int64";
        case DType::f32: return "float32";
        case DType::f64: return "float64";
    }
    return "?";
}

template <class T>
constexpr DType dtype_of() {
    if constexpr (std::is_same_v<T, std::uint8_t>) return DType::u8;
    else if constexpr (std::is_same_v<T, std::int32_t>) return DType::i32;
    else if constexpr (std::is_same_v<T, std::int64_t>) return DType::i64;
    else if constexpr (std::is_same_v<T, float>) return DType::f32;
    else if constexpr (std::is_same_v<T, double>) return DType::f64;
    else static_assert(sizeof(T) == 0, "ewe::io: npy element type must be uint8, int32, int64, float or double");
}

// The contents of a .npy file: host bytes in C order and native byte order.
struct NpyArray {
    DType dtype = DType::f32;
    Shape shape;
    std::vector<std::byte> bytes;

    std::int64_t numel() const { return shape.numel(); }
};

namespace detail {

// A minimal reader for the Python dict literal of a .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
struct NpyHeaderParser {
    std::string_view s;
    std::size_t i = 0;
    const std::string& file;

    [[noreturn]] void bad(const std::string& what) const {
        fail("read_npy: ", file, ": malformed header (", what, " at offset ", i, "): ", std::string(s));
    }
    void skip_ws() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    }
    bool peek(char c) {
        skip_ws();
        return i < s.size() && s[i] == c;
    }
    void expect(char c) {
        if (!peek(c)) bad(std::string("expected '") + c + "'");
        ++i;
    }
    std::string string_literal() {
        skip_ws();
        if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) bad("expected a quoted string");
        const char quote = s[i++];
        const std::size_t start = i;
        while (i < s.size() && s[i] != quote) ++i;
        if (i >= s.size()) bad("unterminated string");
        return std::string(s.substr(start, i++ - start));
    }
    bool boolean() {
        skip_ws();
        if (s.substr(i, 4) == "True") { i += 4; return true; }
        if (s.substr(i, 5) == "False") { i += 5; return false; }
        bad("expected True or False");
    }
    std::vector<std::int64_t> int_tuple() {
        std::vector<std::int64_t> dims;
        expect('(');
        while (!peek(')')) {
            skip_ws();
            const std::size_t start = i;
            std::int64_t v = 0;
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
                const int digit = s[i] - '0';
                if (v > (std::numeric_limits<std::int64_t>::max() - digit) / 10) bad("dimension overflows int64");
                v = v * 10 + digit;
                ++i;
            }
            if (i < s.size() && s[i] == 'L') ++i;  // Python 2 long suffix
            if (i == start) bad("expected a non-negative integer dimension");
            dims.push_back(v);
            if (peek(',')) ++i;
            else if (!peek(')')) bad("expected ',' or ')'");
        }
        expect(')');
        return dims;
    }
};

inline void byteswap_inplace(std::byte* p, std::size_t count, std::size_t item) {
    for (std::size_t e = 0; e < count; ++e, p += item) std::reverse(p, p + item);
}

}  // namespace detail

// Reads a whole .npy file. Throws ewe::Error naming `path` on anything unexpected:
// a missing file, a bad magic string, an unsupported dtype (complex, strings,
// objects, structured), a shape whose byte size disagrees with the file size.
inline NpyArray read_npy(const std::filesystem::path& path) {
    const std::string file = path.string();
    const std::uintmax_t file_size = require_file(path, "read_npy");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("read_npy: cannot open ", file);

    char preamble[12];
    if (file_size < 10 || !in.read(preamble, 10))
        fail("read_npy: ", file, ": expected a .npy file (at least 10 bytes), found ", file_size, " bytes");
    if (std::memcmp(preamble, "\x93NUMPY", 6) != 0)
        fail("read_npy: ", file, ": expected the magic string \\x93NUMPY, found something else (not a .npy file)");
    const int major = static_cast<unsigned char>(preamble[6]);
    const int minor = static_cast<unsigned char>(preamble[7]);
    std::uint64_t header_len = 0;
    std::uint64_t prefix = 0;
    if (major == 1) {
        header_len = static_cast<unsigned char>(preamble[8]) | (static_cast<unsigned char>(preamble[9]) << 8);
        prefix = 10;
    } else if (major == 2 || major == 3) {
        if (!in.read(preamble + 10, 2)) fail("read_npy: ", file, ": truncated header");
        for (int b = 3; b >= 0; --b) header_len = (header_len << 8) | static_cast<unsigned char>(preamble[8 + b]);
        prefix = 12;
    } else {
        fail("read_npy: ", file, ": expected format version 1.0, 2.0 or 3.0, found ", major, ".", minor);
    }
    if (minor != 0) fail("read_npy: ", file, ": expected format version ", major, ".0, found ", major, ".", minor);
    if (prefix + header_len > file_size)
        fail("read_npy: ", file, ": header claims ", header_len, " bytes but the file has only ", file_size);
    std::string header(header_len, '\0');
    if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) fail("read_npy: ", file, ": truncated header");

    detail::NpyHeaderParser p{header, 0, file};
    std::string descr;
    bool fortran = false, have_descr = false, have_order = false, have_shape = false;
    std::vector<std::int64_t> dims;
    p.expect('{');
    while (!p.peek('}')) {
        const std::string key = p.string_literal();
        p.expect(':');
        if (key == "descr") {
            if (!p.peek('\'') && !p.peek('"'))
                fail("read_npy: ", file, ": expected a simple numeric dtype, found a structured dtype");
            descr = p.string_literal();
            have_descr = true;
        } else if (key == "fortran_order") {
            fortran = p.boolean();
            have_order = true;
        } else if (key == "shape") {
            dims = p.int_tuple();
            have_shape = true;
        } else {
            p.bad("unexpected key '" + key + "'");
        }
        if (p.peek(',')) ++p.i;
        else if (!p.peek('}')) p.bad("expected ',' or '}'");
    }
    if (!have_descr || !have_order || !have_shape)
        fail("read_npy: ", file, ": header must have 'descr', 'fortran_order' and 'shape', found: ", header);

    // dtype: byte order + kind + item size.
    if (descr.size() < 3) fail("read_npy: ", file, ": expected a dtype like '<f4', found '", descr, "'");
    const char order = descr[0];
    const std::string kind = descr.substr(1);
    if (order != '<' && order != '>' && order != '|' && order != '=')
        fail("read_npy: ", file, ": expected byte order '<', '>' or '|' in dtype, found '", descr, "'");
    NpyArray out;
    if (kind == "u1") out.dtype = DType::u8;
    else if (kind == "b1") out.dtype = DType::boolean;
    else if (kind == "i4") out.dtype = DType::i32;
    else if (kind == "i8") out.dtype = DType::i64;
    else if (kind == "f4") out.dtype = DType::f32;
    else if (kind == "f8") out.dtype = DType::f64;
    else
        fail("read_npy: ", file, ": expected dtype uint8, bool, int32, int64, float32 or float64, found '", descr, "'");
    const std::size_t item = dtype_size(out.dtype);
    const bool big = order == '>' || (order == '=' && std::endian::native == std::endian::big);
    const bool swap = item > 1 && (big != (std::endian::native == std::endian::big));

    if (static_cast<int>(dims.size()) > Shape::kMaxRank)
        fail("read_npy: ", file, ": expected at most ", Shape::kMaxRank, " dimensions, found ", dims.size());
    // Element count and byte size, guarded against overflow, checked against the file size
    // before anything is allocated.
    // Every partial product must fit int64, as ewe::Shape::numel() computes it.
    std::uint64_t count = 1;
    for (std::int64_t d : dims) {
        if (d != 0 && count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) /
                                  static_cast<std::uint64_t>(d))
            fail("read_npy: ", file, ": shape overflows int64 (", header, ")");
        count *= static_cast<std::uint64_t>(d);
    }
    if (count > std::numeric_limits<std::uint64_t>::max() / item) fail("read_npy: ", file, ": shape overflows");
    const std::uint64_t data_bytes = count * item;
    const std::uint64_t available = file_size - prefix - header_len;
    if (data_bytes != available)
        fail("read_npy: ", file, ": shape and dtype need ", data_bytes, " bytes of data, found ", available,
             available < data_bytes ? " (truncated file)" : " (trailing bytes)");
    for (std::int64_t d : dims) out.shape.push_back(d);

    out.bytes.resize(static_cast<std::size_t>(data_bytes));
    if (data_bytes > 0 && !in.read(reinterpret_cast<char*>(out.bytes.data()), static_cast<std::streamsize>(data_bytes)))
        fail("read_npy: ", file, ": could not read ", data_bytes, " bytes of data");
    if (swap) detail::byteswap_inplace(out.bytes.data(), static_cast<std::size_t>(count), item);
    if (out.dtype == DType::boolean)
        for (auto& b : out.bytes) b = std::byte{b != std::byte{0}};

    if (fortran && dims.size() > 1 && count > 0) {
        // Fortran order: the first index varies fastest. Walk the C-order index and
        // gather from the Fortran offset.
        const int rank = static_cast<int>(dims.size());
        std::vector<std::int64_t> fstride(rank), idx(rank, 0);
        std::int64_t s = 1;
        for (int a = 0; a < rank; ++a) { fstride[a] = s; s *= dims[a]; }
        std::vector<std::byte> c_order(out.bytes.size());
        std::int64_t src = 0;
        for (std::uint64_t e = 0; e < count; ++e) {
            std::memcpy(c_order.data() + e * item, out.bytes.data() + static_cast<std::uint64_t>(src) * item, item);
            for (int a = rank - 1; a >= 0; --a) {
                ++idx[a];
                src += fstride[a];
                if (idx[a] < dims[a]) break;
                src -= fstride[a] * idx[a];
                idx[a] = 0;
            }
        }
        out.bytes.swap(c_order);
    }
    return out;
}

// The array converted element by element to T (any dtype to any T; bool as 0 or 1).
// `what` names the array in error messages (e.g. "--input X.npy").
template <class T>
Tensor<T> npy_to_tensor(const NpyArray& array, const std::string& what) {
    const std::size_t item = dtype_size(array.dtype);
    const std::int64_t n = array.numel();
    EWE_REQUIRE(array.bytes.size() == static_cast<std::size_t>(n) * item, "npy_to_tensor: ", what, ": shape ",
                array.shape, " of ", to_string(array.dtype), " needs ", n * static_cast<std::int64_t>(item),
                " bytes, found ", array.bytes.size());
    Tensor<T> out(array.shape);
    const std::byte* src = array.bytes.data();
    auto convert = [&](auto tag) {
        using S = decltype(tag);
        for (std::int64_t i = 0; i < n; ++i) {
            S v;
            std::memcpy(&v, src + static_cast<std::size_t>(i) * sizeof(S), sizeof(S));
            out[i] = static_cast<T>(v);
        }
    };
    switch (array.dtype) {
        case DType::u8: convert(std::uint8_t{}); break;
        case DType::boolean: convert(std::uint8_t{}); break;
        case DType::i32: convert(std::int32_t{}); break;
        case DType::i64: convert(std::int64_t{}); break;
        case DType::f32: convert(float{}); break;
        case DType::f64: convert(double{}); break;
    }
    return out;
}

// Samples of `image` shape (e.g. (h, w, c)) from the .npy file `path`, as a tensor
// (n, image...) of T holding every value times `scale` (1 / 255 turns uint8 bitmaps
// such as Quick, Draw!'s into [0, 1]). The file holds n >= 1 samples of any numeric
// dtype, each flat (n, image.numel()), shaped like `image`, or, for one channel,
// without it ((n, h, w) for (h, w, 1)). limit > 0 keeps the first `limit` samples.
// Anything else, and a value that is not finite after scaling, is an ewe::Error naming
// the file, what was expected and what was found.
template <class T>
Tensor<T> read_images_npy(const std::filesystem::path& path, const Shape& image, double scale, std::int64_t limit = 0) {
    const std::string file = path.string();
    EWE_REQUIRE(image.rank() >= 1 && image.numel() > 0, "read_images_npy: ", file,
                ": image must be one sample's non-empty shape, e.g. (h, w, c), found ", image);
    EWE_REQUIRE(std::isfinite(scale) && scale != 0, "read_images_npy: ", file,
                ": scale must be finite and non-zero, found ", scale);
    EWE_REQUIRE(limit >= 0, "read_images_npy: ", file, ": limit must be >= 0 (0: every sample), found ", limit);
    NpyArray array = read_npy(path);
    const Shape sample = array.shape.rank() >= 2 ? array.shape.features() : Shape{};
    const bool flat = sample.rank() == 1 && sample[0] == image.numel();
    bool one_channel = image.rank() >= 2 && image[image.rank() - 1] == 1 && sample.rank() == image.rank() - 1;
    for (int a = 0; one_channel && a < sample.rank(); ++a) one_channel = sample[a] == image[a];
    if (!flat && !(sample == image) && !one_channel)
        fail("read_images_npy: ", file, ": expected samples of shape ", image, " (or flat (n, ", image.numel(),
             ")), found an array of shape ", array.shape);
    if (array.shape[0] == 0) fail("read_images_npy: ", file, ": holds no samples (shape ", array.shape, ")");
    const std::int64_t n = limit > 0 ? std::min(limit, array.shape[0]) : array.shape[0];
    const std::int64_t per = image.numel();
    array.bytes.resize(static_cast<std::size_t>(n * per) * dtype_size(array.dtype));
    array.shape = Shape{n, per};
    const Tensor<double> values = npy_to_tensor<double>(array, file);
    Tensor<T> out(image.with_batch(n));
    for (std::int64_t i = 0; i < n * per; ++i) {
        const double v = values[i] * scale;
        if (!std::isfinite(v))
            fail("read_images_npy: ", file, ": sample ", i / per, ", value ", i % per, " is ", values[i],
                 ", not finite times scale ", scale);
        out[i] = static_cast<T>(v);
    }
    return out;
}

// Writes `data` (C order, shape `shape`) as a little-endian .npy file, atomically
// (write_file_atomically): readers never see a half-written file.
template <class T>
void write_npy(const std::filesystem::path& path, const T* data, const Shape& shape) {
    constexpr DType dtype = dtype_of<T>();
    const char* descr = dtype == DType::u8    ? "|u1"
                        : dtype == DType::i32 ? "<i4"
                        : dtype == DType::i64 ? "<i8"
                        : dtype == DType::f32 ? "<f4"
                                              : "<f8";
    std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (";
    for (int a = 0; a < shape.rank(); ++a) dict += std::to_string(shape[a]) + (shape.rank() == 1 ? "," : a + 1 < shape.rank() ? ", " : "");
    dict += "), }";
    // Pad with spaces so that magic + length + header + '\n' is a multiple of 64.
    std::size_t prefix = 10;
    std::size_t total = prefix + dict.size() + 1;
    if ((total + 63) / 64 * 64 - prefix > 65535) prefix = 12;
    total = (prefix + dict.size() + 1 + 63) / 64 * 64;
    const std::size_t header_len = total - prefix;
    dict.append(header_len - dict.size() - 1, ' ');
    dict += '\n';

    std::string head = "\x93NUMPY";
    head += static_cast<char>(prefix == 10 ? 1 : 2);
    head += '\0';
    for (std::size_t b = 0; b < prefix - 8; ++b) head += static_cast<char>((header_len >> (8 * b)) & 0xff);

    write_file_atomically(path, "write_npy", [&](std::ostream& out) {
        out.write(head.data(), static_cast<std::streamsize>(head.size()));
        out.write(dict.data(), static_cast<std::streamsize>(dict.size()));
        const std::int64_t n = shape.numel();
        if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
            if (n > 0) out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(T)));
        } else {
            for (std::int64_t i = 0; i < n; ++i) {
                char b[sizeof(T)];
                std::memcpy(b, data + i, sizeof(T));
                std::reverse(b, b + sizeof(T));
                out.write(b, sizeof(T));
            }
        }
    });
}

template <class T>
void write_npy(const std::filesystem::path& path, TensorView<const T> tensor) {
    EWE_REQUIRE(tensor.device() == Device::cpu, "write_npy: ", path.string(), ": expected a host tensor");
    write_npy(path, tensor.data(), tensor.shape());
}

}  // namespace ewe::io
