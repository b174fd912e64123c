// ewe::compiled seen from a program that links it: <ewe/ewe.hpp> brings in no Eigen, and
// the CPU backend for float and double and the float layers and optimizers still work,
// their code coming from the library (libewe_cpu.a). That the results are the
// header-only ones, to the bit, is checked by the ctest compiled_mode_same_bits
// (tests/compiled/compare.cmake).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <ewe/ewe.hpp>

#include <memory>
#include <vector>

using namespace ewe;

TEST_CASE("ewe::compiled: <ewe/ewe.hpp> includes no Eigen in a program that links it") {
#if defined(EWE_COMPILED_LIBRARY)
    constexpr bool compiled_mode = true;
#else
    constexpr bool compiled_mode = false;
#endif
#if defined(EIGEN_WORLD_VERSION)
    constexpr bool eigen_included = true;
#else
    constexpr bool eigen_included = false;
#endif
    CHECK(compiled_mode);
    CHECK_FALSE(eigen_included);
}

TEST_CASE("ewe::compiled: the library's CPU backend computes in double and float") {
    Context ctx;
    Tensor<double> x(Shape{1, 2}), w(Shape{2, 3}), b(Shape{3}), y(Shape{1, 3});
    const double xs[] = {1, 2}, ws[] = {1, 0, 2, 0, 1, 3}, bs[] = {0.5, 0, -1};
    for (int i = 0; i < 2; ++i) x[i] = xs[i];
    for (int i = 0; i < 6; ++i) w[i] = ws[i];
    for (int i = 0; i < 3; ++i) b[i] = bs[i];
    ops::dense_forward<double>(ctx, x, w, b, Activation::none, y);
    CHECK(y[0] == 1.5);
    CHECK(y[1] == 2.0);
    CHECK(y[2] == 7.0);

    Tensor<float> v(Shape{4});
    ops::fill<float>(ctx, 0.25f, v);
    for (int i = 0; i < 4; ++i) CHECK(v[i] == 0.25f);
}

TEST_CASE("ewe::compiled: the library's float layers, loss, Adam and Trainer train a VAE") {
    auto encoder = std::make_shared<Sequential<float>>("encoder");
    encoder->add<Flatten>();
    encoder->add<Dense>(16, Activation::relu);
    auto decoder = std::make_shared<Sequential<float>>("decoder");
    decoder->add<Dense>(8 * 8, Activation::sigmoid);
    decoder->add<Reshape>(Shape{8, 8, 1});
    Context ctx;
    Vae<float> vae(ctx, VaeOptions<float>{Shape{8, 8, 1}, encoder, 2, decoder}, 4, /*seed=*/5);
    VaeLoss<float> loss(ctx, VaeLossOptions{64.0}, 4);
    Adam<float> optimizer(ctx, vae.params(), {.lr = 1e-2});
    VaeObjective<float> objective(vae, loss);
    FitOptions options;
    options.epochs = 3;
    options.handle_sigint = false;
    Trainer<float> trainer(ctx, objective, optimizer, options);
    Tensor<float> images(Shape{8, 8, 8, 1});
    for (std::int64_t i = 0; i < images.numel(); ++i) images[i] = float(i % 5) / 4.0f;
    const std::vector<float> before(vae.params().values().data(),
                                    vae.params().values().data() + vae.params().total_count());
    const FitResult fit = trainer.fit(images.view());
    CHECK(fit.progress.iterations == 6);
    CHECK(vae.params().values()[0] != before[0]);
}
