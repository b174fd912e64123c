// safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {string: string}}, then the raw little-endian tensor bytes. Written
// atomically (ewe/io/atomic_file.hpp); read back with every offset validated.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/io/atomic_file.hpp"
#include "ewe/io/files.hpp"

namespace ewe::io {

// One tensor to write: `bytes` little-endian bytes of dtype ("F32", "F64", "U8",
// "I32", "I64") and shape.
struct SafetensorsEntry {
    std::string name;
    std::string dtype;
    std::vector<std::int64_t> shape;
    const void* data = nullptr;
    std::size_t bytes = 0;
};

// One tensor of a file that was read: its bytes are file.data[begin, end).
struct SafetensorsTensor {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::size_t begin = 0, end = 0;
};

struct SafetensorsFile {
    std::map<std::string, std::string> metadata;
    std::map<std::string, SafetensorsTensor> tensors;
    std::vector<std::byte> data;  // the byte buffer after the header
    std::string path;

    bool has(const std::string& name) const { return tensors.count(name) != 0; }
    // The tensor `name` copied into `out` (n elements of T), checking dtype and size.
    template <class T>
    void copy_to(const std::string& name, T* out, std::size_t n) const;
    const std::string& meta(const std::string& key) const {
        auto it = metadata.find(key);
        if (it == metadata.end()) fail("safetensors: ", path, ": __metadata__ has no '", key, "'");
        return it->second;
    }
};

namespace detail {

inline std::size_t safetensors_item(const std::string& dtype) {
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
    if (dtype == "U8" || dtype == "I8" || dtype == "BOOL") return 1;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
    return 0;
}

template <class T>
const char* safetensors_dtype() {
    if constexpr (std::is_same_v<T, float>) return "F32";
    else if constexpr (std::is_same_v<T, double>) return "F64";
    else if constexpr (std::is_same_v<T, std::uint8_t>) return "U8";
    else if constexpr (std::is_same_v<T, std::int32_t>) return "I32";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "I64";
    else static_assert(sizeof(T) == 0, "safetensors: unsupported element type");
}

inline std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += char(c);
    }
    return out + "\"";
}

// A small JSON reader for safetensors headers: objects, arrays, strings, integers.
struct SafetensorsJson {
    std::string_view s;
    std::size_t i = 0;
    const std::string& file;

    [[noreturn]] void bad(const std::string& what) const {
        fail("safetensors: ", file, ": malformed JSON header (", what, " at byte ", i, ")");
    }
    void ws() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
    }
    bool peek(char c) {
        ws();
        return i < s.size() && s[i] == c;
    }
    void expect(char c) {
        if (!peek(c)) bad(std::string("expected '") + c + "'");
        ++i;
    }
    std::string string() {
        expect('"');
        std::string out;
        while (i < s.size() && s[i] != '"') {
            char c = s[i++];
            if (c == '\\') {
                if (i >= s.size()) bad("bad escape");
                const char e = s[i++];
                if (e == 'n') c = '\n';
                else if (e == 't') c = '\t';
                else if (e == 'r') c = '\r';
                else if (e == 'b') c = '\b';
                else if (e == 'f') c = '\f';
                else if (e == 'u') {
                    if (i + 4 > s.size()) bad("bad \\u escape");
                    unsigned code = 0;  // exactly four hex digits (std::stoul would throw or accept "+1 z")
                    for (int k = 0; k < 4; ++k, ++i) {
                        const char h = s[i];
                        const int v = h >= '0' && h <= '9' ? h - '0'
                                      : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                      : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                             : -1;
                        if (v < 0) bad("bad \\u escape (expected four hex digits)");
                        code = code * 16 + unsigned(v);
                    }
                    if (code < 0x80) c = char(code);
                    else if (code < 0x800) {
                        out += char(0xC0 | (code >> 6));
                        c = char(0x80 | (code & 0x3F));
                    } else {
                        out += char(0xE0 | (code >> 12));
                        out += char(0x80 | ((code >> 6) & 0x3F));
                        c = char(0x80 | (code & 0x3F));
                    }
                } else c = e;
            }
            out += c;
        }
        expect('"');
        return out;
    }
    std::int64_t integer() {
        ws();
        const std::size_t start = i;
        std::int64_t v = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            if (v > (INT64_MAX - 9) / 10) bad("integer overflow");
            v = v * 10 + (s[i++] - '0');
        }
        if (i == start) bad("expected a non-negative integer");
        return v;
    }
    std::vector<std::int64_t> int_array() {
        std::vector<std::int64_t> out;
        expect('[');
        while (!peek(']')) {
            out.push_back(integer());
            if (peek(',')) ++i;
            else if (!peek(']')) bad("expected ',' or ']'");
        }
        expect(']');
        return out;
    }
};

}  // namespace detail

