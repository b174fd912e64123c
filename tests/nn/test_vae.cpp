// Vae from a user's own encoder and decoder (a 12x12x1 toy, not the sheep): a gradient
// check of the whole model and loss (double), the standalone decoder sharing the
// parameters, train_step and reconstruction_sse on it, and the errors of bad parts.
#include "gradcheck.hpp"

#include <cmath>
#include <memory>

using namespace ewe;

namespace {
constexpr std::int64_t kLatent = 3;

// (12, 12, 1) -> (6, 6, 3) -> (108,) -> (8,)
std::shared_ptr<Sequential<double>> toy_encoder() {
    auto encoder = std::make_shared<Sequential<double>>("toy_encoder");
    encoder->add<Conv2D>(ConvOptions{3, 3, 2, Padding::same, Activation::relu});
    encoder->add<Flatten>();
    encoder->add<Dense>(8, Activation::relu);
    return encoder;
}

// (3,) -> (72,) -> (6, 6, 2) -> (12, 12, 2) -> (12, 12, output_channels)
std::shared_ptr<Sequential<double>> toy_decoder(std::int64_t output_channels = 1) {
    auto decoder = std::make_shared<Sequential<double>>("toy_decoder");
    decoder->add<Dense>(6 * 6 * 2, Activation::relu);
    decoder->add<Reshape>(Shape{6, 6, 2});
    decoder->add<Conv2DTranspose>(ConvOptions{2, 3, 2, Padding::same, Activation::relu});
    decoder->add<Conv2D>(ConvOptions{output_channels, 3, 1, Padding::same, Activation::sigmoid});
    return decoder;
}

VaeOptions<double> toy_options(ReparamVariant variant = ReparamVariant::standard) {
    return VaeOptions<double>{Shape{12, 12, 1}, toy_encoder(), kLatent, toy_decoder(), variant, "toy_vae"};
}

Tensor<double> toy_images(std::int64_t n) {
    Tensor<double> x(Shape{n, 12, 12, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = double((i * 37) % 11) / 10.0;
    return x;
}
}  // namespace

TEST_CASE("a user-defined VAE: gradient check of every parameter tensor through VaeLoss, both variants") {
    for (ReparamVariant variant : {ReparamVariant::standard, ReparamVariant::post}) {
        CAPTURE(variant == ReparamVariant::standard ? "standard" : "post");
        Context ctx;
        const std::int64_t batch = 3;
        Vae<double> vae(ctx, toy_options(variant), batch, 9);
        VaeLoss<double> loss(ctx, VaeLossOptions{2.0 * 144, KlReduction::sum}, batch);
        loss.set_kl_weight(0.7);
        const std::vector<std::string> checked = testing::check_vae_gradients(ctx, vae, loss, batch, 5);
        // The encoder's, the two heads', then the decoder's, with Keras' automatic names.
        CHECK(checked == std::vector<std::string>{"conv2d/kernel", "conv2d/bias", "dense/kernel", "dense/bias",
                                                  "z_mean/kernel", "z_mean/bias", "z_log_var/kernel", "z_log_var/bias",
                                                  "dense_1/kernel", "dense_1/bias", "conv2d_transpose/kernel",
                                                  "conv2d_transpose/bias", "conv2d_1/kernel", "conv2d_1/bias"});
    }
}

TEST_CASE("a user-defined VAE: eval decodes the mean with the standalone decoder; summaries; latent()") {
    Context ctx;
    const std::int64_t batch = 2;
    Vae<double> vae(ctx, toy_options(), batch, 4);
    CHECK(vae.latent() == kLatent);
    CHECK(vae.image_shape() == Shape{12, 12, 1});
    CHECK(vae.max_batch() == batch);
    CHECK(vae.sampling().name() == "sampling");
    const Tensor<double> x = toy_images(batch);

    vae.forward(ctx, x.view(), Phase::eval);
    Tensor<double> alone(Shape{batch, 12, 12, 1});
    vae.decoder().forward(ctx, vae.mean(batch), alone.view(), Phase::eval);
    for (std::int64_t i = 0; i < vae.z(batch).numel(); ++i) CHECK(vae.z(batch)[i] == vae.mean(batch)[i]);
    for (std::int64_t i = 0; i < alone.numel(); ++i) CHECK(alone[i] == vae.reconstruction(batch)[i]);

    vae.forward(ctx, x.view(), Phase::eval, /*sample=*/true);
    bool sampled = false;
    for (std::int64_t i = 0; i < vae.z(batch).numel(); ++i) sampled |= vae.z(batch)[i] != vae.mean(batch)[i];
    CHECK(sampled);

    const std::string summary = vae.summary();
    CHECK(summary.find("Model: \"toy_vae\"") != std::string::npos);
    CHECK(summary.find("z_log_var (Dense)") != std::string::npos);
    CHECK(summary.find("sampling (Reparameterization)") != std::string::npos);
    CHECK(summary.find("conv2d_transpose (Conv2DTranspose)") != std::string::npos);
    CHECK(summary.find("Total params: " + with_thousands(vae.params().total_count())) != std::string::npos);
    CHECK(vae.decoder_summary().find("Model: \"toy_decoder\"") != std::string::npos);
    CHECK(vae.decoder_summary().find("Total params: " + with_thousands(vae.decoder().param_count())) !=
          std::string::npos);
}

TEST_CASE("train_step and reconstruction_sse work on a user-defined VAE") {
    Context ctx;
    Vae<double> vae(ctx, toy_options(), 4, 2);
    VaeLoss<double> loss(ctx, VaeLossOptions{2.0 * 144, KlReduction::mean}, 4);
    Rmsprop<double> optimizer(ctx, vae.params(), {.lr = 1e-2});
    const Tensor<double> x = toy_images(4);
    std::vector<double> losses;
    for (int step = 0; step < 30; ++step) {
        train_step(ctx, vae, loss, optimizer, x.view());
        losses.push_back(ewe::batch_means(loss).total);
    }
    INFO("first loss " << losses.front() << ", last " << losses.back());
    CHECK(std::isfinite(losses.back()));
    CHECK(losses.back() < losses.front());

    const Tensor<double> five = toy_images(5);
    Tensor<double> sse(Shape{5});
    reconstruction_sse<double>(ctx, vae, five.view(), sse.view());  // batches of 4 and 1
    vae.forward(ctx, five.view().leading(4), Phase::eval);
    for (std::int64_t i = 0; i < 4; ++i) {
        double expected = 0;
        for (std::int64_t p = 0; p < 144; ++p) {
            const double d = vae.reconstruction(4)[i * 144 + p] - five[i * 144 + p];
            expected += d * d;
        }
        CHECK(sse[i] == doctest::Approx(expected).epsilon(1e-12));
    }
    Tensor<double> flat(Shape{5, 144});
    CHECK_THROWS_WITH_AS(reconstruction_sse<double>(ctx, vae, flat.view(), sse.view()),
                         doctest::Contains("images must be (n, 12, 12, 1)"), Error);
}

TEST_CASE("bad VAE parts throw ewe::Error saying what was expected") {
    Context ctx;
    VaeOptions<double> wrong_output = toy_options();
    wrong_output.decoder = toy_decoder(2);
    CHECK_THROWS_WITH_AS(Vae<double>(ctx, wrong_output, 2, 0),
                         doctest::Contains("Vae 'toy_vae': the decoder must map (3,) back to the input (12, 12, 1), "
                                           "it produces (12, 12, 2)"),
                         Error);

    VaeOptions<double> unflat = toy_options();
    unflat.encoder = std::make_shared<Sequential<double>>("conv_only");
    unflat.encoder->add<Conv2D>(ConvOptions{2, 3, 2, Padding::same, Activation::relu});
    CHECK_THROWS_WITH_AS(Vae<double>(ctx, unflat, 2, 0),
                         doctest::Contains("the encoder must end in a flat feature vector (add a Flatten layer), "
                                           "it maps (12, 12, 1) to (6, 6, 2)"),
                         Error);

    VaeOptions<double> no_decoder = toy_options();
    no_decoder.decoder = nullptr;
    CHECK_THROWS_WITH_AS(Vae<double>(ctx, no_decoder, 2, 0), doctest::Contains("Vae 'toy_vae': the decoder is null"),
                         Error);
    CHECK_THROWS_WITH_AS(Vae<double>(ctx, toy_options(), 0, 0), doctest::Contains("max_batch must be positive"), Error);
}

TEST_CASE("Reparameterization shape errors name the layer, the tensor and the shapes") {
    Context ctx;
    Reparameterization<double> unbuilt;
    Tensor<double> mean(Shape{2, 3}), log_var(Shape{2, 3}), z(Shape{2, 3}), wide(Shape{2, 4}), short_z(Shape{1, 3}),
        big(Shape{3, 3});
    CHECK_THROWS_WITH_AS(unbuilt.forward(ctx, mean.view(), log_var.view(), z.view(), Phase::train),
                         doctest::Contains("Reparameterization (unnamed) forward: the layer is not built"), Error);

    ParameterStore<double> store;
    RandomState random;
    BuildContext<double> b{ctx, store, random, 2};
    Reparameterization<double> sampling(ReparamVariant::standard, "noise");
    sampling.build(3, b);
    CHECK_THROWS_WITH_AS(sampling.build(3, b), doctest::Contains("'noise': already built"), Error);
    CHECK_THROWS_WITH_AS(sampling.forward(ctx, mean.view(), wide.view(), z.view(), Phase::train),
                         doctest::Contains("Reparameterization 'noise' forward: log_var should have shape (batch, 3), "
                                           "found (2, 4)"),
                         Error);
    CHECK_THROWS_WITH_AS(sampling.forward(ctx, mean.view(), log_var.view(), short_z.view(), Phase::train),
                         doctest::Contains("z should have shape (2, 3), found (1, 3)"), Error);
    CHECK_THROWS_WITH_AS(sampling.forward(ctx, big.view(), big.view(), big.view(), Phase::train),
                         doctest::Contains("batch 3 exceeds the max_batch 2"), Error);
    CHECK_THROWS_WITH_AS(sampling.backward(ctx, log_var.view(), wide.view(), mean.view(), z.view()),
                         doctest::Contains("Reparameterization 'noise' backward: dz should have shape (batch, 3)"),
                         Error);
}
