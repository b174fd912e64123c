// CPU-vs-CUDA parity of every op, forward and backward, on fresh random inputs,
// including odd shapes (asymmetric TF `same` padding, stride 2, `valid` tails,
// batches 1 and 3, parameters at unaligned offsets), and one full ewe::train_step of
// the SheepVae from the same seed and batch on both devices.
//
// Bounds (fp32, no TF32, relative L2 error ||gpu - cpu|| / ||cpu||):
//   kOp   = 1e-5 for elementwise ops, reductions, optimizers (same formulas, same
//           double accumulation; only FMA contraction and libm ulps differ);
//   kGemm = 1e-4 for dense and convolutions (cuDNN/cuBLASLt sum in another order);
//   kStep = 1e-3 for the gradients of a whole training step (errors of ~30 layers
//           compound; a ReLU whose input is ~0 may flip);
//   dropout masks are compared exactly;
//   optimizers are judged by the update itself (after - before on each device), with
//   kOp: the parameters would hide an update error below |update| / |params| (~1%
//   here) of their bound. The devices' FMA contraction moves a parameter by 1 ulp only
//   where it flips the rounding of p - update (~1% of elements): ~1e-6 of the update.
// Every output under test is filled with NaN (test::fill_nan) before the op, on both
// devices, so an output an op fails to write fails its check; each case asserts which
// convolution path (cuDNN or the im2col + GEMM fallback) its context took.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "parity_util.cuh"

using namespace ewe;
using test::fill_nan;
using test::to_host;
using test::uniform;

namespace {

constexpr double kOp = 1e-5;
constexpr double kGemm = 1e-4;
constexpr double kStep = 1e-3;

struct Devices {
    Context cpu{Device::cpu};
    Context gpu{Device::cuda};
};

Tensor<float> gpu_copy(const Tensor<float>& host) { return host.to(Device::cuda); }

// A copy of `host` placed `offset` floats into a larger device buffer (unaligned
// when offset % 4 != 0), like a parameter inside the flat parameter buffer.
struct Unaligned {
    Tensor<float> storage;
    TensorView<float> view;
    Unaligned(const Tensor<float>& host, std::int64_t offset) {
        storage = Tensor<float>(Shape{host.numel() + offset}, Device::cuda);
        view = storage.view().slice(offset, host.shape());
        ewe::copy<float>(host.view(), view);
    }
};

ConvGeometry conv_geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t filters,
                           std::int64_t k, std::int64_t s, Padding p) {
    ConvGeometry g;
    g.batch = n;
    g.in_c = c;
    g.out_c = filters;
    g.h = ConvAxis::forward(h, k, s, p);
    g.w = ConvAxis::forward(w, k, s, p);
    return g;
}

// The hidden convolution of a Conv2DTranspose with input (n, h, w, c) and `filters` outputs.
ConvGeometry transpose_geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
                                std::int64_t filters, std::int64_t k, std::int64_t s, Padding p) {
    ConvGeometry g;
    g.batch = n;
    g.out_c = c;
    g.in_c = filters;
    g.h = ConvAxis::transposed(h, k, s, p);
    g.w = ConvAxis::transposed(w, k, s, p);
    return g;
}

const Activation kActivations[] = {Activation::none, Activation::relu, Activation::sigmoid};

// Convolution ops one check launches on the GPU context: check_conv runs forward,
// backward and backward without dx; check_conv_transpose forward and backward.
constexpr std::int64_t kOpsPerConvCheck = 3;
constexpr std::int64_t kOpsPerTransposeCheck = 2;

// Asserts how many convolution ops `gpu` ran through cuDNN and through the im2col +
// GEMM fallback (ConvPathCounts counts each op once, when it launches).
void check_conv_paths(const Context& gpu, std::int64_t cudnn, std::int64_t gemm) {
    const cuda::ConvPathCounts& counts = cuda::resources(gpu).conv_path_counts();
    INFO("conv ops through cuDNN: " << counts.cudnn << ", through im2col + GEMM: " << counts.gemm);
    CHECK(counts.cudnn == cudnn);
    CHECK(counts.gemm == gemm);
}

// Relative L2 error of the GPU's update of `before` against the CPU's (see the top).
double update_error(TensorView<const float> gpu_after, TensorView<const float> cpu_after,
                    const Tensor<float>& before) {
    const Tensor<float> gpu = to_host<float>(gpu_after), cpu = to_host<float>(cpu_after);
    Tensor<float> gpu_update(before.shape()), cpu_update(before.shape());
    for (std::int64_t i = 0; i < before.numel(); ++i) {
        gpu_update[i] = gpu[i] - before[i];
        cpu_update[i] = cpu[i] - before[i];
    }
    return test::relative_error(gpu_update.view(), cpu_update.view());
}

}  // namespace

