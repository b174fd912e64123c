// The rounding of ewe::cluster::detail::sq_step, the step of every squared distance in
// the clustering code: s + t*t rounded once (a fused multiply-add), as CUDA's fma does,
// on every host build, with or without the FMA instruction (-march=native or not).
// dbscan_gpu and kmeans_gpu are tested for exact equality with the CPU on that premise.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "ewe/cluster/kdtree.hpp"

using namespace ewe::cluster;

namespace {

using u128 = unsigned __int128;

// `value` * 2^exponent rounded to the nearest double, ties to even: the correctly
// rounded reference, computed in integers.
double round_to_double(u128 value, int exponent) {
    if (value == 0) return 0.0;
    const int width = 128 - (static_cast<std::uint64_t>(value >> 64) != 0
                                 ? std::countl_zero(static_cast<std::uint64_t>(value >> 64))
                                 : 64 + std::countl_zero(static_cast<std::uint64_t>(value)));
    const int drop = width > 53 ? width - 53 : 0;
    u128 kept = value >> drop;
    if (drop > 0) {
        const u128 rest = value & ((u128(1) << drop) - 1);
        const u128 half = u128(1) << (drop - 1);
        if (rest > half || (rest == half && (kept & 1) != 0)) ++kept;  // may carry to 2^53: still exact
    }
    return std::ldexp(static_cast<double>(static_cast<std::uint64_t>(kept)), exponent + drop);
}

std::string hex(double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%a", v);
    return text;
}

// s + t*t with the product rounded first (what `s + t * t` gives without FMA).
double unfused(double s, double t) {
    volatile double product = t * t;  // volatile: the compiler may not fuse it back
    return s + product;
}

}  // namespace

TEST_CASE("sq_step rounds s + t*t once: the hand-worked case") {
    // t = 1 + 2^-27, s = 2^-53: exactly 1 + 2^-26 + 3*2^-54, which rounds to
    // 1 + 2^-26 + 2^-52; rounding t*t first gives 1 + 2^-26 + 2^-54 and then a tie
    // that goes to the even 1 + 2^-26.
    volatile double s = 0x1p-53, t = 1 + 0x1p-27;
    CHECK(detail::sq_step(s, t) == 1 + 0x1p-26 + 0x1p-52);
    CHECK(unfused(s, t) == 1 + 0x1p-26);  // the two roundings really differ here

    // The same case as a 3-D squared distance: the first two steps sum to 2^-53 exactly.
    const double a[3] = {0, 0, 0};
    const double b[3] = {0x1p-27, 0x1p-27, 1 + 0x1p-27};
    CHECK(detail::sqdist(a, b, 3) == 1 + 0x1p-26 + 0x1p-52);

    // A radius query decides by the fused value: b is outside r^2 = 1 + 2^-26, though
    // the unfused sum would put it on the boundary (inside).
    const KdTree tree(b, 1, 3);
    int found = 0;
    tree.radius(a, 1 + 0x1p-26, [&](std::int64_t) { return ++found, true; });
    CHECK(found == 0);
    tree.radius(a, 1 + 0x1p-26 + 0x1p-52, [&](std::int64_t) { return ++found, true; });
    CHECK(found == 1);
}

TEST_CASE("sq_step equals the correctly rounded s + t*t on random inputs") {
    // t = T * 2^-52 and s = S * 2^-104 with integers T < 2^52 and S of at most 53
    // significant bits: both are exact doubles and T*T + S is exact in 128 bits.
    std::mt19937_64 rng(12);
    int wrong = 0, unfused_wrong = 0;
    double first_s = 0, first_t = 0;
    for (int trial = 0; trial < 200000; ++trial) {
        const std::uint64_t T = rng() >> (12 + rng() % 20);
        const u128 S = u128(rng() >> 11) << (rng() % 52);
        const double t = std::ldexp(static_cast<double>(T), -52);
        const double s = std::ldexp(static_cast<double>(static_cast<std::uint64_t>(S >> 52)), -52) +
                         std::ldexp(static_cast<double>(static_cast<std::uint64_t>(S & ((u128(1) << 52) - 1))), -104);
        REQUIRE(round_to_double(S, -104) == s);  // s is exact (S has at most 53 significant bits)
        const double expected = round_to_double(u128(T) * T + S, -104);
        if (detail::sq_step(s, t) != expected && wrong++ == 0) {
            first_s = s;
            first_t = t;
        }
        unfused_wrong += unfused(s, t) != expected;
    }
    INFO("first wrong case: s = " << hex(first_s) << ", t = " << hex(first_t));
    CHECK(wrong == 0);
    // The inputs do exercise the difference: rounding the product first is often wrong.
    CHECK(unfused_wrong > 1000);
}
