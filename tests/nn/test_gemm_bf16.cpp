// The CPU float backend's bf16 mode (ContextOptions::cpu_product_precision): the bf16
// product of ewe/cpu/gemm_bf16.hpp against a double-precision product of the same
// inputs rounded to bf16 (so only fp32 summation error remains), with A and B each
// row-major or transposed, odd depths (a padded last pair), partial tiles, panels and
// depth blocks, accumulation, bias and ReLU; im2col_bf16's packed patch rows against
// the fp32 patch block packed as gemm_bf16 packs it (odd depths, odd row counts, blocks
// that start inside an image); then the dense, convolution and transposed convolution
// ops in the mode, with the default and with small, odd im2col blocks: the same for 1,
// 2 and 3 threads, and within bf16's rounding of fp32. A finite-difference gradient check means nothing here (bf16 inputs
// perturb the products by about 2^-8, far above a difference quotient's resolution):
// the fp32 gradchecks cover the ops. The mode is refused for double, on CUDA, and where
// the build or the CPU lacks AVX512_BF16. The kernel cases are skipped, with a message,
// where the mode is not available.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "relative_error.hpp"

#include <ewe/cpu/gemm_bf16.hpp>
#include <ewe/cpu/im2col_bf16.hpp>
#include <ewe/ewe.hpp>

namespace {

using namespace ewe;
using ewe_test::relative_error;

std::vector<float> pattern(std::int64_t count, int period, float offset) {
    std::vector<float> v(std::size_t(count), 0.0f);
    for (std::int64_t i = 0; i < count; ++i)
        v[std::size_t(i)] = (float((i * 37) % period) / float(period) - offset) * 1.37f;
    return v;
}

struct Case {
    std::int64_t m, n, k;
    bool transposed_a, transposed_b, accumulate, bias, relu;
};

double bf16_product_error(const Case& t) {
    const std::int64_t ldc = t.n + 3, lda = (t.transposed_a ? t.m : t.k) + 2, ldb = (t.transposed_b ? t.k : t.n) + 5;
    const std::vector<float> a = pattern((t.transposed_a ? t.k : t.m) * lda, 11, 0.45f),
                             b = pattern((t.transposed_b ? t.n : t.k) * ldb, 7, 0.5f), bias = pattern(t.n, 5, 0.5f);
    std::vector<float> c = pattern(t.m * ldc, 3, 0.4f);
    const std::vector<float> c0 = c;
    const std::int64_t a_rs = t.transposed_a ? 1 : lda, a_cs = t.transposed_a ? lda : 1;
    const std::int64_t b_rs = t.transposed_b ? 1 : ldb, b_cs = t.transposed_b ? ldb : 1;
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
    cpu::gemm_bf16(t.m, t.n, t.k, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, c.data(), ldc, t.accumulate,
                   t.bias ? bias.data() : nullptr, t.relu);
#endif
    std::vector<float> got;
    std::vector<double> want;
    for (std::int64_t i = 0; i < t.m; ++i)
        for (std::int64_t j = 0; j < ldc; ++j) {
            const std::size_t at = std::size_t(i * ldc + j);
            if (j >= t.n) {  // outside C: untouched
                CHECK(c[at] == c0[at]);
                continue;
            }
            double sum = t.accumulate ? double(c0[at]) : 0.0;
            for (std::int64_t p = 0; p < t.k; ++p)
                sum += double(cpu::round_to_bf16(a[std::size_t(i * a_rs + p * a_cs)])) *
                       double(cpu::round_to_bf16(b[std::size_t(p * b_rs + j * b_cs)]));
            if (t.bias) sum += double(bias[std::size_t(j)]);
            if (t.relu) sum = std::max(sum, 0.0);
            got.push_back(c[at]);
            want.push_back(sum);
        }
    return relative_error(got, want);
}

// The float dense, convolution and transposed convolution ops, forward and backward, on
// `threads` threads with the products in `precision` and im2col blocks of
// `im2col_elements`: every output, one after another.
std::vector<float> run_layers(CpuProductPrecision precision, int threads, std::int64_t im2col_elements) {
    Context ctx(Device::cpu, ContextOptions{.threads = threads, .cpu_im2col_elements = im2col_elements,
                                            .cpu_product_precision = precision});
    std::vector<float> out;
    const auto fill = [](Tensor<float>& t, int period, float offset) {
        const std::vector<float> v = pattern(t.numel(), period, offset);
        std::copy(v.begin(), v.end(), t.data());
    };
    const auto keep = [&out](const Tensor<float>& t) { out.insert(out.end(), t.data(), t.data() + t.numel()); };
    {  // dense: pieces of w's columns (37 -> 1500) at a batch that takes bf16
        const std::int64_t batch = 40, in = 37, width = 1500;
        Tensor<float> x(Shape{batch, in}), w(Shape{in, width}), b(Shape{width}), y(Shape{batch, width}),
            dy(Shape{batch, width}), dpre(Shape{batch, width}), dx(Shape{batch, in}), dw(Shape{in, width}),
            db(Shape{width});
        fill(x, 13, 0.5f);
        fill(w, 7, 0.45f);
        fill(b, 3, 0.3f);
        fill(dy, 5, 0.4f);
        ops::dense_forward<float>(ctx, x.view(), w.view(), b.view(), Activation::relu, y.view());
        ops::dense_backward<float>(ctx, x.view(), w.view(), y.view(), dy.view(), Activation::relu, dpre.view(),
                                   dx.view(), dw.view(), db.view());
        for (const Tensor<float>* t : {&y, &dx, &dw, &db}) keep(*t);
    }
    // A strided, padded convolution (3 -> 20 channels, 5 x 5 kernel, odd depth 75) and
    // the transposed convolution of the same geometry.
    ConvGeometry g;
    g.batch = 3;
    g.in_c = 3;
    g.out_c = 20;
    g.h = ConvAxis::forward(13, 5, 2, Padding::same);
    g.w = ConvAxis::forward(11, 5, 2, Padding::same);
    Tensor<float> x(Shape{3, 13, 11, 3}), w(Shape{20, 5, 5, 3}), b(Shape{20}), y(Shape{3, g.h.out, g.w.out, 20}),
        dy(y.shape()), dpre(y.shape()), dx(x.shape()), dw(w.shape()), db(b.shape());
    fill(x, 13, 0.5f);
    fill(w, 7, 0.45f);
    fill(b, 3, 0.3f);
    fill(dy, 5, 0.4f);
    ops::conv2d_forward<float>(ctx, g, x.view(), w.view(), b.view(), Activation::relu, y.view());
    ops::conv2d_backward<float>(ctx, g, x.view(), w.view(), y.view(), dy.view(), Activation::relu, dpre.view(),
                                dx.view(), dw.view(), db.view());
    for (const Tensor<float>* t : {&y, &dx, &dw, &db}) keep(*t);
    Tensor<float> tb(Shape{3}), ty(x.shape()), tdy(x.shape()), tdpre(x.shape()), tdx(y.shape()), tdw(w.shape()),
        tdb(Shape{3});
    fill(tb, 3, 0.3f);
    fill(tdy, 5, 0.4f);
    ops::conv2d_transpose_forward<float>(ctx, g, y.view(), w.view(), tb.view(), Activation::none, ty.view());
    ops::conv2d_transpose_backward<float>(ctx, g, y.view(), w.view(), ty.view(), tdy.view(), Activation::none,
                                          tdpre.view(), tdx.view(), tdw.view(), tdb.view());
    for (const Tensor<float>* t : {&ty, &tdx, &tdw, &tdb}) keep(*t);
    return out;
}

}  // namespace