TEST_CASE("dense forward and backward") {
    Devices d;
    std::uint32_t stream = 1;
    for (std::int64_t n : {1, 3, 64}) {
        for (Activation act : kActivations) {
            CAPTURE(n);
            CAPTURE(to_string(act));
            const std::int64_t in = 37, out = 19;
            Tensor<float> x = uniform(Shape{n, in}, stream++), w = uniform(Shape{in, out}, stream++);
            Tensor<float> b = uniform(Shape{out}, stream++), dy = uniform(Shape{n, out}, stream++);
            Tensor<float> gx = gpu_copy(x), gb = gpu_copy(b), gdy = gpu_copy(dy);
            Unaligned gw(w, 1);  // a kernel at an odd offset of the flat buffer
            Tensor<float> y(Shape{n, out}), gy(Shape{n, out}, Device::cuda);
            fill_nan({y, gy});
            ops::dense_forward<float>(d.cpu, x, w, b, act, y);
            ops::dense_forward<float>(d.gpu, gx, gw.view, gb, act, gy);
            EWE_CHECK_CLOSE(gy.view(), y.view(), kGemm);

            Tensor<float> dpre(Shape{n, out}), dx(Shape{n, in}), dw(Shape{in, out}), db(Shape{out});
            Tensor<float> gdpre(Shape{n, out}, Device::cuda), gdx(Shape{n, in}, Device::cuda);
            Tensor<float> gdb(Shape{out}, Device::cuda);
            Unaligned gdw(Tensor<float>(Shape{in, out}), 3);
            fill_nan({dpre, dx, dw, db, gdpre, gdx, gdw.view, gdb});
            ops::dense_backward<float>(d.cpu, x, w, y, dy, act, dpre, dx, dw, db);
            ops::dense_backward<float>(d.gpu, gx, gw.view, gy, gdy, act, gdpre, gdx, gdw.view, gdb);
            EWE_CHECK_CLOSE(gdpre.view(), dpre.view(), kGemm);  // dpre and db inherit y's GEMM rounding
            EWE_CHECK_CLOSE(gdx.view(), dx.view(), kGemm);
            EWE_CHECK_CLOSE(gdw.view, dw.view(), kGemm);
            EWE_CHECK_CLOSE(gdb.view(), db.view(), kGemm);
        }
    }
}

namespace {

void check_conv(Devices& d, const ConvGeometry& g, Activation act, std::uint32_t stream) {
    CAPTURE(g.batch);
    CAPTURE(g.h.in);
    CAPTURE(g.w.in);
    CAPTURE(g.h.kernel);
    CAPTURE(g.h.stride);
    CAPTURE(g.h.pad_before);
    CAPTURE(g.h.pad_after);
    CAPTURE(to_string(act));
    Tensor<float> x = uniform(g.input_shape(), stream), w = uniform(g.filter_shape(), stream + 1);
    Tensor<float> b = uniform(Shape{g.out_c}, stream + 2), dy = uniform(g.output_shape(), stream + 3);
    Tensor<float> gx = gpu_copy(x), gb = gpu_copy(b), gdy = gpu_copy(dy);
    Unaligned gw(w, 2);
    Tensor<float> y(g.output_shape()), gy(g.output_shape(), Device::cuda);
    fill_nan({y, gy});
    ops::conv2d_forward<float>(d.cpu, g, x, w, b, act, y);
    ops::conv2d_forward<float>(d.gpu, g, gx, gw.view, gb, act, gy);
    EWE_CHECK_CLOSE(gy.view(), y.view(), kGemm);

    Tensor<float> dpre(g.output_shape()), dx(g.input_shape()), dw(g.filter_shape()), db(Shape{g.out_c});
    Tensor<float> gdpre(g.output_shape(), Device::cuda), gdx(g.input_shape(), Device::cuda);
    Tensor<float> gdb(Shape{g.out_c}, Device::cuda);
    Unaligned gdw(Tensor<float>(g.filter_shape()), 1);
    fill_nan({dpre, dx, dw, db, gdpre, gdx, gdw.view, gdb});
    ops::conv2d_backward<float>(d.cpu, g, x, w, y, dy, act, dpre, dx, dw, db);
    ops::conv2d_backward<float>(d.gpu, g, gx, gw.view, gy, gdy, act, gdpre, gdx, gdw.view, gdb);
    EWE_CHECK_CLOSE(gdpre.view(), dpre.view(), kGemm);
    EWE_CHECK_CLOSE(gdx.view(), dx.view(), kGemm);
    EWE_CHECK_CLOSE(gdw.view, dw.view(), kGemm);
    EWE_CHECK_CLOSE(gdb.view(), db.view(), kGemm);

    // Without the optional dx: every output written afresh.
    fill_nan({gdpre, gdw.view, gdb});
    ops::conv2d_backward<float>(d.gpu, g, gx, gw.view, gy, gdy, act, gdpre, TensorView<float>(), gdw.view, gdb);
    EWE_CHECK_CLOSE(gdpre.view(), dpre.view(), kGemm);
    EWE_CHECK_CLOSE(gdw.view, dw.view(), kGemm);
    EWE_CHECK_CLOSE(gdb.view(), db.view(), kGemm);
}

void check_conv_transpose(Devices& d, const ConvGeometry& g, Activation act, std::uint32_t stream) {
    CAPTURE(g.batch);
    CAPTURE(g.h.out);
    CAPTURE(g.w.out);
    CAPTURE(g.h.kernel);
    CAPTURE(g.h.stride);
    CAPTURE(g.h.pad_before);
    CAPTURE(g.h.pad_after);
    CAPTURE(to_string(act));
    // x: g's output shape; y: g's input shape.
    Tensor<float> x = uniform(g.output_shape(), stream), w = uniform(g.filter_shape(), stream + 1);
    Tensor<float> b = uniform(Shape{g.in_c}, stream + 2), dy = uniform(g.input_shape(), stream + 3);
    Tensor<float> gx = gpu_copy(x), gb = gpu_copy(b), gdy = gpu_copy(dy);
    Unaligned gw(w, 3);
    Tensor<float> y(g.input_shape()), gy(g.input_shape(), Device::cuda);
    fill_nan({y, gy});
    ops::conv2d_transpose_forward<float>(d.cpu, g, x, w, b, act, y);
    ops::conv2d_transpose_forward<float>(d.gpu, g, gx, gw.view, gb, act, gy);
    EWE_CHECK_CLOSE(gy.view(), y.view(), kGemm);

    Tensor<float> dpre(g.input_shape()), dx(g.output_shape()), dw(g.filter_shape()), db(Shape{g.in_c});
    Tensor<float> gdpre(g.input_shape(), Device::cuda), gdx(g.output_shape(), Device::cuda);
    Tensor<float> gdb(Shape{g.in_c}, Device::cuda);
    Unaligned gdw(Tensor<float>(g.filter_shape()), 2);
    fill_nan({dpre, dx, dw, db, gdpre, gdx, gdw.view, gdb});
    ops::conv2d_transpose_backward<float>(d.cpu, g, x, w, y, dy, act, dpre, dx, dw, db);
    ops::conv2d_transpose_backward<float>(d.gpu, g, gx, gw.view, gy, gdy, act, gdpre, gdx, gdw.view, gdb);
    EWE_CHECK_CLOSE(gdpre.view(), dpre.view(), kGemm);
    EWE_CHECK_CLOSE(gdx.view(), dx.view(), kGemm);
    EWE_CHECK_CLOSE(gdw.view, dw.view(), kGemm);
    EWE_CHECK_CLOSE(gdb.view(), db.view(), kGemm);
}

}  // namespace

