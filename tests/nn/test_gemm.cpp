// The AVX-512 matrix product of the CPU convolutions (ewe/cpu/gemm.hpp) against a
// double-precision reference: plain, transposed A (column stride), accumulating into C,
// with bias and ReLU fused, at shapes that leave partial row tiles, partial column tiles
// and partial depth blocks. Skipped, with a message, where the build has no AVX-512 (the
// backend then uses Eigen's products).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <ewe/cpu/gemm.hpp>

namespace {

std::vector<float> pattern(std::int64_t count, int period, float offset) {
    std::vector<float> v(std::size_t(count), 0.0f);
    for (std::int64_t i = 0; i < count; ++i) v[std::size_t(i)] = float((i * 37) % period) / float(period) - offset;
    return v;
}

struct Case {
    std::int64_t m, n, k;
    bool transposed_a, accumulate, bias, relu;
};

// The largest |kernel - reference| over C relative to the largest |reference|.
double relative_error(const Case& t) {
    const std::int64_t ldc = t.n + 3, ldb = t.n + 5;
    const std::vector<float> a = pattern(t.m * t.k, 11, 0.45f), b = pattern(t.k * ldb, 7, 0.5f),
                             bias = pattern(t.n, 5, 0.5f);
    std::vector<float> c = pattern(t.m * ldc, 3, 0.4f);
    const std::vector<float> c0 = c;
    // transposed: A is stored k x m (A(i, p) at a[p * m + i]).
    const std::int64_t a_rs = t.transposed_a ? 1 : t.k, a_cs = t.transposed_a ? t.m : 1;
#if defined(__AVX512F__)
    ewe::cpu::gemm(t.m, t.n, t.k, a.data(), a_rs, a_cs, b.data(), ldb, c.data(), ldc, t.accumulate,
                   t.bias ? bias.data() : nullptr, t.relu);
#endif
    double worst = 0, largest = 1e-30;
    for (std::int64_t i = 0; i < t.m; ++i) {
        for (std::int64_t j = 0; j < ldc; ++j) {
            const std::size_t at = std::size_t(i * ldc + j);
            if (j >= t.n) {  // outside C: untouched
                CHECK(c[at] == c0[at]);
                continue;
            }
            double want = t.accumulate ? double(c0[at]) : 0.0;
            for (std::int64_t p = 0; p < t.k; ++p)
                want += double(a[std::size_t(i * a_rs + p * a_cs)]) * double(b[std::size_t(p * ldb + j)]);
            if (t.bias) want += double(bias[std::size_t(j)]);
            if (t.relu) want = std::max(want, 0.0);
            worst = std::max(worst, std::abs(double(c[at]) - want));
            largest = std::max(largest, std::abs(want));
        }
    }
    return worst / largest;
}

}  // namespace

TEST_CASE("gemm matches a double reference at every tile edge") {
    if (!ewe::cpu::kHasGemmKernel) {
        MESSAGE("this build has no AVX-512: the CPU backend uses Eigen's products, nothing to check here");
        return;
    }
    for (const Case& t : {Case{1, 1, 1, false, false, false, false}, Case{8, 32, 128, false, false, false, false},
                          Case{9, 33, 129, false, false, false, false}, Case{15, 80, 160, false, false, true, true},
                          Case{7, 17, 300, true, false, false, false}, Case{80, 1280, 257, true, true, false, false},
                          Case{100, 10, 40, false, true, true, false}, Case{3, 47, 5, true, true, true, true},
                          // one panel as wide as C: 4 vectors x 6 rows, 5 vectors x 5 rows (partial
                          // row tiles, masked last vector), and panels of 3 with a 1- or 2-vector tail
                          Case{13, 64, 131, false, true, true, true}, Case{11, 70, 260, false, false, true, false},
                          Case{17, 57, 33, true, true, false, true}, Case{19, 80, 720, false, false, false, false},
                          Case{9, 100, 129, false, true, true, true}, Case{10, 120, 9, true, false, true, false},
                          Case{21, 20, 90, false, false, true, true}}) {
        CAPTURE(t.m);
        CAPTURE(t.n);
        CAPTURE(t.k);
        CAPTURE(t.transposed_a);
        CAPTURE(t.accumulate);
        CHECK(relative_error(t) < 1e-5);
    }
}