TEST_CASE("bf16 rounding is to nearest, ties to even") {
    CHECK(cpu::round_to_bf16(1.0f) == 1.0f);
    CHECK(cpu::round_to_bf16(1.0f + 0x1p-8f) == 1.0f);             // a tie: down to the even 1.0
    CHECK(cpu::round_to_bf16(1.0f + 0x1p-7f + 0x1p-8f) == 1.0f + 0x1p-6f);  // a tie: up to the even
    CHECK(cpu::round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);  // above the tie: up
    CHECK(cpu::round_to_bf16(-3.0f) == -3.0f);
    CHECK(std::isnan(cpu::round_to_bf16(std::nanf(""))));
}

TEST_CASE("the bf16 product matches a double product of the bf16-rounded inputs at every edge") {
    if (!cpu_bf16_products_available()) {
        MESSAGE("this build or CPU has no AVX512_BF16: the bf16 mode is refused, nothing to check here");
        return;
    }
    // one panel as wide as C (1, 2, 4, 5 vectors) and panels of three with 1- and
    // 2-vector tails; odd depths; several depth blocks (k > 128); every A and B layout
    for (const Case& t : {Case{1, 1, 1, false, false, false, false, false}, Case{8, 32, 128, false, false, false, false, false},
                          Case{9, 33, 129, true, false, false, false, false}, Case{15, 80, 161, false, true, false, true, true},
                          Case{7, 17, 300, true, true, false, false, false}, Case{80, 1280, 257, true, false, true, false, false},
                          Case{100, 10, 41, false, false, true, true, false}, Case{3, 47, 5, true, true, true, true, true},
                          Case{13, 64, 131, false, true, true, true, true}, Case{11, 70, 260, false, false, false, true, false},
                          Case{17, 57, 33, true, false, true, false, true}, Case{19, 80, 721, false, true, false, false, false},
                          Case{9, 100, 3, false, false, true, true, true}, Case{21, 20, 90, true, true, false, true, true}}) {
        CAPTURE(t.m);
        CAPTURE(t.n);
        CAPTURE(t.k);
        CAPTURE(t.transposed_a);
        CAPTURE(t.transposed_b);
        CAPTURE(t.accumulate);
        CHECK(bf16_product_error(t) < 1e-5);
    }
}