TEST_CASE("conv2d forward and backward") {
    Devices d;
    std::uint32_t stream = 100;
    std::int64_t checks = 0;
    for (std::int64_t n : {1, 3}) {
        // stride 1, even kernel: TF pads 1 before and 2 after (asymmetric).
        check_conv(d, conv_geometry(n, 7, 6, 3, 5, 4, 1, Padding::same), Activation::relu, stream += 4);
        // stride 2, 7 pixels, kernel 4: pads 1 and 2 (asymmetric with stride).
        check_conv(d, conv_geometry(n, 7, 8, 2, 4, 4, 2, Padding::same), Activation::sigmoid, stream += 4);
        // stride 2, odd kernel, symmetric.
        check_conv(d, conv_geometry(n, 9, 9, 3, 6, 3, 2, Padding::same), Activation::none, stream += 4);
        // valid with an unused tail row.
        check_conv(d, conv_geometry(n, 9, 8, 2, 3, 3, 2, Padding::valid), Activation::relu, stream += 4);
        // 1x1 kernel.
        check_conv(d, conv_geometry(n, 5, 5, 4, 7, 1, 1, Padding::same), Activation::none, stream += 4);
        checks += 5;
    }
    // Odd shapes may take either path, but every op is counted on one of them.
    const cuda::ConvPathCounts& odd = cuda::resources(d.gpu).conv_path_counts();
    CHECK(odd.cudnn + odd.gemm == checks * kOpsPerConvCheck);

    // The seed model's shapes (first encoder conv, 40 -> 80, the last decoder conv) run
    // on cuDNN, never on the fallback.
    Devices seed;
    check_conv(seed, conv_geometry(3, 28, 28, 1, 10, 4, 1, Padding::same), Activation::relu, stream += 4);
    check_conv(seed, conv_geometry(3, 28, 28, 40, 80, 4, 1, Padding::same), Activation::relu, stream += 4);
    check_conv(seed, conv_geometry(3, 56, 56, 10, 1, 4, 2, Padding::same), Activation::sigmoid, stream += 4);
    check_conv_paths(seed.gpu, 3 * kOpsPerConvCheck, 0);
}

TEST_CASE("conv2d_transpose forward and backward") {
    Devices d;
    std::uint32_t stream = 300;
    std::int64_t checks = 0;
    for (std::int64_t n : {1, 3}) {
        check_conv_transpose(d, transpose_geometry(n, 5, 4, 3, 2, 4, 2, Padding::same), Activation::relu, stream += 4);
        check_conv_transpose(d, transpose_geometry(n, 6, 5, 3, 4, 4, 1, Padding::same), Activation::sigmoid,
                             stream += 4);
        check_conv_transpose(d, transpose_geometry(n, 4, 3, 2, 3, 3, 2, Padding::valid), Activation::none,
                             stream += 4);
        check_conv_transpose(d, transpose_geometry(n, 4, 5, 2, 3, 3, 2, Padding::same), Activation::relu,
                             stream += 4);
        checks += 4;
    }
    const cuda::ConvPathCounts& odd = cuda::resources(d.gpu).conv_path_counts();
    CHECK(odd.cudnn + odd.gemm == checks * kOpsPerTransposeCheck);

    // The seed model's decoder: 80 -> 40 at 28x28 (stride 1) and 10 -> 10 upsampling to
    // 56x56, on cuDNN.
    Devices seed;
    check_conv_transpose(seed, transpose_geometry(3, 28, 28, 80, 40, 4, 1, Padding::same), Activation::relu,
                         stream += 4);
    check_conv_transpose(seed, transpose_geometry(3, 28, 28, 10, 10, 4, 2, Padding::same), Activation::relu,
                         stream += 4);
    check_conv_paths(seed.gpu, 2 * kOpsPerTransposeCheck, 0);
}

