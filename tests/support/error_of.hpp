// error_of(f): the message of the ewe::Error that f() throws, or "(no error)" — for
// tests that compare a whole message.
#pragma once

#include <string>

#include <ewe/core/error.hpp>

namespace ewe_test {

inline std::string error_of(const auto& f) {
    try {
        f();
    } catch (const ewe::Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace ewe_test
