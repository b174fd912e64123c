// The dense layers' float products (ewe/cpu/dense_kernels.hpp) against a double
// reference at shapes with remainders in every dimension: the 16 x 16 register
// transpose; streamed_product's column blocks, depth groups and non-temporal stores;
// streamed_product_bt's two ways, dot-product tiles and transposed panels. Then the
// float CPU dense ops through the backend in each of their blockings (one item, pieces
// of w's rows, pieces of w's columns) against the same reference, and identical for 1, 2
// and 3 threads. The kernel cases are skipped, with a message, where the build has no
// AVX-512 (the backend then uses Eigen's products; the op cases run either way).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "relative_error.hpp"

#include <ewe/cpu/dense_kernels.hpp>
#include <ewe/ewe.hpp>

namespace {

using ewe_test::relative_error;

using namespace ewe;

std::vector<float> pattern(std::int64_t count, int period, float offset) {
    std::vector<float> v(std::size_t(count), 0.0f);
    for (std::int64_t i = 0; i < count; ++i) v[std::size_t(i)] = float((i * 37) % period) / float(period) - offset;
    return v;
}

// streamed: C = A B (streamed_product); dot, panel: C = A B^T (dot_product_bt,
// panel_product_bt: the two ways of streamed_product_bt).
enum class Kernel { streamed, dot, panel };

struct ProductCase {
    Kernel kernel;
    std::int64_t m, n, k;
    bool transposed_a, accumulate;
    std::int64_t c_padding = 3;  // C's rows are n + c_padding apart
};

// The largest |kernel - reference| over C relative to the largest |reference|; entries
// of C's rows past column n must stay untouched.
double product_error(const ProductCase& t) {
    const bool transposed_b = t.kernel != Kernel::streamed;
    const std::int64_t ldc = t.n + t.c_padding, ldb = (transposed_b ? t.k : t.n) + 5;
    const std::vector<float> a = pattern(t.m * t.k, 11, 0.45f), b = pattern((transposed_b ? t.n : t.k) * ldb, 7, 0.5f);
    std::vector<float> c = pattern(t.m * ldc, 3, 0.4f);
    const std::vector<float> c0 = c;
    // transposed_a: A is stored k x m (A(i, p) at a[p * m + i]); transposed_b: B is stored
    // n x k (B(p, j) at b[j * ldb + p]).
    const std::int64_t a_rs = t.transposed_a ? 1 : t.k, a_cs = t.transposed_a ? t.m : 1;
#if defined(__AVX512F__)
    switch (t.kernel) {
        case Kernel::streamed:
            cpu::streamed_product(t.m, t.n, t.k, a.data(), a_rs, a_cs, b.data(), ldb, c.data(), ldc, t.accumulate);
            break;
        case Kernel::dot:
            cpu::dot_product_bt(t.m, t.n, t.k, a.data(), t.k, b.data(), ldb, c.data(), ldc, t.accumulate);
            break;
        case Kernel::panel:
            cpu::panel_product_bt(t.m, t.n, t.k, a.data(), t.k, b.data(), ldb, c.data(), ldc, t.accumulate);
            break;
    }
#endif
    double worst = 0, largest = 1e-30;
    for (std::int64_t i = 0; i < t.m; ++i) {
        for (std::int64_t j = 0; j < ldc; ++j) {
            const std::size_t at = std::size_t(i * ldc + j);
            if (j >= t.n) {
                CHECK(c[at] == c0[at]);
                continue;
            }
            double want = t.accumulate ? double(c0[at]) : 0.0;
            for (std::int64_t p = 0; p < t.k; ++p)
                want += double(a[std::size_t(i * a_rs + p * a_cs)]) *
                        double(b[std::size_t(transposed_b ? j * ldb + p : p * ldb + j)]);
            worst = std::max(worst, std::abs(double(c[at]) - want));
            largest = std::max(largest, std::abs(want));
        }
    }
    return worst / largest;
}

// y = act(x w + b), dpre, dx, dw and db of the float CPU ops on `threads` threads.
struct DenseResult {
    std::vector<float> y, dpre, dx, dw, db;
};

DenseResult run_dense(std::int64_t batch, std::int64_t in, std::int64_t out, Activation act, int threads) {
    Context ctx(Device::cpu, ContextOptions{.threads = threads});
    Tensor<float> x(Shape{batch, in}), w(Shape{in, out}), b(Shape{out}), y(Shape{batch, out}), dy(Shape{batch, out}),
        dpre(Shape{batch, out}), dx(Shape{batch, in}), dw(Shape{in, out}), db(Shape{out});
    const auto fill = [](Tensor<float>& t, int period, float offset) {
        const std::vector<float> v = pattern(t.numel(), period, offset);
        std::copy(v.begin(), v.end(), t.data());
    };
    fill(x, 13, 0.5f);
    fill(w, 7, 0.45f);
    fill(b, 3, 0.3f);
    fill(dy, 5, 0.4f);
    ops::dense_forward<float>(ctx, x.view(), w.view(), b.view(), act, y.view());
    ops::dense_backward<float>(ctx, x.view(), w.view(), y.view(), dy.view(), act, dpre.view(), dx.view(), dw.view(),
                               db.view());
    const auto values = [](const Tensor<float>& t) { return std::vector<float>(t.data(), t.data() + t.numel()); };
    return {values(y), values(dpre), values(dx), values(dw), values(db)};
}

double activate(Activation act, double pre) {
    if (act == Activation::relu) return std::max(pre, 0.0);
    if (act == Activation::sigmoid) return 1.0 / (1.0 + std::exp(-pre));
    return pre;
}

// d act / d pre in terms of y = act(pre).
double activation_slope(Activation act, double y) {
    if (act == Activation::relu) return y > 0 ? 1.0 : 0.0;
    if (act == Activation::sigmoid) return y * (1.0 - y);
    return 1.0;
}

}  // namespace

