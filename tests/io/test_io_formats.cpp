// Tests of the file writers in ewe/io: CRC32 / CRC32C / Adler32 check values, the
// zlib stream of the PNG writer (decoded by a small fixed-Huffman inflater here), PNG
// chunk framing, safetensors round trips and rejections, TensorBoard TFRecord framing
// and Event protobufs (parsed back here), CSV quoting, SVG output.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ewe/io/csv.hpp>
#include <ewe/io/png.hpp>
#include <ewe/io/safetensors.hpp>
#include <ewe/io/svg.hpp>
#include <ewe/io/tensorboard.hpp>

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("ewe_test_io_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

std::vector<std::uint8_t> slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A minimal inflater for stored and fixed-Huffman blocks (all our writer produces).
struct Inflater {
    const std::vector<std::uint8_t>& in;
    std::size_t pos = 0;
    int bit = 0;
    std::uint32_t bits(int n) {
        std::uint32_t v = 0;
        for (int i = 0; i < n; ++i) {
            REQUIRE(pos < in.size());
            v |= std::uint32_t((in[pos] >> bit) & 1) << i;
            if (++bit == 8) bit = 0, ++pos;
        }
        return v;
    }
    std::uint32_t code_bits(int n) {  // most significant bit first
        std::uint32_t v = 0;
        for (int i = 0; i < n; ++i) v = (v << 1) | bits(1);
        return v;
    }
    int literal() {
        std::uint32_t c = code_bits(7);
        if (c <= 0x17) return int(c) + 256;
        c = (c << 1) | bits(1);
        if (c >= 0x30 && c <= 0xBF) return int(c - 0x30);
        if (c >= 0xC0 && c <= 0xC7) return int(c - 0xC0 + 280);
        c = (c << 1) | bits(1);
        REQUIRE((c >= 0x190 && c <= 0x1FF));
        return int(c - 0x190 + 144);
    }
    std::vector<std::uint8_t> run() {
        static const int lbase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
        static const int lextra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
        static const int dbase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
        static const int dextra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
        std::vector<std::uint8_t> out;
        REQUIRE(in.size() >= 6);
        CHECK(((in[0] << 8) | in[1]) % 31 == 0);
        CHECK((in[0] & 0x0f) == 8);
        pos = 2;
        bool final = false;
        while (!final) {
            final = bits(1);
            const std::uint32_t type = bits(2);
            if (type == 0) {
                if (bit) bit = 0, ++pos;
                const std::uint32_t len = in[pos] | in[pos + 1] << 8;
                pos += 4;
                out.insert(out.end(), in.begin() + std::ptrdiff_t(pos), in.begin() + std::ptrdiff_t(pos + len));
                pos += len;
                continue;
            }
            REQUIRE(type == 1);
            for (;;) {
                const int s = literal();
                if (s < 256) out.push_back(std::uint8_t(s));
                else if (s == 256) break;
                else {
                    const int l = lbase[s - 257] + int(bits(lextra[s - 257]));
                    const int dc = int(code_bits(5));
                    const int dist = dbase[dc] + int(bits(dextra[dc]));
                    REQUIRE(std::size_t(dist) <= out.size());
                    for (int k = 0; k < l; ++k) out.push_back(out[out.size() - std::size_t(dist)]);
                }
            }
        }
        if (bit) bit = 0, ++pos;
        REQUIRE(pos + 4 == in.size());
        const std::uint32_t adler = std::uint32_t(in[pos]) << 24 | std::uint32_t(in[pos + 1]) << 16 |
                                    std::uint32_t(in[pos + 2]) << 8 | in[pos + 3];
        CHECK(adler == ewe::io::adler32(out.data(), out.size()));
        return out;
    }
};

std::uint64_t read_varint(const std::string& s, std::size_t& i) {
    std::uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        const auto b = static_cast<unsigned char>(s[i++]);
        v |= std::uint64_t(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
}

}  // namespace

TEST_CASE("checksums match their published check values") {
    const char* s = "123456789";
    CHECK(ewe::io::crc32(s, 9) == 0xCBF43926u);
    CHECK(ewe::io::crc32c(s, 9) == 0xE3069283u);
    CHECK(ewe::io::adler32("Wikipedia", 9) == 0x11E60398u);
}

TEST_CASE("zlib_compress output inflates back to the input") {
    std::vector<std::vector<std::uint8_t>> inputs = {{}, {42}, std::vector<std::uint8_t>(1000, 7)};
    std::vector<std::uint8_t> mixed;
    for (int i = 0; i < 70000; ++i) mixed.push_back(std::uint8_t((i * 7919) % 251 < 120 ? 0 : (i * 31) % 256));
    inputs.push_back(mixed);
    std::vector<std::uint8_t> text;
    for (int i = 0; i < 500; ++i)
        for (char c : std::string("the sheep in latent space ")) text.push_back(std::uint8_t(c + (i % 3)));
    inputs.push_back(text);
    for (const auto& data : inputs) {
        const auto z = ewe::io::zlib_compress(data);
        Inflater inf{z};
        CHECK(inf.run() == data);
    }
    CHECK(ewe::io::zlib_compress(std::vector<std::uint8_t>(100000, 0)).size() < 2000);
}

TEST_CASE("PNG files have valid chunks and the image in IDAT") {
    const int w = 37, h = 11;
    std::vector<std::uint8_t> pixels(std::size_t(w) * h * 3);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = std::uint8_t(i * 13);
    const auto png = ewe::io::encode_png(w, h, 3, pixels.data());
    REQUIRE(png.size() > 8);
    CHECK(std::memcmp(png.data(), "\x89PNG\r\n\x1a\n", 8) == 0);
    std::size_t i = 8;
    std::vector<std::string> types;
    std::vector<std::uint8_t> idat;
    while (i < png.size()) {
        const std::uint32_t n = std::uint32_t(png[i]) << 24 | png[i + 1] << 16 | png[i + 2] << 8 | png[i + 3];
        const std::string type(png.begin() + std::ptrdiff_t(i + 4), png.begin() + std::ptrdiff_t(i + 8));
        const std::uint32_t crc = std::uint32_t(png[i + 8 + n]) << 24 | png[i + 9 + n] << 16 | png[i + 10 + n] << 8 | png[i + 11 + n];
        CHECK(crc == ewe::io::crc32(png.data() + i + 4, n + 4));
        if (type == "IDAT") idat.insert(idat.end(), png.begin() + std::ptrdiff_t(i + 8), png.begin() + std::ptrdiff_t(i + 8 + n));
        if (type == "IHDR") {
            CHECK(png[i + 11] == w);
            CHECK(png[i + 15] == h);
            CHECK(png[i + 16] == 8);
            CHECK(png[i + 17] == 2);
        }
        types.push_back(type);
        i += 12 + n;
    }
    CHECK(types == std::vector<std::string>{"IHDR", "IDAT", "IEND"});
    Inflater inf{idat};
    const auto raw = inf.run();
    REQUIRE(raw.size() == std::size_t(h) * (w * 3 + 1));
    for (int y = 0; y < h; ++y) {
        CHECK(raw[std::size_t(y) * (w * 3 + 1)] == 0);
        CHECK(std::memcmp(raw.data() + std::size_t(y) * (w * 3 + 1) + 1, pixels.data() + std::size_t(y) * w * 3, w * 3) == 0);
    }
    CHECK_THROWS_AS(ewe::io::encode_png(0, 3, 1, pixels.data()), ewe::Error);
    CHECK_THROWS_AS(ewe::io::encode_png(3, 3, 2, pixels.data()), ewe::Error);
}

TEST_CASE("safetensors round trip, metadata and rejections") {
    const fs::path dir = temp_dir("st");
    const fs::path file = dir / "a.safetensors";
    ewe::Tensor<float> a(ewe::Shape{2, 3});
    for (int i = 0; i < 6; ++i) a[i] = 0.5f * float(i) - 1;
    std::vector<std::int32_t> b = {7, -8, 9};
    std::vector<ewe::io::SafetensorsEntry> entries = {
        ewe::io::safetensors_entry<float>("layer/kernel", a.view()),
        {"ids", "I32", {3}, b.data(), b.size() * 4},
        {"empty", "F32", {0}, nullptr, 0}};
    ewe::io::write_safetensors(file, entries, {{"epoch", "3"}, {"quote\"d", "line\nbreak"}});
    const auto bytes = slurp(file);
    std::uint64_t n = 0;
    for (int k = 7; k >= 0; --k) n = (n << 8) | bytes[std::size_t(k)];
    CHECK((8 + n) % 8 == 0);
    const auto f = ewe::io::read_safetensors(file);
    CHECK(f.meta("epoch") == "3");
    CHECK(f.meta("quote\"d") == "line\nbreak");
    REQUIRE(f.has("layer/kernel"));
    CHECK(f.tensors.at("layer/kernel").shape == std::vector<std::int64_t>{2, 3});
    float back[6];
    f.copy_to("layer/kernel", back, 6);
    for (int i = 0; i < 6; ++i) CHECK(back[i] == a[i]);
    std::int32_t ids[3];
    f.copy_to("ids", ids, 3);
    CHECK(ids[1] == -8);
    CHECK_THROWS_AS(f.copy_to("ids", back, 3), ewe::Error);  // wrong dtype
    CHECK_THROWS_AS(f.copy_to("missing", back, 1), ewe::Error);
    CHECK_THROWS_AS(f.meta("nope"), ewe::Error);
    CHECK(fs::directory_iterator(dir) != fs::directory_iterator());
    for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename() == "a.safetensors");  // no temp left
    // The header alone: the same metadata and tensor table, no tensor bytes.
    const auto header = ewe::io::read_safetensors_header(file);
    CHECK(header.metadata == f.metadata);
    CHECK(header.tensors.size() == f.tensors.size());
    CHECK(header.tensors.at("ids").end == f.tensors.at("ids").end);
    CHECK(header.data.empty());

    // Truncated, garbage and missing files are errors naming the file.
    const fs::path cut = dir / "cut.safetensors";
    std::ofstream(cut, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size() - 5));
    try {
        ewe::io::read_safetensors(cut);
        FAIL("expected an error");
    } catch (const ewe::Error& e) {
        CHECK(std::string(e.what()).find("cut.safetensors") != std::string::npos);
    }
    CHECK_THROWS_AS(ewe::io::read_safetensors_header(cut), ewe::Error);  // offsets beyond the file's end
    const fs::path junk = dir / "junk.safetensors";
    std::ofstream(junk, std::ios::binary) << "not a safetensors file at all";
    CHECK_THROWS_AS(ewe::io::read_safetensors(junk), ewe::Error);
    CHECK_THROWS_AS(ewe::io::read_safetensors(dir / "missing.safetensors"), ewe::Error);
    CHECK_THROWS_AS(ewe::io::read_safetensors_header(junk), ewe::Error);
    std::vector<ewe::io::SafetensorsEntry> bad = {{"x", "F32", {4}, b.data(), 12}};
    CHECK_THROWS_AS(ewe::io::write_safetensors(dir / "bad.safetensors", bad, {}), ewe::Error);
    fs::remove_all(dir);
}