TEST_CASE("the im2col + GEMM convolution fallback matches the CPU") {
    setenv("EWE_CUDA_CONV_GEMM", "1", 1);  // read when a CUDA context is created
    Devices d;
    unsetenv("EWE_CUDA_CONV_GEMM");
    std::uint32_t stream = 700;
    for (std::int64_t n : {1, 3}) {
        check_conv(d, conv_geometry(n, 7, 6, 3, 5, 4, 1, Padding::same), Activation::relu, stream += 4);
        check_conv(d, conv_geometry(n, 7, 8, 2, 4, 4, 2, Padding::same), Activation::sigmoid, stream += 4);
        check_conv(d, conv_geometry(n, 9, 8, 2, 3, 3, 2, Padding::valid), Activation::none, stream += 4);
        check_conv_transpose(d, transpose_geometry(n, 5, 4, 3, 2, 4, 2, Padding::same), Activation::relu, stream += 4);
        check_conv_transpose(d, transpose_geometry(n, 6, 5, 3, 4, 4, 1, Padding::same), Activation::none,
                             stream += 4);
        check_conv_transpose(d, transpose_geometry(n, 4, 3, 2, 3, 3, 2, Padding::valid), Activation::sigmoid,
                             stream += 4);
    }
    // Every op took the fallback, none cuDNN.
    check_conv_paths(d.gpu, 0, 2 * 3 * (kOpsPerConvCheck + kOpsPerTransposeCheck));
}

TEST_CASE("TF32 and deterministic modes") {
    Context cpu(Device::cpu);
    ContextOptions tf32;
    tf32.allow_tf32 = true;
    ContextOptions det;
    det.deterministic = true;
    Context fast(Device::cuda, tf32), exact(Device::cuda, det);
    const ConvGeometry g = conv_geometry(8, 28, 28, 40, 80, 4, 1, Padding::same);
    Tensor<float> x = uniform(g.input_shape(), 901), w = uniform(g.filter_shape(), 902);
    Tensor<float> dy = uniform(g.output_shape(), 903);
    Tensor<float> gx = gpu_copy(x), gw = gpu_copy(w), gdy = gpu_copy(dy);
    Tensor<float> y(g.output_shape()), gy(g.output_shape(), Device::cuda);
    fill_nan({y});
    ops::conv2d_forward<float>(cpu, g, x, w, TensorView<const float>(), Activation::none, y);
    // TF32 keeps 10 mantissa bits: a looser bound, 5e-3.
    fill_nan({gy});
    ops::conv2d_forward<float>(fast, g, gx, gw, TensorView<const float>(), Activation::none, gy);
    EWE_CHECK_CLOSE(gy.view(), y.view(), 5e-3);
    // Deterministic: two backward passes give the same bits.
    fill_nan({gy});
    ops::conv2d_forward<float>(exact, g, gx, gw, TensorView<const float>(), Activation::none, gy);
    EWE_CHECK_CLOSE(gy.view(), y.view(), kGemm);
    Tensor<float> dpre(g.output_shape(), Device::cuda), dx1(g.input_shape(), Device::cuda);
    Tensor<float> dx2(g.input_shape(), Device::cuda), dw1(g.filter_shape(), Device::cuda);
    Tensor<float> dw2(g.filter_shape(), Device::cuda), db1(Shape{g.out_c}, Device::cuda), db2(Shape{g.out_c}, Device::cuda);
    fill_nan({dpre, dx1, dw1, db1, dx2, dw2, db2});
    ops::conv2d_backward<float>(exact, g, gx, gw, gy, gdy, Activation::none, dpre, dx1, dw1, db1);
    fill_nan({dpre});
    ops::conv2d_backward<float>(exact, g, gx, gw, gy, gdy, Activation::none, dpre, dx2, dw2, db2);
    CHECK(test::max_abs_difference(dw1.view(), dw2.view()) == 0.0);
    CHECK(test::max_abs_difference(dx1.view(), dx2.view()) == 0.0);
    CHECK(test::max_abs_difference(db1.view(), db2.view()) == 0.0);
    // The seed model's 40 -> 80 convolution runs on cuDNN in both modes.
    check_conv_paths(fast, 1, 0);
    check_conv_paths(exact, 3, 0);
}

TEST_CASE("activation forward and backward") {
    Devices d;
    for (Activation act : kActivations) {
        CAPTURE(to_string(act));
        Tensor<float> x = uniform(Shape{3, 5, 7}, 11, -4, 4), dy = uniform(Shape{3, 5, 7}, 12);
        Tensor<float> gx = gpu_copy(x), gdy = gpu_copy(dy);
        Tensor<float> y(x.shape()), gy(x.shape(), Device::cuda), dx(x.shape()), gdx(x.shape(), Device::cuda);
        fill_nan({y, gy, dx, gdx});
        ops::activation_forward<float>(d.cpu, act, x, y);
        ops::activation_forward<float>(d.gpu, act, gx, gy);
        EWE_CHECK_CLOSE(gy.view(), y.view(), kOp);
        ops::activation_backward<float>(d.cpu, act, y, dy, dx);
        ops::activation_backward<float>(d.gpu, act, gy, gdy, gdx);
        EWE_CHECK_CLOSE(gdx.view(), dx.view(), kOp);
    }
}