TEST_CASE("the dense kernels' transpose and products match a double reference at every block edge") {
    if (!cpu::kHasGemmKernel) {
        MESSAGE("this build has no AVX-512: the CPU backend uses Eigen's products, nothing to check here");
        return;
    }
#if defined(__AVX512F__)
    for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {16, 16}, {17, 33}, {5, 40}, {37, 3},
                                    {100, 128}}) {
        CAPTURE(rows);
        CAPTURE(cols);
        const std::int64_t ld_in = cols + 2, ld_out = rows + 3;
        const std::vector<float> in = pattern(rows * ld_in, 101, 0.0f);
        std::vector<float> out = pattern(cols * ld_out, 7, 2.0f);
        const std::vector<float> out0 = out;
        cpu::transpose(in.data(), ld_in, rows, cols, out.data(), ld_out);
        bool same = true;
        for (std::int64_t j = 0; j < cols; ++j)
            for (std::int64_t i = 0; i < ld_out; ++i)
                same = same && out[std::size_t(j * ld_out + i)] ==
                                   (i < rows ? in[std::size_t(i * ld_in + j)] : out0[std::size_t(j * ld_out + i)]);
        CHECK(same);
    }
#endif
    using enum Kernel;
    // Column blocks and depth groups (m <= 16, k <= 128, transposed A) with remainders;
    // non-temporal stores of a large C (k <= 16), of whole rows and of blocks of rows;
    // dot tiles with partial tiles and a partial last vector, over short and long rows,
    // whole tiles added to C; panels with partial 16 x 16 blocks, several panels in both
    // directions.
    for (const ProductCase& t :
         {ProductCase{streamed, 1, 8, 1, false, false}, ProductCase{streamed, 8, 100, 1000, false, false},
          ProductCase{streamed, 9, 401, 100, true, false}, ProductCase{streamed, 13, 100, 7, true, true},
          ProductCase{streamed, 17, 450, 101, true, true}, ProductCase{streamed, 1337, 101, 7, true, false, 0},
          ProductCase{streamed, 101, 1400, 9, true, false}, ProductCase{dot, 1, 1, 1, false, false},
          ProductCase{dot, 8, 103, 100, false, false}, ProductCase{dot, 7, 5, 33, false, true},
          ProductCase{dot, 16, 9, 128, false, true}, ProductCase{dot, 8, 101, 1969, false, true},
          ProductCase{dot, 12, 16, 700, false, false}, ProductCase{panel, 3, 8, 5, false, false},
          ProductCase{panel, 8, 100, 300, false, false}, ProductCase{panel, 17, 250, 100, false, true},
          ProductCase{panel, 65, 30, 257, false, true}}) {
        CAPTURE(int(t.kernel));
        CAPTURE(t.m);
        CAPTURE(t.n);
        CAPTURE(t.k);
        CAPTURE(t.transposed_a);
        CAPTURE(t.accumulate);
        CHECK(product_error(t) < 1e-5);
    }
}

