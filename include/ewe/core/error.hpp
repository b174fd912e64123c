// ewe::Error, the exception type of the library (OutOfMemory, ewe/core/memory.hpp,
// derives from it), the EWE_REQUIRE check, and format_number, the one way numbers
// are written into messages. Messages follow one pattern: who complains (layer,
// file, argument), what was expected, and what was found.
#pragma once

#include <charconv>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

// Default visibility even in a binary built with -fvisibility=hidden (the CUDA backend
// module is): an ewe::Error the module throws must be caught as ewe::Error by the
// program that loaded it, so its type_info is never a hidden, module-private one.
#if defined(__GNUC__) || defined(__clang__)
#define EWE_VISIBLE __attribute__((visibility("default")))
#else
#define EWE_VISIBLE
#endif

namespace ewe {

class EWE_VISIBLE Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// `v` as the shortest text that reads back as the same double (std::to_chars):
// 1e-09, 0.1, 16, 1.7976931348623157e+308; never 310 digits, never "0.000000".
inline std::string format_number(double v) {
    char buf[32];
    const auto result = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, result.ptr);
}

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
    std::ostringstream out;
    (out << ... << std::forward<Parts>(parts));
    return out.str();
}
}  // namespace detail

// Throws ewe::Error built from the streamed parts.
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
    throw Error(detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace ewe

// EWE_REQUIRE(cond, parts...): throws ewe::Error(parts...) when cond is false.
#define EWE_REQUIRE(cond, ...)                     \
    do {                                           \
        if (!(cond)) ::ewe::fail(__VA_ARGS__);     \
    } while (0)