TEST_CASE("TensorBoard event files: TFRecord framing and scalar events") {
    const fs::path dir = temp_dir("tb");
    fs::path path;
    {
        ewe::io::EventWriter w(dir, 1700000000.25);
        w.add_scalar("epoch/loss", 42.5, 3, 1700000001.5);
        w.add_scalar("epoch/kl", -1.25, 300, 1700000002.0);
        path = w.path();
    }
    CHECK(path.filename().string().rfind("events.out.tfevents.1700000000.", 0) == 0);
    const auto bytes = slurp(path);
    std::vector<std::string> records;
    std::size_t i = 0;
    while (i < bytes.size()) {
        REQUIRE(i + 12 <= bytes.size());
        std::uint64_t n = 0;
        for (int k = 7; k >= 0; --k) n = (n << 8) | bytes[i + std::size_t(k)];
        std::uint32_t len_crc, data_crc;
        std::memcpy(&len_crc, bytes.data() + i + 8, 4);
        CHECK(len_crc == ewe::io::masked_crc32c(bytes.data() + i, 8));
        const std::string payload(bytes.begin() + std::ptrdiff_t(i + 12), bytes.begin() + std::ptrdiff_t(i + 12 + n));
        std::memcpy(&data_crc, bytes.data() + i + 12 + n, 4);
        CHECK(data_crc == ewe::io::masked_crc32c(payload.data(), payload.size()));
        records.push_back(payload);
        i += 16 + n;
    }
    REQUIRE(records.size() == 3);
    CHECK(records[0].find("brain.Event:2") != std::string::npos);
    // Event 2: wall_time (1, fixed64), step (2, varint), summary (5, bytes) -> value (1)
    // -> tag (1, bytes), simple_value (2, fixed32).
    const std::string& e = records[1];
    std::size_t p = 0;
    CHECK(read_varint(e, p) == ((1 << 3) | 1));
    double wall;
    std::memcpy(&wall, e.data() + p, 8);
    p += 8;
    CHECK(wall == 1700000001.5);
    CHECK(read_varint(e, p) == ((2 << 3) | 0));
    CHECK(read_varint(e, p) == 3);
    CHECK(read_varint(e, p) == ((5 << 3) | 2));
    const std::size_t summary_len = read_varint(e, p);
    CHECK(p + summary_len == e.size());
    CHECK(read_varint(e, p) == ((1 << 3) | 2));
    read_varint(e, p);
    CHECK(read_varint(e, p) == ((1 << 3) | 2));
    const std::size_t tag_len = read_varint(e, p);
    CHECK(e.substr(p, tag_len) == "epoch/loss");
    p += tag_len;
    CHECK(read_varint(e, p) == ((2 << 3) | 5));
    float value;
    std::memcpy(&value, e.data() + p, 4);
    CHECK(value == 42.5f);
    fs::remove_all(dir);
}