TEST_CASE("im2col_bf16 packs the patch rows as gemm_bf16 packs the fp32 patch block") {
    if (!cpu_bf16_products_available()) {
        MESSAGE("this build or CPU has no AVX512_BF16: the bf16 mode is refused, nothing to check here");
        return;
    }
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
    struct Geometry {
        std::int64_t h, w, in_c, kernel, stride;
    };
    // depths K = 75 (odd), 90, 7 (odd, under one vector) and 360 (over a vector of pairs)
    for (const Geometry& t : {Geometry{13, 11, 3, 5, 2}, Geometry{9, 9, 10, 3, 1}, Geometry{6, 5, 7, 1, 1},
                              Geometry{7, 7, 40, 3, 2}}) {
        ConvGeometry g;
        g.batch = 3;
        g.in_c = t.in_c;
        g.out_c = 4;
        g.h = ConvAxis::forward(t.h, t.kernel, t.stride, Padding::same);
        g.w = ConvAxis::forward(t.w, t.kernel, t.stride, Padding::same);
        const std::int64_t K = g.gemm_k(), M = g.gemm_m(), pixels = g.h.out * g.w.out;
        const std::vector<float> x = pattern(g.batch * t.h * t.w * t.in_c, 13, 0.5f);
        // blocks: one row, an odd count from inside the first image into the second,
        // an even count, and the whole patch matrix
        for (const auto& [first, last] : {std::pair<std::int64_t, std::int64_t>{5, 6},
                                          {pixels - 3, pixels + 4}, {2, 2 + 2 * (pixels / 2)}, {0, M}}) {
            CAPTURE(K);
            CAPTURE(first);
            CAPTURE(last);
            const std::int64_t rows = last - first;
            std::vector<float> cols(std::size_t(rows * K)), buffer(std::size_t(2 * K));
            cpu::im2col(g, x.data(), first, last, cols.data());
            std::vector<std::uint32_t> want_a(std::size_t(cpu::bf16_packed_a_words(rows, K)), 0u),
                want_b(std::size_t(cpu::bf16_packed_b_words(rows, K)), 0u), got_a(want_a.size(), 0u),
                got_b(want_b.size(), 0u);
            cpu::pack_bf16_a(rows, K, cols.data(), K, 1, want_a.data());
            cpu::pack_bf16_b(rows, K, cols.data(), K, 1, want_b.data());
            cpu::im2col_bf16(g, x.data(), first, last, buffer.data(), got_a.data(), got_b.data());
            CHECK(got_a == want_a);
            CHECK(got_b == want_b);
        }
    }
#endif
}

TEST_CASE("float layers in the bf16 mode: the same on 1, 2 and 3 threads, within bf16 rounding of fp32") {
    if (!cpu_bf16_products_available()) {
        MESSAGE("this build or CPU has no AVX512_BF16: the bf16 mode is refused, nothing to check here");
        return;
    }
    // the default blocks, and blocks of 700 / 75 = 9 patch rows (odd, crossing images)
    for (const std::int64_t im2col_elements : {ContextOptions{}.cpu_im2col_elements, std::int64_t(700)}) {
        CAPTURE(im2col_elements);
        const std::vector<float> bf16 = run_layers(CpuProductPrecision::bf16, 1, im2col_elements);
        for (int threads : {2, 3}) {
            CAPTURE(threads);
            CHECK(run_layers(CpuProductPrecision::bf16, threads, im2col_elements) == bf16);
        }
        const std::vector<float> fp32 = run_layers(CpuProductPrecision::fp32, 1, im2col_elements);
        REQUIRE(fp32.size() == bf16.size());
        CHECK(bf16 != fp32);  // the mode did round
        const double error = relative_error(bf16, std::vector<double>(fp32.begin(), fp32.end()));
        CHECK(error > 1e-5);
        CHECK(error < 2e-2);
    }
}

TEST_CASE("the bf16 mode is refused where it cannot run") {
    const ContextOptions bf16{.cpu_product_precision = CpuProductPrecision::bf16};
    if (!cpu_bf16_products_available()) {
        CHECK_THROWS_WITH_AS(Context(Device::cpu, bf16), doctest::Contains("needs AVX512_BF16"), Error);
        return;
    }
    Context ctx(Device::cpu, bf16);
    Tensor<double> x(Shape{2, 3}), y(Shape{2, 3});
    CHECK_THROWS_WITH_AS(ops::activation_forward<double>(ctx, Activation::relu, x.view(), y.view()),
                         doctest::Contains("bf16 applies to float"), Error);
    CHECK_THROWS_WITH_AS(Context(Device::cuda, bf16), doctest::Contains("cpu_product_precision bf16 is a CPU mode"),
                         Error);
}
