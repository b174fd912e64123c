// Range checks of sheep_vae's numeric options, written with ewe::format_number (CLI11's
// own Range prints its bounds with std::to_string: "0.000000" for 1e-9, and 309 digits
// for the bound of PositiveNumber), and the names of --product-precision. CLI11 prefixes
// each message with the option's name.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include <ewe/core/context.hpp>
#include <ewe/core/error.hpp>

namespace sheep {

// A number in [lo, hi], or in (lo, hi] when `lo_open`; hi may be infinite.
inline CLI::Validator number_in(double lo, double hi, bool lo_open = false) {
    const std::string range = std::isinf(hi) ? std::string(lo_open ? "> " : ">= ") + ewe::format_number(lo)
                                             : std::string("in ") + (lo_open ? "(" : "[") + ewe::format_number(lo) +
                                                   ", " + ewe::format_number(hi) + "]";
    return CLI::Validator(
        [=](std::string& input) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(input.c_str(), &end);
            if (input.empty() || *end != '\0' || std::isnan(v)) return "expected a number " + range + ", found '" + input + "'";
            if (v < lo || (lo_open && v == lo) || v > hi) return "expected a number " + range + ", found " + input;
            return {};
        },
        "NUMBER " + range);
}
inline CLI::Validator positive() { return number_in(0, std::numeric_limits<double>::infinity(), true); }
inline CLI::Validator non_negative() { return number_in(0, std::numeric_limits<double>::infinity()); }

// --product-precision: its help and its check (ewe::cpu_product_precision_named reads it).
inline constexpr const char* kProductPrecisionHelp =
    "Inputs of the CPU products (conv, conv-transpose, dense): fp32, or bf16 (rounded to bfloat16, summed in fp32; "
    "needs AVX512_BF16)";
inline CLI::IsMember product_precision_names() { return CLI::IsMember({"fp32", "bf16"}); }

}  // namespace sheep
