// TensorBoard event files written by hand: TFRecord framing (u64 length, masked
// CRC32C of the length, payload, masked CRC32C of the payload) around Event protocol
// buffers (tensorflow/core/util/event.proto) holding scalar summaries (simple_value).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "ewe/core/error.hpp"
#include "ewe/io/crc.hpp"

namespace ewe::io {

// TFRecord's masking: rotate right by 15 and add a constant.
inline std::uint32_t masked_crc32c(const void* data, std::size_t n) {
    const std::uint32_t crc = crc32c(data, n);
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

namespace detail {

struct Protobuf {
    std::string bytes;
    void varint(std::uint64_t v) {
        while (v >= 0x80) {
            bytes += char((v & 0x7f) | 0x80);
            v >>= 7;
        }
        bytes += char(v);
    }
    void tag(int field, int wire) { varint(std::uint64_t(field) << 3 | std::uint64_t(wire)); }
    void f64(int field, double v) {
        tag(field, 1);
        char b[8];
        std::memcpy(b, &v, 8);
        bytes.append(b, 8);
    }
    void f32(int field, float v) {
        tag(field, 5);
        char b[4];
        std::memcpy(b, &v, 4);
        bytes.append(b, 4);
    }
    void i64(int field, std::int64_t v) {
        tag(field, 0);
        varint(std::uint64_t(v));
    }
    void str(int field, const std::string& s) {
        tag(field, 2);
        varint(s.size());
        bytes += s;
    }
};

}  // namespace detail

// Appends scalar events to DIR/events.out.tfevents.<seconds>.<host>; each add_scalar
// is one Event{wall_time, step, summary{value{tag, simple_value}}}, flushed at once.
class EventWriter {
public:
    explicit EventWriter(const std::filesystem::path& dir, double wall_time) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) fail("EventWriter: cannot create ", dir.string(), ": ", ec.message());
        char host[256] = "localhost";
        ::gethostname(host, sizeof host - 1);
        path_ = dir / ("events.out.tfevents." + std::to_string(static_cast<long long>(wall_time)) + "." + host);
        // Two writers in one second (a resumed run) get distinct files.
        for (int k = 1; std::filesystem::exists(path_); ++k)
            path_ = dir / ("events.out.tfevents." + std::to_string(static_cast<long long>(wall_time)) + "." + host +
                           "." + std::to_string(k));
        out_.open(path_, std::ios::binary | std::ios::trunc);
        if (!out_) fail("EventWriter: cannot create ", path_.string());
        detail::Protobuf event;
        event.f64(1, wall_time);
        event.str(3, "brain.Event:2");
        record(event.bytes);
    }

    const std::filesystem::path& path() const { return path_; }

    void add_scalar(const std::string& tag, double value, std::int64_t step, double wall_time) {
        detail::Protobuf v;
        v.str(1, tag);
        v.f32(2, static_cast<float>(value));
        detail::Protobuf summary;
        summary.str(1, v.bytes);
        detail::Protobuf event;
        event.f64(1, wall_time);
        event.i64(2, step);
        event.str(5, summary.bytes);
        record(event.bytes);
    }

private:
    void record(const std::string& payload) {
        char len[8];
        const std::uint64_t n = payload.size();
        for (int b = 0; b < 8; ++b) len[b] = char((n >> (8 * b)) & 0xff);
        const std::uint32_t len_crc = masked_crc32c(len, 8), data_crc = masked_crc32c(payload.data(), payload.size());
        char c[4];
        out_.write(len, 8);
        std::memcpy(c, &len_crc, 4);  // little-endian hosts
        out_.write(c, 4);
        out_.write(payload.data(), std::streamsize(payload.size()));
        std::memcpy(c, &data_crc, 4);
        out_.write(c, 4);
        out_.flush();
        if (!out_) fail("EventWriter: could not write ", path_.string());
    }

    std::filesystem::path path_;
    std::ofstream out_;
};

}  // namespace ewe::io