TEST_CASE("batchnorm forward (train, eval) and backward") {
    Devices d;
    const BatchNormOptions options;
    for (Shape shape : {Shape{3, 5, 4, 6}, Shape{64, 25}, Shape{1, 50}, Shape{1000, 3}}) {
        CAPTURE(shape.str());
        const std::int64_t c = shape[shape.rank() - 1];
        Tensor<float> x = uniform(shape, 21, -2, 3), dy = uniform(shape, 22);
        Tensor<float> gamma = uniform(Shape{c}, 23, 0.5f, 1.5f), beta = uniform(Shape{c}, 24);
        Tensor<float> mm = uniform(Shape{c}, 25), mv = uniform(Shape{c}, 26, 0.5f, 2.0f);
        Tensor<float> gx = gpu_copy(x), gdy = gpu_copy(dy), ggamma = gpu_copy(gamma), gbeta = gpu_copy(beta);
        Tensor<float> gmm = gpu_copy(mm), gmv = gpu_copy(mv);
        Tensor<float> sm(Shape{c}), si(Shape{c}), gsm(Shape{c}, Device::cuda), gsi(Shape{c}, Device::cuda);
        Tensor<float> y(shape), gy(shape, Device::cuda);

        fill_nan({y, gy});
        ops::batchnorm_forward<float>(d.cpu, options, Phase::eval, x, gamma, beta, mm, mv, sm, si, y);
        ops::batchnorm_forward<float>(d.gpu, options, Phase::eval, gx, ggamma, gbeta, gmm, gmv, gsm, gsi, gy);
        EWE_CHECK_CLOSE(gy.view(), y.view(), kOp);

        // The moving statistics are updated in place (from equal values on both devices).
        fill_nan({y, gy, sm, si, gsm, gsi});
        ops::batchnorm_forward<float>(d.cpu, options, Phase::train, x, gamma, beta, mm, mv, sm, si, y);
        ops::batchnorm_forward<float>(d.gpu, options, Phase::train, gx, ggamma, gbeta, gmm, gmv, gsm, gsi, gy);
        EWE_CHECK_CLOSE(gy.view(), y.view(), kOp);
        EWE_CHECK_CLOSE(gsm.view(), sm.view(), kOp);
        EWE_CHECK_CLOSE(gsi.view(), si.view(), kOp);
        EWE_CHECK_CLOSE(gmm.view(), mm.view(), kOp);
        EWE_CHECK_CLOSE(gmv.view(), mv.view(), kOp);

        Tensor<float> dx(shape), gdx(shape, Device::cuda);
        Tensor<float> dg(Shape{c}), dbt(Shape{c}), gdg(Shape{c}, Device::cuda), gdbt(Shape{c}, Device::cuda);
        fill_nan({dx, gdx, dg, dbt, gdg, gdbt});
        ops::batchnorm_backward<float>(d.cpu, x, dy, gamma, sm, si, dx, dg, dbt);
        ops::batchnorm_backward<float>(d.gpu, gx, gdy, ggamma, gsm, gsi, gdx, gdg, gdbt);
        EWE_CHECK_CLOSE(gdx.view(), dx.view(), kOp);
        EWE_CHECK_CLOSE(gdg.view(), dg.view(), kOp);
        EWE_CHECK_CLOSE(gdbt.view(), dbt.view(), kOp);
    }
}

TEST_CASE("dropout masks equal the CPU's bit for bit") {
    Devices d;
    // first_element: a data-parallel rank's shard, also off the Philox blocks' 4-element grid.
    for (double rate : {0.0, 0.1, 0.5})
        for (std::int64_t count : {1, 7, 4099})
            for (std::uint64_t first : {0ull, 3ull, 6ull}) {
                CAPTURE(rate);
                CAPTURE(count);
                CAPTURE(first);
                const PhiloxKey key{0x1234567890ull, 3, 17, first};
                Tensor<float> x = uniform(Shape{count}, 31), gx = gpu_copy(x);
                Tensor<float> y(Shape{count}), gy(Shape{count}, Device::cuda);
                fill_nan({y, gy});
                ops::dropout_forward<float>(d.cpu, rate, key, x, y);
                ops::dropout_forward<float>(d.gpu, rate, key, gx, gy);
                CHECK(test::max_abs_difference(gy.view(), y.view()) == 0.0);
                fill_nan({y, gy});
                ops::dropout_backward<float>(d.cpu, rate, key, x, y);
                ops::dropout_backward<float>(d.gpu, rate, key, gx, gy);
                CHECK(test::max_abs_difference(gy.view(), y.view()) == 0.0);
            }
}

TEST_CASE("reparameterization forward and backward") {
    Devices d;
    for (ReparamVariant variant : {ReparamVariant::standard, ReparamVariant::post})
        for (std::int64_t n : {1, 3, 257})
            for (std::uint64_t first : {0ull, 5ull}) {  // 5: an odd first element (normals use pairs)
                CAPTURE(n);
                CAPTURE(first);
                const PhiloxKey key{99, 0, 5, first};
                const Shape s{n, 2};
                Tensor<float> mean = uniform(s, 41), lv = uniform(s, 42), dz = uniform(s, 43);
                Tensor<float> dmean = uniform(s, 44), dlv = uniform(s, 45);
                Tensor<float> gmean = gpu_copy(mean), glv = gpu_copy(lv), gdz = gpu_copy(dz);
                Tensor<float> gdmean = gpu_copy(dmean), gdlv = gpu_copy(dlv);
                Tensor<float> z(s), gz(s, Device::cuda);
                fill_nan({z, gz});  // (the backward accumulates into dmean/dlv, which start equal)
                ops::reparameterize_forward<float>(d.cpu, variant, key, mean, lv, z);
                ops::reparameterize_forward<float>(d.gpu, variant, key, gmean, glv, gz);
                EWE_CHECK_CLOSE(gz.view(), z.view(), kOp);
                ops::reparameterize_backward<float>(d.cpu, variant, key, lv, dz, dmean, dlv);
                ops::reparameterize_backward<float>(d.gpu, variant, key, glv, gdz, gdmean, gdlv);
                EWE_CHECK_CLOSE(gdmean.view(), dmean.view(), kOp);
                EWE_CHECK_CLOSE(gdlv.view(), dlv.view(), kOp);
            }
}

