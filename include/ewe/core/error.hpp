// ewe::Error, the one exception type of the library, and the EWE_REQUIRE check.
// Messages follow one pattern: who complains (layer, file, argument), what was
// expected, and what was found.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ewe {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

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