template <class T>
SafetensorsEntry safetensors_entry(std::string name, const TensorView<const T>& host) {
    EWE_REQUIRE(host.device() == Device::cpu, "safetensors_entry(", name, "): expected a host tensor");
    std::vector<std::int64_t> shape;
    for (int a = 0; a < host.rank(); ++a) shape.push_back(host.dim(a));
    return SafetensorsEntry{std::move(name), detail::safetensors_dtype<T>(), shape, host.data(),
                            std::size_t(host.numel()) * sizeof(T)};
}

// Writes the entries (in the order given; names must be unique) and the metadata map.
// The file appears at `path` complete or not at all.
inline void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsEntry>& entries,
                              const std::map<std::string, std::string>& metadata) {
    static_assert(std::endian::native == std::endian::little, "write_safetensors assumes a little-endian host");
    std::string header = "{";
    if (!metadata.empty()) {
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : metadata) {
            header += (first ? "" : ",") + detail::json_string(k) + ":" + detail::json_string(v);
            first = false;
        }
        header += "}";
    }
    std::size_t offset = 0;
    std::vector<std::string> seen;
    for (const SafetensorsEntry& e : entries) {
        EWE_REQUIRE(e.name != "__metadata__" && std::find(seen.begin(), seen.end(), e.name) == seen.end(),
                    "write_safetensors: ", path.string(), ": duplicate or reserved tensor name '", e.name, "'");
        seen.push_back(e.name);
        const std::size_t item = detail::safetensors_item(e.dtype);
        std::int64_t n = 1;
        for (std::int64_t d : e.shape) n *= d;
        EWE_REQUIRE(item != 0 && std::size_t(n) * item == e.bytes, "write_safetensors: ", path.string(), ": tensor '",
                    e.name, "' of dtype ", e.dtype, " has ", e.bytes, " bytes, which does not match its shape");
        if (header.size() > 1) header += ",";
        header += detail::json_string(e.name) + ":{\"dtype\":\"" + e.dtype + "\",\"shape\":[";
        for (std::size_t a = 0; a < e.shape.size(); ++a) {
            if (a) header += ',';
            header += std::to_string(e.shape[a]);
        }
        header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + e.bytes) + "]}";
        offset += e.bytes;
    }
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' ');  // align the data to 8 bytes

    write_file_atomically(path, "write_safetensors", [&](std::ostream& out) {
        char len[8];
        const std::uint64_t n = header.size();
        for (int b = 0; b < 8; ++b) len[b] = char((n >> (8 * b)) & 0xff);
        out.write(len, 8);
        out.write(header.data(), std::streamsize(header.size()));
        for (const SafetensorsEntry& e : entries)
            if (e.bytes) out.write(static_cast<const char*>(e.data), std::streamsize(e.bytes));
    });
}

