// sheep_vae's small helpers (src/common.hpp): printf into a stream, --device and
// comma-separated numbers.
#include "common.hpp"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
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

}  // namespace sheep