TEST_CASE("mse and kl losses") {
    Devices d;
    for (std::int64_t n : {1, 3, 64}) {
        CAPTURE(n);
        const Shape img{n, 28, 28, 1};
        Tensor<float> pred = uniform(img, 51, 0, 1), target = uniform(img, 52, 0, 1);
        Tensor<float> gpred = gpu_copy(pred), gtarget = gpu_copy(target);
        Tensor<float> ps(Shape{n}), gps(Shape{n}, Device::cuda);
        fill_nan({ps, gps});
        ops::mse_forward<float>(d.cpu, 1568.0, pred, target, ps);
        ops::mse_forward<float>(d.gpu, 1568.0, gpred, gtarget, gps);
        EWE_CHECK_CLOSE(gps.view(), ps.view(), kOp);
        Tensor<float> dpred(img), gdpred(img, Device::cuda);
        fill_nan({dpred, gdpred});
        ops::mse_backward<float>(d.cpu, 1568.0 / double(n), pred, target, dpred);
        ops::mse_backward<float>(d.gpu, 1568.0 / double(n), gpred, gtarget, gdpred);
        EWE_CHECK_CLOSE(gdpred.view(), dpred.view(), kOp);

        for (KlReduction red : {KlReduction::mean, KlReduction::sum}) {
            const Shape s{n, 3};
            Tensor<float> mean = uniform(s, 53), lv = uniform(s, 54);
            Tensor<float> gmean = gpu_copy(mean), glv = gpu_copy(lv);
            Tensor<float> kl(Shape{n}), gkl(Shape{n}, Device::cuda);
            fill_nan({kl, gkl});
            ops::kl_forward<float>(d.cpu, red, mean, lv, kl);
            ops::kl_forward<float>(d.gpu, red, gmean, glv, gkl);
            EWE_CHECK_CLOSE(gkl.view(), kl.view(), kOp);
            Tensor<float> dm(s), dl(s), gdm(s, Device::cuda), gdl(s, Device::cuda);
            fill_nan({dm, dl, gdm, gdl});
            ops::kl_backward<float>(d.cpu, red, 0.7 / double(n), mean, lv, dm, dl);
            ops::kl_backward<float>(d.gpu, red, 0.7 / double(n), gmean, glv, gdm, gdl);
            EWE_CHECK_CLOSE(gdm.view(), dm.view(), kOp);
            EWE_CHECK_CLOSE(gdl.view(), dl.view(), kOp);
        }
    }
}

TEST_CASE("optimizers over a flat buffer") {
    Devices d;
    const std::int64_t count = 100003;
    const Shape s{count};
    SUBCASE("sgd") {
        for (SgdOptions options : {SgdOptions{.momentum = 0.0, .nesterov = false},
                                   SgdOptions{.momentum = 0.9, .nesterov = false},
                                   SgdOptions{.momentum = 0.9, .nesterov = true}}) {
            Tensor<float> p = uniform(s, 61), g = uniform(s, 62), v = uniform(s, 63);
            Tensor<float> gp = gpu_copy(p), gg = gpu_copy(g), gv = gpu_copy(v);
            const Tensor<float> before = to_host<float>(p.view());
            for (int step = 0; step < 3; ++step) {
                ops::sgd_update<float>(d.cpu, options, 0.01 * (step + 1), p, g, v);
                ops::sgd_update<float>(d.gpu, options, 0.01 * (step + 1), gp, gg, gv);
            }
            CHECK(update_error(gp.view(), p.view(), before) <= kOp);
            EWE_CHECK_CLOSE(gv.view(), v.view(), kOp);
        }
    }
    SUBCASE("rmsprop") {
        Tensor<float> p = uniform(s, 64), g = uniform(s, 65), ms = uniform(s, 66, 0, 1);
        Tensor<float> gp = gpu_copy(p), gg = gpu_copy(g), gms = gpu_copy(ms);
        const Tensor<float> before = to_host<float>(p.view());
        for (int step = 0; step < 3; ++step) {
            ops::rmsprop_update<float>(d.cpu, RmspropOptions{}, 1e-3, p, g, ms);
            ops::rmsprop_update<float>(d.gpu, RmspropOptions{}, 1e-3, gp, gg, gms);
        }
        CHECK(update_error(gp.view(), p.view(), before) <= kOp);
        EWE_CHECK_CLOSE(gms.view(), ms.view(), kOp);
    }
    SUBCASE("adam") {
        Tensor<float> p = uniform(s, 67), g = uniform(s, 68), m = uniform(s, 69), v = uniform(s, 70, 0, 1);
        Tensor<float> gp = gpu_copy(p), gg = gpu_copy(g), gm = gpu_copy(m), gv = gpu_copy(v);
        const Tensor<float> before = to_host<float>(p.view());
        for (std::int64_t step = 1; step <= 3; ++step) {
            ops::adam_update<float>(d.cpu, AdamOptions{}, 1e-3, step, p, g, m, v);
            ops::adam_update<float>(d.gpu, AdamOptions{}, 1e-3, step, gp, gg, gm, gv);
        }
        CHECK(update_error(gp.view(), p.view(), before) <= kOp);
        EWE_CHECK_CLOSE(gm.view(), m.view(), kOp);
        EWE_CHECK_CLOSE(gv.view(), v.view(), kOp);
    }
}