TEST_CASE("float dense ops match a double reference in every blocking, the same on 1, 2 and 3 threads") {
    struct Case {
        std::int64_t batch, in, out;
        Activation act;
    };
    // One item; pieces of w's rows (in > out, in > 256); pieces of w's columns (the last
    // with the input gradient's partials as dot products over the pieces).
    for (const Case& t : {Case{9, 30, 50, Activation::relu}, Case{3, 1000, 100, Activation::none},
                          Case{5, 37, 1500, Activation::sigmoid}, Case{2, 600, 9, Activation::relu},
                          Case{4, 130, 2000, Activation::relu}}) {
        CAPTURE(t.batch);
        CAPTURE(t.in);
        CAPTURE(t.out);
        const DenseResult got = run_dense(t.batch, t.in, t.out, t.act, 1);
        // The reference from the same float inputs, in double.
        const std::vector<float> x = pattern(t.batch * t.in, 13, 0.5f), w = pattern(t.in * t.out, 7, 0.45f),
                                 b = pattern(t.out, 3, 0.3f), dy = pattern(t.batch * t.out, 5, 0.4f);
        std::vector<double> y(std::size_t(t.batch * t.out)), dpre(y.size()), dx(x.size()), dw(w.size()),
            db(std::size_t(t.out));
        for (std::int64_t r = 0; r < t.batch; ++r)
            for (std::int64_t c = 0; c < t.out; ++c) {
                double pre = b[std::size_t(c)];
                for (std::int64_t p = 0; p < t.in; ++p)
                    pre += double(x[std::size_t(r * t.in + p)]) * double(w[std::size_t(p * t.out + c)]);
                const std::size_t at = std::size_t(r * t.out + c);
                y[at] = activate(t.act, pre);
                // the slope from the float y the op saw, as the backward pass reads it
                dpre[at] = double(dy[at]) * activation_slope(t.act, double(got.y[at]));
            }
        for (std::int64_t r = 0; r < t.batch; ++r)
            for (std::int64_t c = 0; c < t.out; ++c) db[std::size_t(c)] += dpre[std::size_t(r * t.out + c)];
        for (std::int64_t p = 0; p < t.in; ++p)
            for (std::int64_t c = 0; c < t.out; ++c)
                for (std::int64_t r = 0; r < t.batch; ++r) {
                    const double d = dpre[std::size_t(r * t.out + c)];
                    dw[std::size_t(p * t.out + c)] += double(x[std::size_t(r * t.in + p)]) * d;
                    dx[std::size_t(r * t.in + p)] += d * double(w[std::size_t(p * t.out + c)]);
                }
        CHECK(relative_error(got.y, y) < 1e-5);
        CHECK(relative_error(got.dpre, dpre) < 1e-5);
        CHECK(relative_error(got.dx, dx) < 1e-5);
        CHECK(relative_error(got.dw, dw) < 1e-5);
        CHECK(relative_error(got.db, db) < 1e-5);
        for (int threads : {2, 3}) {
            CAPTURE(threads);
            const DenseResult again = run_dense(t.batch, t.in, t.out, t.act, threads);
            CHECK(again.y == got.y);
            CHECK(again.dx == got.dx);
            CHECK(again.dw == got.dw);
            CHECK(again.db == got.db);
        }
    }
}
