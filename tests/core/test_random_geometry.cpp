// Philox4x32-10 against the known-answer vectors published with Random123, the
// draw conventions (dropout masks, normals) and the TensorFlow padding rules.
#include "gradcheck.hpp"

using namespace ewe;

TEST_CASE("Philox4x32-10 matches the Random123 known answers") {
    const Philox4x32 zero = philox4x32_10(Philox4x32{{0, 0, 0, 0}}, 0, 0);
    CHECK(zero.v[0] == 0x6627e8d5u);
    CHECK(zero.v[1] == 0xe169c58du);
    CHECK(zero.v[2] == 0xbc57ac4cu);
    CHECK(zero.v[3] == 0x9b00dbd8u);
    const Philox4x32 ones = philox4x32_10(Philox4x32{{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u);
    CHECK(ones.v[0] == 0x408f276du);
    CHECK(ones.v[1] == 0x41c83b0eu);
    CHECK(ones.v[2] == 0xa20bc7c6u);
    CHECK(ones.v[3] == 0x6d5451fdu);
    const Philox4x32 pi = philox4x32_10(Philox4x32{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                                        0xa4093822u, 0x299f31d0u);
    CHECK(pi.v[0] == 0xd16cfe09u);
    CHECK(pi.v[1] == 0x94fdccebu);
    CHECK(pi.v[2] == 0x5001e420u);
    CHECK(pi.v[3] == 0x24126ea1u);
}

TEST_CASE("random draws depend on seed, stream and offset, and nothing else") {
    const PhiloxKey key{42, 3, 7};
    CHECK(philox_bits(key, 5) == philox_bits(PhiloxKey{42, 3, 7}, 5));
    CHECK(philox_bits(key, 5) != philox_bits(PhiloxKey{43, 3, 7}, 5));
    CHECK(philox_bits(key, 5) != philox_bits(PhiloxKey{42, 4, 7}, 5));
    CHECK(philox_bits(key, 5) != philox_bits(PhiloxKey{42, 3, 8}, 5));
    CHECK(philox_bits(key, 5) != philox_bits(key, 6));
}

TEST_CASE("normals have mean 0 and variance 1; dropout keeps 1 - rate") {
    const PhiloxKey key{1, 1, 0};
    const int n = 200000;
    double sum = 0, sum_sq = 0;
    int kept = 0;
    const std::uint32_t threshold = dropout_threshold(0.1);
    for (int i = 0; i < n; ++i) {
        const double z = philox_normal(key, std::uint64_t(i));
        sum += z;
        sum_sq += z * z;
        kept += philox_keep(key, std::uint64_t(i), threshold);
    }
    // Standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance.
    CHECK(std::abs(sum / n) < 0.01);
    CHECK(std::abs(sum_sq / n - 1.0) < 0.015);
    CHECK(std::abs(double(kept) / n - 0.9) < 0.003);
}

TEST_CASE("dropout layer: inverted scaling in training, identity in evaluation, same mask in backward") {
    Context ctx;
    ParameterStore<float> store;
    RandomState random{9, 0};
    BuildContext<float> b{ctx, store, random, 4};
    Dropout<float> dropout(0.5);
    dropout.build(Shape{1000}, b);
    store.allocate(Device::cpu, 9);
    Tensor<float> x(Shape{4, 1000}), y(Shape{4, 1000}), dx(Shape{4, 1000});
    std::fill(x.data(), x.data() + x.numel(), 1.0f);
    dropout.forward(ctx, x.view(), y.view(), Phase::train);
    dropout.backward(ctx, x.view(), y.view(), x.view(), dx.view());
    int zeros = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) {
        CHECK((y[i] == 0.0f || y[i] == 2.0f));
        CHECK(dx[i] == y[i]);  // the mask redrawn in backward is the forward mask
        zeros += y[i] == 0.0f;
    }
    CHECK(zeros > 1800);
    CHECK(zeros < 2200);
    dropout.forward(ctx, x.view(), y.view(), Phase::eval);
    CHECK(std::all_of(y.data(), y.data() + y.numel(), [](float v) { return v == 1.0f; }));
    random.offset = 1;  // the next step draws another mask
    Tensor<float> y2(Shape{4, 1000});
    dropout.forward(ctx, x.view(), y2.view(), Phase::train);
    dropout.forward(ctx, x.view(), y.view(), Phase::train);
    CHECK(std::equal(y.data(), y.data() + y.numel(), y2.data()));
    random.offset = 0;
    dropout.forward(ctx, x.view(), y.view(), Phase::train);
    CHECK(!std::equal(y.data(), y.data() + y.numel(), y2.data()));
}

TEST_CASE("dropout and sampling noise follow the global row (RandomState::first_sample), however a batch is split") {
    // Rows 3..6 of a batch of 7, trained as their own batch by a data-parallel rank,
    // draw exactly the noise those rows draw in the whole batch; rows of 3 and 5
    // elements put the shard's first element off the Philox blocks' 4-element grid.
    Context ctx;
    const std::int64_t rows = 7, first = 3, width = 5, latent = 3;
    auto draws = [&](std::int64_t from, std::int64_t count) {
        ParameterStore<double> store;
        RandomState random{11, 4, std::uint64_t(from)};
        BuildContext<double> b{ctx, store, random, rows};
        Dropout<double> dropout(0.5);
        dropout.build(Shape{width}, b);
        Reparameterization<double> sampler;
        sampler.build(latent, b);
        store.allocate(Device::cpu, 1);
        Tensor<double> x(Shape{count, width}), y(Shape{count, width}), mean(Shape{count, latent}),
            log_var(Shape{count, latent}), z(Shape{count, latent});
        std::fill(x.data(), x.data() + x.numel(), 1.0);
        std::fill(mean.data(), mean.data() + mean.numel(), 0.0);
        std::fill(log_var.data(), log_var.data() + log_var.numel(), 0.0);
        dropout.forward(ctx, x.view(), y.view(), Phase::train);
        sampler.forward(ctx, mean.view(), log_var.view(), z.view(), Phase::train);
        return std::make_pair(std::vector<double>(y.data(), y.data() + y.numel()),
                              std::vector<double>(z.data(), z.data() + z.numel()));
    };
    const auto [whole_mask, whole_eps] = draws(0, rows);
    const auto [shard_mask, shard_eps] = draws(first, rows - first);
    CHECK(std::equal(shard_mask.begin(), shard_mask.end(), whole_mask.begin() + first * width));
    CHECK(std::equal(shard_eps.begin(), shard_eps.end(), whole_eps.begin() + first * latent));
    const auto [local_mask, local_eps] = draws(0, rows - first);  // the shard drawn as rows 0..3: other noise
    CHECK(!std::equal(local_mask.begin(), local_mask.end(), whole_mask.begin() + first * width));
    CHECK(!std::equal(local_eps.begin(), local_eps.end(), whole_eps.begin() + first * latent));
}

TEST_CASE("TensorFlow `same` padding: extra pixel after, output ceil(in / stride)") {
    const ConvAxis a = ConvAxis::forward(28, 4, 1, Padding::same);
    CHECK(a.out == 28);
    CHECK(a.pad_before == 1);
    CHECK(a.pad_after == 2);
    const ConvAxis b = ConvAxis::forward(56, 4, 2, Padding::same);
    CHECK(b.out == 28);
    CHECK(b.pad_before == 1);
    CHECK(b.pad_after == 1);
    const ConvAxis c = ConvAxis::forward(7, 3, 2, Padding::same);
    CHECK(c.out == 4);
    CHECK(c.pad_before == 1);
    CHECK(c.pad_after == 1);
    const ConvAxis d = ConvAxis::forward(5, 2, 2, Padding::same);  // 5 = 2*2 + 1: pad 1 after, none before
    CHECK(d.out == 3);
    CHECK(d.pad_before == 0);
    CHECK(d.pad_after == 1);
    const ConvAxis e = ConvAxis::forward(7, 3, 2, Padding::valid);
    CHECK(e.out == 3);
    CHECK(e.pad_before == 0);
}

TEST_CASE("Conv2DTranspose output sizes follow Keras") {
    CHECK(ConvAxis::transposed(28, 4, 2, Padding::same).in == 56);  // 28 x 28 -> 56 x 56
    CHECK(ConvAxis::transposed(28, 4, 1, Padding::same).in == 28);
    CHECK(ConvAxis::transposed(5, 3, 2, Padding::valid).in == 11);  // (5 - 1) * 2 + 3
    CHECK(ConvAxis::transposed(5, 1, 3, Padding::valid).in == 15);  // 5 * 3 + max(1 - 3, 0)
}

TEST_CASE("a hand-computed convolution with `same` padding and an even kernel") {
    // 1 x 3 x 3 x 1 image 1..9, one 2 x 2 filter of ones: `same` pads one row and one
    // column after, so each output sums the 2 x 2 window starting at its pixel.
    Context ctx;
    ConvGeometry g;
    g.batch = 1;
    g.in_c = 1;
    g.out_c = 1;
    g.h = ConvAxis::forward(3, 2, 1, Padding::same);
    g.w = ConvAxis::forward(3, 2, 1, Padding::same);
    Tensor<float> x = Tensor<float>::from(Shape{1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
    Tensor<float> w = Tensor<float>::from(Shape{1, 2, 2, 1}, {1, 1, 1, 1});
    Tensor<float> bias = Tensor<float>::from(Shape{1}, {0.5f});
    Tensor<float> y(Shape{1, 3, 3, 1});
    ops::conv2d_forward<float>(ctx, g, x.view(), w.view(), bias.view(), Activation::none, y.view());
    const float expected[9] = {12.5f, 16.5f, 9.5f, 24.5f, 28.5f, 15.5f, 15.5f, 17.5f, 9.5f};
    for (int i = 0; i < 9; ++i) CHECK(y[i] == doctest::Approx(expected[i]));
}

TEST_CASE("shapes whose element count overflows int64 are rejected") {
    const std::int64_t big = std::numeric_limits<std::int64_t>::max();
    CHECK_THROWS_WITH_AS(Shape({big, 2}).numel(), doctest::Contains("element count overflows int64"), ewe::Error);
    CHECK_THROWS_WITH_AS(Shape({1 << 30, 1 << 30, 1 << 30}).numel(), doctest::Contains("overflows"), ewe::Error);
    CHECK(Shape({big, 1}).numel() == big);
    CHECK(Shape({big, 0, 5}).numel() == 0);
    CHECK_THROWS_WITH_AS(Tensor<double>(Shape{std::int64_t(1) << 60, 4}), doctest::Contains("more bytes than"),
                         ewe::Error);
}

TEST_CASE("ops reject tensors of the wrong shape or device, naming them") {
    Context ctx;
    Tensor<float> x(Shape{2, 3}), w(Shape{4, 5}), y(Shape{2, 5});
    CHECK_THROWS_WITH_AS(ops::dense_forward<float>(ctx, x.view(), w.view(), {}, Activation::none, y.view()),
                         doctest::Contains("tensor 'w' should have shape (3, 5), found (4, 5)"), ewe::Error);
    TensorView<float> gpu_y(y.data(), y.shape(), Device::cuda);
    Tensor<float> w_ok(Shape{3, 5});
    CHECK_THROWS_WITH_AS(ops::dense_forward<float>(ctx, x.view(), w_ok.view(), {}, Activation::none, gpu_y),
                         doctest::Contains("tensor 'y' is on cuda but the context runs on cpu"), ewe::Error);
}