TEST_CASE("fill, copy, add, sum") {
    Devices d;
    for (std::int64_t count : {1, 1000, 300001}) {
        CAPTURE(count);
        const Shape s{count};
        Tensor<float> a = uniform(s, 71), b = uniform(s, 72);
        Tensor<float> ga = gpu_copy(a), gb = gpu_copy(b);
        Tensor<float> out(s), gout(s, Device::cuda);
        fill_nan({out, gout});
        ops::fill<float>(d.cpu, 2.5f, out);
        ops::fill<float>(d.gpu, 2.5f, gout);
        EWE_CHECK_CLOSE(gout.view(), out.view(), 0.0);
        fill_nan({out, gout});
        ops::copy<float>(d.cpu, a, out);
        ops::copy<float>(d.gpu, ga, gout);
        EWE_CHECK_CLOSE(gout.view(), out.view(), 0.0);
        ops::add<float>(d.cpu, out, b, out);  // aliasing a and out
        ops::add<float>(d.gpu, gout, gb, gout);
        EWE_CHECK_CLOSE(gout.view(), out.view(), 0.0);
        Tensor<float> total(Shape{1}), gtotal(Shape{1}, Device::cuda);
        fill_nan({total, gtotal});
        ops::sum<float>(d.cpu, a, total);
        ops::sum<float>(d.gpu, ga, gtotal);
        EWE_CHECK_CLOSE(gtotal.view(), total.view(), kOp);
    }
}

TEST_CASE("gather_images, and a bad index reported at synchronize") {
    Devices d;
    const std::int64_t all = 50, pixels = 28 * 28;
    Tensor<std::uint8_t> images(Shape{all, 28, 28, 1});
    for (std::int64_t i = 0; i < images.numel(); ++i) images[i] = std::uint8_t((i * 7919) % 256);
    Tensor<std::int32_t> idx = Tensor<std::int32_t>::from(Shape{3}, {49, 0, 17});
    Tensor<std::uint8_t> gimages = images.to(Device::cuda);
    Tensor<std::int32_t> gidx = idx.to(Device::cuda);
    Tensor<float> out(Shape{3, 28, 28, 1}), gout(Shape{3, 28, 28, 1}, Device::cuda);
    fill_nan({out, gout});
    ops::gather_images<float>(d.cpu, images, idx, 1.0 / 255.0, out);
    ops::gather_images<float>(d.gpu, gimages, gidx, 1.0 / 255.0, gout);
    EWE_CHECK_CLOSE(gout.view(), out.view(), 0.0);
    // Image 49 lands in row 0: its first and last pixels, scaled to [0, 1].
    const Tensor<float> gathered = to_host<float>(gout.view());
    CHECK(gathered[0] == float(double(images[49 * pixels]) * (1.0 / 255.0)));
    CHECK(gathered[pixels - 1] == float(double(images[50 * pixels - 1]) * (1.0 / 255.0)));
    // Float images at scale 1 (Trainer::fit's batches): the rows, bit for bit.
    Tensor<float> gfloats = out.to(Device::cuda), gpicked(Shape{3, 28, 28, 1}, Device::cuda);
    const Tensor<std::int32_t> order = Tensor<std::int32_t>::from(Shape{3}, {2, 0, 1}).to(Device::cuda);
    ops::gather_images<float>(d.gpu, gfloats.view(), order.view(), 1.0, gpicked.view());
    const Tensor<float> picked = to_host<float>(gpicked.view());
    CHECK(std::memcmp(picked.data(), out.data() + 2 * pixels, sizeof(float) * pixels) == 0);
    CHECK(std::memcmp(picked.data() + pixels, out.data(), sizeof(float) * 2 * pixels) == 0);

    Tensor<std::int32_t> bad = Tensor<std::int32_t>::from(Shape{2}, {3, 50}).to(Device::cuda);
    Tensor<float> gout2(Shape{2, 28, 28, 1}, Device::cuda);
    ops::gather_images<float>(d.gpu, gimages, bad, 1.0, gout2);
    CHECK_THROWS_AS(d.gpu.synchronize(), ewe::Error);
    CHECK_NOTHROW(d.gpu.synchronize());  // the error is reported once
}

TEST_CASE("double on CUDA throws a clear error") {
    Context gpu(Device::cuda);
    Tensor<double> t(Shape{4}, Device::cuda);
    CHECK_THROWS_AS(ops::fill<double>(gpu, 1.0, t.view()), ewe::Error);
}

