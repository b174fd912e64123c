// Shared pieces of the sheep_vae program: loading and validating Quick, Draw!
// bitmaps, the default data source, devices, timers and JSON lines.
#pragma once

#include <unistd.h>

#include <iostream>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/ewe.hpp>
#include <ewe/io/npy.hpp>

#include "procedural_sheep.hpp"

namespace sheep {

namespace fs = std::filesystem;
using ewe::fail;

constexpr std::int64_t kSide = 28, kPixels = kSide * kSide;

inline ewe::Device parse_device(const std::string& name) {
    if (name == "cpu") return ewe::Device::cpu;
    if (name == "cuda") return ewe::Device::cuda;
    fail("--device: expected cpu or cuda, found '", name, "'");
}

// Drawings as floats in [0, 1], shape (N, 28, 28, 1), on the host.
struct Bitmaps {
    ewe::Tensor<float> images;
    std::string source;  // file name or "procedural"
    std::int64_t count() const { return images.numel() == 0 ? 0 : images.dim(0); }
    const float* row(std::int64_t i) const { return images.data() + i * kPixels; }
};

inline Bitmaps bitmaps_from_bytes(const std::uint8_t* bytes, std::int64_t n, std::string source) {
    Bitmaps b{ewe::Tensor<float>(ewe::Shape{n, kSide, kSide, 1}), std::move(source)};
    for (std::int64_t i = 0; i < n * kPixels; ++i) b.images[i] = float(bytes[i]) / 255.0f;
    return b;
}

// Reads Quick, Draw! bitmaps: uint8 (N, 784) or (N, 28, 28) with 0..255 ink, or float32
// of those shapes with values in [0, 1]. `limit` > 0 keeps the first `limit` rows.
// Every rejection is an ewe::Error naming `flag` and the file.
inline Bitmaps load_bitmaps(const fs::path& path, std::int64_t limit = 0, const std::string& flag = "--data") {
    const std::string file = path.string();
    if (!fs::exists(path)) fail(flag, ": ", file, ": no such file");
    ewe::io::NpyArray a;
    try {
        a = ewe::io::read_npy(path);
    } catch (const ewe::Error& e) {
        fail(flag, ": ", e.what());
    }
    const ewe::Shape& s = a.shape;
    const bool flat = s.rank() == 2 && s[1] == kPixels;
    const bool square = s.rank() == 3 && s[1] == kSide && s[2] == kSide;
    if (!flat && !square)
        fail(flag, ": ", file, ": expected Quick, Draw! bitmaps of shape (N, 784) or (N, 28, 28), found ", s);
    if (s[0] == 0) fail(flag, ": ", file, ": the file holds no drawings (shape ", s, ")");
    if (a.dtype != ewe::io::DType::u8 && a.dtype != ewe::io::DType::f32)
        fail(flag, ": ", file, ": expected dtype uint8 (0..255) or float32 (0..1), found ", ewe::io::to_string(a.dtype));
    const std::int64_t n = limit > 0 ? std::min<std::int64_t>(limit, s[0]) : s[0];
    if (a.dtype == ewe::io::DType::u8)
        return bitmaps_from_bytes(reinterpret_cast<const std::uint8_t*>(a.bytes.data()), n, file);
    Bitmaps b{ewe::Tensor<float>(ewe::Shape{n, kSide, kSide, 1}), file};
    const float* src = reinterpret_cast<const float*>(a.bytes.data());
    for (std::int64_t i = 0; i < n * kPixels; ++i) {
        const float v = src[i];
        if (!std::isfinite(v))
            fail(flag, ": ", file, ": non-finite value ", v, " at drawing ", i / kPixels, ", pixel ", i % kPixels);
        if (v < 0.0f || v > 1.0f)
            fail(flag, ": ", file, ": float32 bitmaps must lie in [0, 1], found ", v, " at drawing ", i / kPixels,
                 ", pixel ", i % kPixels, " (uint8 files hold 0..255)");
        b.images[i] = v;
    }
    return b;
}

// The training data when --data is not given: $EWE_DATA/sheep.npy if it exists, else
// procedural doodles (1,000 unless --limit says otherwise).
inline Bitmaps default_bitmaps(std::int64_t limit, std::uint64_t seed) {
    if (const char* dir = std::getenv("EWE_DATA"); dir && *dir) {
        const fs::path p = fs::path(dir) / "sheep.npy";
        if (fs::exists(p)) return load_bitmaps(p, limit, "$EWE_DATA/sheep.npy");
    }
    const std::int64_t n = limit > 0 ? limit : 1000;
    const auto bytes = procedural_sheep(n, seed);
    return bitmaps_from_bytes(bytes.data(), n, "procedural");
}

inline double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Peak resident set size in MiB (VmHWM of /proc/self/status); 0 where unavailable.
inline double peak_rss_mb() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    return 0.0;
}

inline int thread_count() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += c;
        else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += c;
    }
    return out;
}

// One JSON object on one line, built field by field.
class JsonLine {
public:
    JsonLine& add(const std::string& key, double v) {
        char buf[64];
        if (std::isfinite(v)) std::snprintf(buf, sizeof buf, "%.6g", v);
        else std::snprintf(buf, sizeof buf, "null");
        return raw(key, buf);
    }
    JsonLine& add(const std::string& key, std::int64_t v) { return raw(key, std::to_string(v)); }
    JsonLine& add(const std::string& key, int v) { return raw(key, std::to_string(v)); }
    JsonLine& add(const std::string& key, const std::string& v) { return raw(key, "\"" + json_escape(v) + "\""); }
    JsonLine& add(const std::string& key, const char* v) { return add(key, std::string(v)); }
    std::string str() const { return "{" + body_ + "}"; }

private:
    JsonLine& raw(const std::string& key, const std::string& v) {
        body_ += (body_.empty() ? "\"" : ", \"") + json_escape(key) + "\": " + v;
        return *this;
    }
    std::string body_;
};

// Parses "a,b,c" into numbers; `flag` names the option in errors.
inline std::vector<double> parse_numbers(const std::string& text, const std::string& flag) {
    std::vector<double> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        char* end = nullptr;
        const double v = std::strtod(item.c_str(), &end);
        if (item.empty() || end == item.c_str() || *end != '\0' || !std::isfinite(v))
            fail(flag, ": expected comma-separated numbers, found '", text, "'");
        out.push_back(v);
    }
    if (out.empty()) fail(flag, ": expected comma-separated numbers, found '", text, "'");
    return out;
}

}  // namespace sheep
