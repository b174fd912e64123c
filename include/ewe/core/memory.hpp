// Memory a model asks for, checked before it is allocated: MemoryEstimate (the bytes
// of parameters, gradients and activations), the host memory ewe
// may use (MemAvailable of /proc/meminfo, lowered by EWE_MEMORY_LIMIT), and
// OutOfMemory, the ewe::Error a refusal throws, which carries both numbers so that a
// program can name its own flag; and the process' peak resident memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>

#include "ewe/core/error.hpp"

namespace ewe {

// Bytes as people read them: "512 bytes", "3.2 MiB", "40.1 GiB".
inline std::string format_bytes(std::int64_t bytes) {
    if (bytes < 1024) return std::to_string(bytes) + " bytes";
    const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = double(bytes);
    int u = -1;
    while (v >= 1024 && u < 5) v /= 1024, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

// What a model needs, in bytes, by kind.
struct MemoryEstimate {
    std::int64_t parameters = 0;   // values, trainable and not
    std::int64_t gradients = 0;    // one per trainable value
    std::int64_t activations = 0;  // every buffer planned for max_batch rows
    std::int64_t total() const { return sum(sum(parameters, gradients), activations); }
    // The part that does not grow with the batch.
    std::int64_t fixed() const { return sum(parameters, gradients); }
    std::string describe() const {
        return format_bytes(total()) + " (parameters " + format_bytes(parameters) + ", gradients " +
               format_bytes(gradients) + ", activations " + format_bytes(activations) + ")";
    }

private:
    static std::int64_t sum(std::int64_t a, std::int64_t b) {
        return a > std::numeric_limits<std::int64_t>::max() - b ? std::numeric_limits<std::int64_t>::max() : a + b;
    }
};

// A refused allocation: `what` would need `needed` bytes, `available` are free.
class EWE_VISIBLE OutOfMemory : public Error {
public:
    OutOfMemory(const std::string& message, MemoryEstimate needed, std::int64_t available)
        : Error(message), needed_(needed), available_(available) {}
    const MemoryEstimate& needed() const { return needed_; }
    std::int64_t available() const { return available_; }

private:
    MemoryEstimate needed_;
    std::int64_t available_;
};

// Host memory ewe may allocate: MemAvailable of /proc/meminfo (no limit where it
// cannot be read), or EWE_MEMORY_LIMIT (bytes) when that is set and lower.
inline std::int64_t available_host_memory() {
    std::int64_t available = std::numeric_limits<std::int64_t>::max();
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::int64_t kib = 0;
    while (in >> key >> kib) {
        if (key == "MemAvailable:") {
            available = kib * 1024;
            break;
        }
        in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    if (const char* limit = std::getenv("EWE_MEMORY_LIMIT"); limit && *limit) {
        char* end = nullptr;
        const long long v = std::strtoll(limit, &end, 10);
        if (*end != '\0' || v <= 0) fail("EWE_MEMORY_LIMIT: expected a positive number of bytes, found '", limit, "'");
        available = std::min<std::int64_t>(available, v);
    }
    return available;
}

// The most resident memory this process has held so far, in bytes (VmHWM of
// /proc/self/status); 0 where it cannot be read.
inline std::int64_t peak_resident_memory() {
    std::ifstream in("/proc/self/status");
    std::string key;
    while (in >> key) {
        if (key == "VmHWM:") {
            std::int64_t kib = 0;
            return in >> kib ? kib * 1024 : 0;
        }
        in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    return 0;
}

}  // namespace ewe