TEST_CASE("one SheepVae train_step gives the same loss and parameters on both devices") {
    Devices d;
    const SheepVaeOptions model_options;  // the seed model: 28x28x1, 12,857,845 parameters
    const std::int64_t batch = 3;
    const std::uint64_t seed = 7;
    SheepVae<float> cpu_vae(d.cpu, model_options, batch, seed), gpu_vae(d.gpu, model_options, batch, seed);
    VaeLoss<float> cpu_loss(d.cpu, VaeLossOptions{}, batch), gpu_loss(d.gpu, VaeLossOptions{}, batch);
    cpu_loss.set_kl_weight(0.5);
    gpu_loss.set_kl_weight(0.5);
    // SGD without momentum: the update is exactly -lr * gradient, so its error is the
    // gradients' (Adam's first step is ~lr * sign(g), which would turn a tiny gradient
    // difference near zero into a full lr). lr 1e-2 makes the update (|update| ~ 2 for
    // |params| ~ 35) dwarf the float rounding of the parameters it is added to (~1e-6).
    const double lr = 1e-2;
    Sgd<float> cpu_opt(d.cpu, cpu_vae.params(), {.lr = lr}), gpu_opt(d.gpu, gpu_vae.params(), {.lr = lr});
    Tensor<float> x = uniform(Shape{batch, 28, 28, 1}, 81, 0, 1), gx = gpu_copy(x);

    // Identical initial weights (drawn on the host from the same seed).
    EWE_CHECK_CLOSE(gpu_vae.params().values(), cpu_vae.params().values(), 0.0);
    const Tensor<float> before = to_host<float>(cpu_vae.params().values());
    // Every trainable parameter's gradient is written by the step (none accumulates).
    fill_nan({cpu_vae.params().grads(), gpu_vae.params().grads()});

    train_step(d.cpu, cpu_vae, cpu_loss, cpu_opt, x.view());
    train_step(d.gpu, gpu_vae, gpu_loss, gpu_opt, gx.view());
    d.gpu.synchronize();

    // The per-sample loss terms (what the trainer reads).
    EWE_CHECK_CLOSE(gpu_loss.per_sample_reconstruction(), cpu_loss.per_sample_reconstruction(), kGemm);
    EWE_CHECK_CLOSE(gpu_loss.per_sample_kl(), cpu_loss.per_sample_kl(), kStep);

    // The same reconstruction, latent means and gradients.
    EWE_CHECK_CLOSE(gpu_vae.reconstruction(batch), cpu_vae.reconstruction(batch), kGemm);
    EWE_CHECK_CLOSE(gpu_vae.mean(batch), cpu_vae.mean(batch), kGemm);
    // The whole seed model runs its convolutions on cuDNN.
    CHECK(cuda::resources(d.gpu).conv_path_counts().cudnn > 0);
    CHECK(cuda::resources(d.gpu).conv_path_counts().gemm == 0);
    EWE_CHECK_CLOSE(gpu_vae.params().grads(), cpu_vae.params().grads(), kStep);
    const Tensor<float> cpu_grads = to_host<float>(cpu_vae.params().grads());
    const Tensor<float> gpu_grads = to_host<float>(gpu_vae.params().grads());
    for (const ParameterInfo& p : cpu_vae.params().info()) {
        if (!p.trainable) continue;
        CAPTURE(p.name);
        const TensorView<const float> c = cpu_grads.view().slice(p.offset, p.shape);
        const TensorView<const float> g = gpu_grads.view().slice(p.offset, p.shape);
        EWE_CHECK_CLOSE(g, c, 10 * kStep);
    }

    // The update itself, after - before on each device (moving statistics included):
    // within the gradients' bound, and far above the parameters' float rounding.
    const Tensor<float> cpu_after = to_host<float>(cpu_vae.params().values());
    const Tensor<float> gpu_after = to_host<float>(gpu_vae.params().values());
    Tensor<float> cpu_update(before.shape()), gpu_update(before.shape());
    double update_norm = 0, params_norm = 0;
    for (std::int64_t i = 0; i < before.numel(); ++i) {
        cpu_update[i] = cpu_after[i] - before[i];
        gpu_update[i] = gpu_after[i] - before[i];
        update_norm += double(cpu_update[i]) * double(cpu_update[i]);
        params_norm += double(before[i]) * double(before[i]);
    }
    const double rounding = std::sqrt(params_norm) * 0x1p-24;  // half an ulp per parameter, in L2
    INFO("|update| " << std::sqrt(update_norm) << ", rounding of the parameters " << rounding);
    CHECK(std::sqrt(update_norm) >= 100 * rounding / kStep);  // rounding adds < kStep / 100
    EWE_CHECK_CLOSE(gpu_update.view(), cpu_update.view(), kStep);
}

TEST_CASE("reconstruction_sse (the scoring pass) agrees on both devices") {
    Devices d;
    const SheepVaeOptions model_options;
    SheepVae<float> cpu_vae(d.cpu, model_options, 2, 11), gpu_vae(d.gpu, model_options, 2, 11);
    Tensor<float> x = uniform(Shape{5, 28, 28, 1}, 83, 0, 1), gx = gpu_copy(x);  // batches of 2, 2 and 1
    Tensor<float> cpu_sse(Shape{5}), gpu_sse(Shape{5}, Device::cuda);
    fill_nan({cpu_sse, gpu_sse});
    reconstruction_sse<float>(d.cpu, cpu_vae, x.view(), cpu_sse.view());
    reconstruction_sse<float>(d.gpu, gpu_vae, gx.view(), gpu_sse.view());
    d.gpu.synchronize();
    EWE_CHECK_CLOSE(gpu_sse.view(), cpu_sse.view(), kGemm);
}

EWE_CUDA_TEST_MAIN