TEST_CASE("CSV quoting round trip") {
    const fs::path dir = temp_dir("csv");
    ewe::io::write_csv(dir / "a.csv", {{"epoch", "note"},
                                       {"1", "plain"},
                                       {"2", "with, comma and \"quotes\""},
                                       {"3", ewe::io::csv_number(0.1)}});
    const auto rows = ewe::io::read_csv(dir / "a.csv");
    REQUIRE(rows.size() == 4);
    CHECK(rows[2][1] == "with, comma and \"quotes\"");
    CHECK(std::stod(rows[3][1]) == doctest::Approx(0.1));
    CHECK_THROWS_AS(ewe::io::read_csv(dir / "missing.csv"), ewe::Error);
    fs::remove_all(dir);
}

TEST_CASE("SVG plots hold their series, labels and legend") {
    ewe::io::SvgPlot plot("Title <&>", "x axis", "y axis");
    plot.scatter({0, 1, 2}, {1, 4, 9}, ewe::io::palette(0), "points")
        .line({0, 1, 2}, {0, 1, 2}, ewe::io::palette(1), "line")
        .histogram({1, 2, 2, 3, 3, 3}, 3, ewe::io::palette(2), "hist")
        .vline(1.5, "#000", "cutoff");
    const std::string s = plot.str();
    CHECK(s.rfind("<svg", 0) == 0);
    CHECK(s.find("</svg>") != std::string::npos);
    CHECK(s.find("Title &lt;&amp;&gt;") != std::string::npos);
    std::size_t circles = 0;
    for (std::size_t p = s.find("<circle"); p != std::string::npos; p = s.find("<circle", p + 1)) ++circles;
    CHECK(circles == 3);
    CHECK(s.find("<polyline") != std::string::npos);
    for (const char* label : {"points", "line", "hist", "cutoff", "x axis", "y axis"}) CHECK(s.find(label) != std::string::npos);
    CHECK_THROWS_AS(ewe::io::SvgPlot("t", "x", "y").scatter({1, 2}, {1}, "#000"), ewe::Error);
}
