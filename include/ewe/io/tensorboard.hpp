// TensorBoard event files written by hand: TFRecord framing (u64 length, masked
// CRC32C of the length, payload, masked CRC32C of the payload) around Event protocol
// buffers (tensorflow/core/util/event.proto) holding scalar summaries (simple_value).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
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
// is one Event{wall_time, step, summary{value{tag, simple_value}}}. The file is an
// append-only stream, as TensorBoard expects, so it is not replaced atomically; instead
// each record is written whole and fsynced before add_scalar returns, and a record that
// cannot be written (disk full) is cut off again: the file then ends after the last
// whole record, and the ewe::Error names the file.
class EventWriter {
public:
    EventWriter(const std::filesystem::path& dir, double wall_time) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) fail("EventWriter: cannot create ", dir.string(), ": ", ec.message());
        char host[256] = "localhost";
        ::gethostname(host, sizeof host - 1);
        const std::string stem =
            "events.out.tfevents." + std::to_string(static_cast<long long>(wall_time)) + "." + host;
        // Two writers in one second (a resumed run) get distinct files.
        for (int k = 0; fd_ < 0; ++k) {
            path_ = dir / (k == 0 ? stem : stem + "." + std::to_string(k));
            fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd_ < 0 && errno != EEXIST) fail("EventWriter: cannot create ", path_.string(), ": ", std::strerror(errno));
        }
        detail::Protobuf event;
        event.f64(1, wall_time);
        event.str(3, "brain.Event:2");
        try {
            record(event.bytes);
        } catch (const Error&) {
            ::close(fd_);
            std::error_code ignore;
            std::filesystem::remove(path_, ignore);  // a new file that never held a whole record
            throw;
        }
    }
    EventWriter(const EventWriter&) = delete;
    EventWriter& operator=(const EventWriter&) = delete;
    ~EventWriter() { ::close(fd_); }

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
    // Appends one TFRecord holding `payload` and fsyncs it; on failure truncates the file
    // back to its whole records and throws.
    void record(const std::string& payload) {
        std::string bytes(8, '\0');
        const std::uint64_t n = payload.size();
        for (int b = 0; b < 8; ++b) bytes[std::size_t(b)] = char((n >> (8 * b)) & 0xff);
        const std::uint32_t len_crc = masked_crc32c(bytes.data(), 8);
        const std::uint32_t data_crc = masked_crc32c(payload.data(), payload.size());
        char c[4];
        std::memcpy(c, &len_crc, 4);  // little-endian hosts
        bytes.append(c, 4);
        bytes += payload;
        std::memcpy(c, &data_crc, 4);
        bytes.append(c, 4);
        std::size_t done = 0;
        while (done < bytes.size()) {
            const ::ssize_t w = ::write(fd_, bytes.data() + done, bytes.size() - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                const int error = w < 0 ? errno : ENOSPC;
                const bool cut = ::ftruncate(fd_, ::off_t(size_)) == 0 && ::lseek(fd_, ::off_t(size_), SEEK_SET) >= 0;
                fail("EventWriter: could not write ", path_.string(), ": ", std::strerror(error), "; ",
                     cut ? "the file keeps its " + std::to_string(records_) + " whole records"
                         : "could not cut off the partial record");
            }
            done += std::size_t(w);
        }
        if (::fsync(fd_) != 0) fail("EventWriter: could not sync ", path_.string(), ": ", std::strerror(errno));
        size_ += bytes.size();
        ++records_;
    }

    std::filesystem::path path_;
    int fd_ = -1;
    std::uint64_t size_ = 0;     // bytes of whole records in the file
    std::int64_t records_ = 0;
};

}  // namespace ewe::io
