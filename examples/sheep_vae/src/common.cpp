// sheep_vae's small helpers (src/common.hpp): printf into a stream, --device and
// comma-separated numbers, peak memory and JSON lines.
#include "common.hpp"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sheep {

void print(std::ostream& os, const char* format, ...) {
    std::va_list args, again;
    va_start(args, format);
    va_copy(again, args);
    const int n = std::vsnprintf(nullptr, 0, format, args);
    va_end(args);
    std::string text(std::size_t(std::max(n, 0)) + 1, '\0');
    std::vsnprintf(text.data(), text.size(), format, again);
    va_end(again);
    os.write(text.data(), std::max(n, 0));
}

ewe::Device parse_device(const std::string& name) {
    if (name == "cpu") return ewe::Device::cpu;
    if (name == "cuda") return ewe::Device::cuda;
    fail("--device: expected cpu or cuda, found '", name, "'");
}

std::vector<double> parse_numbers(const std::string& text, const std::string& flag) {
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

std::vector<std::int64_t> parse_epochs(const std::string& text, const std::string& flag) {
    std::vector<std::int64_t> epochs;
    if (text.empty()) return epochs;
    for (double e : parse_numbers(text, flag)) {
        if (e < 1 || e != std::floor(e) || e > 1e9) fail(flag, ": expected epoch numbers >= 1, found '", text, "'");
        epochs.push_back(std::int64_t(e));
    }
    return epochs;
}

double peak_rss_mb() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    return 0.0;
}

namespace {

std::string json_escape(const std::string& s) {
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

}  // namespace

JsonLine& JsonLine::add(const std::string& key, double v) {
    char buf[64];
    if (std::isfinite(v)) std::snprintf(buf, sizeof buf, "%.6g", v);
    else std::snprintf(buf, sizeof buf, "null");
    return raw(key, buf);
}

JsonLine& JsonLine::add(const std::string& key, const std::string& v) {
    std::string quoted = "\"";
    quoted += json_escape(v);
    quoted += '"';
    return raw(key, quoted);
}

JsonLine& JsonLine::raw(const std::string& key, const std::string& v) {
    body_ += (body_.empty() ? "\"" : ", \"") + json_escape(key) + "\": " + v;
    return *this;
}

}  // namespace sheep