namespace detail {

// Parses the header of the safetensors file `path` of `size` bytes from `in` (left at
// the first data byte), validating every data offset against the file's size; `data`
// stays empty and `data_bytes` is the size of the byte buffer after the header.
inline SafetensorsFile read_safetensors_header(std::ifstream& in, const std::filesystem::path& path,
                                               std::uintmax_t size, std::size_t& data_bytes) {
    const std::string file = path.string();
    if (!in) fail("read_safetensors: cannot open ", file);
    unsigned char len[8];
    if (size < 8 || !in.read(reinterpret_cast<char*>(len), 8))
        fail("read_safetensors: ", file, ": expected at least 8 bytes (the header length), found ", size);
    std::uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = (n << 8) | len[b];
    if (n < 2 || n > size - 8 || n > (100u << 20))
        fail("read_safetensors: ", file, ": header length ", n, " does not fit a file of ", size,
             " bytes (not a safetensors file, or truncated)");
    std::string header(n, '\0');
    if (!in.read(header.data(), std::streamsize(n))) fail("read_safetensors: ", file, ": truncated header");
    SafetensorsFile out;
    out.path = file;
    detail::SafetensorsJson j{header, 0, file};
    j.expect('{');
    while (!j.peek('}')) {
        const std::string name = j.string();
        j.expect(':');
        if (name == "__metadata__") {
            j.expect('{');
            while (!j.peek('}')) {
                std::string k = j.string();
                j.expect(':');
                out.metadata[k] = j.string();
                if (j.peek(',')) ++j.i;
                else if (!j.peek('}')) j.bad("expected ',' or '}'");
            }
            j.expect('}');
        } else {
            SafetensorsTensor t;
            bool have_dtype = false, have_shape = false, have_offsets = false;
            j.expect('{');
            while (!j.peek('}')) {
                const std::string key = j.string();
                j.expect(':');
                if (key == "dtype") t.dtype = j.string(), have_dtype = true;
                else if (key == "shape") t.shape = j.int_array(), have_shape = true;
                else if (key == "data_offsets") {
                    const auto o = j.int_array();
                    if (o.size() != 2) j.bad("data_offsets needs two numbers");
                    t.begin = std::size_t(o[0]);
                    t.end = std::size_t(o[1]);
                    have_offsets = true;
                } else j.bad("unexpected key '" + key + "'");
                if (j.peek(',')) ++j.i;
                else if (!j.peek('}')) j.bad("expected ',' or '}'");
            }
            j.expect('}');
            if (!have_dtype || !have_shape || !have_offsets)
                fail("read_safetensors: ", file, ": tensor '", name, "' lacks dtype, shape or data_offsets");
            const std::size_t item = detail::safetensors_item(t.dtype);
            if (item == 0) fail("read_safetensors: ", file, ": tensor '", name, "' has unknown dtype ", t.dtype);
            // Every partial product must fit int64 (ewe::Shape), and the byte count size_t.
            std::uint64_t count = 1;
            for (std::int64_t d : t.shape) {
                if (d != 0 && count > std::uint64_t(INT64_MAX) / std::uint64_t(d))
                    fail("read_safetensors: ", file, ": tensor '", name, "' has a shape whose element count overflows int64");
                count *= std::uint64_t(d);
            }
            if (count > SIZE_MAX / item)
                fail("read_safetensors: ", file, ": tensor '", name, "' has a shape whose byte size overflows");
            if (t.end < t.begin || t.end - t.begin != count * item || t.end > size - 8 - n)
                fail("read_safetensors: ", file, ": tensor '", name, "' has data_offsets [", t.begin, ", ", t.end,
                     "] that disagree with its shape or lie outside the file (truncated?)");
            if (out.tensors.count(name)) fail("read_safetensors: ", file, ": duplicate tensor '", name, "'");
            out.tensors[name] = t;
        }
        if (j.peek(',')) ++j.i;
        else if (!j.peek('}')) j.bad("expected ',' or '}'");
    }
    j.expect('}');
    data_bytes = std::size_t(size - 8 - n);
    return out;
}

}  // namespace detail

// The metadata and tensor table of a safetensors file, validated as read_safetensors
// validates them, without reading the tensors' bytes (`data` stays empty): a few
// kilobytes of a checkpoint of any size.
inline SafetensorsFile read_safetensors_header(const std::filesystem::path& path) {
    const std::uintmax_t size = require_file(path, "read_safetensors");
    std::ifstream in(path, std::ios::binary);
    std::size_t data_bytes = 0;
    return detail::read_safetensors_header(in, path, size, data_bytes);
}

// Reads a whole safetensors file, validating the header and every data offset.
inline SafetensorsFile read_safetensors(const std::filesystem::path& path) {
    const std::uintmax_t size = require_file(path, "read_safetensors");
    std::ifstream in(path, std::ios::binary);
    std::size_t data_bytes = 0;
    SafetensorsFile out = detail::read_safetensors_header(in, path, size, data_bytes);
    out.data.resize(data_bytes);
    if (!out.data.empty() && !in.read(reinterpret_cast<char*>(out.data.data()), std::streamsize(out.data.size())))
        fail("read_safetensors: ", path.string(), ": could not read the data");
    return out;
}

template <class T>
void SafetensorsFile::copy_to(const std::string& name, T* out, std::size_t n) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail("safetensors: ", path, ": has no tensor '", name, "'");
    const SafetensorsTensor& t = it->second;
    const char* want = detail::safetensors_dtype<T>();
    if (t.dtype != want) fail("safetensors: ", path, ": tensor '", name, "' is ", t.dtype, ", expected ", want);
    if (t.end - t.begin != n * sizeof(T))
        fail("safetensors: ", path, ": tensor '", name, "' has ", (t.end - t.begin) / sizeof(T), " elements, expected ", n);
    if (n) std::memcpy(out, data.data() + t.begin, n * sizeof(T));
}

}  // namespace ewe::io
