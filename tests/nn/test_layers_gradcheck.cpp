// Central-difference gradient checks (double precision) of every layer, at shapes
// that exercise the padding rules: odd and even kernels, stride 1 and 2, `same`
// and `valid`, batch 1 and 3.
#include <memory>

#include "gradcheck.hpp"

using namespace ewe;
using ewe::testing::check_layer;

TEST_CASE("the gradient check itself catches a wrong gradient") {
    // d/dv sum(v^3) = 3 v^2; a gradient off by 0.01% must be reported.
    Tensor<double> v = testing::random_tensor(Shape{10}), right(Shape{10}), wrong(Shape{10});
    for (int i = 0; i < 10; ++i) {
        right[i] = 3 * v[i] * v[i];
        wrong[i] = right[i] * (i == 4 ? 1.0001 : 1.0);
    }
    auto loss = [&] {
        double s = 0;
        for (int i = 0; i < 10; ++i) s += v[i] * v[i] * v[i];
        return s;
    };
    CHECK(testing::gradient_mismatch(v.view(), right.view(), loss).empty());
    CHECK(testing::gradient_mismatch(v.view(), wrong.view(), loss).find("[4]") != std::string::npos);
}

TEST_CASE("Dense gradients for every activation") {
    for (Activation act : {Activation::none, Activation::relu, Activation::sigmoid}) {
        CAPTURE(to_string(act));
        Dense<double> narrowing(4, act), widening(300, act);  // both blockings of the backward pass
        check_layer(narrowing, Shape{5});
        check_layer(widening, Shape{3});
    }
}

TEST_CASE("Conv2D gradients: kernels, strides and padding") {
    struct Case { std::int64_t h, w, c, filters, kernel, stride; Padding padding; Activation act; std::int64_t batch; };
    const Case cases[] = {
        {5, 5, 2, 3, 3, 1, Padding::same, Activation::none, 3},
        {6, 5, 2, 3, 4, 1, Padding::same, Activation::relu, 2},   // even kernel: one more pad after
        {7, 6, 1, 2, 4, 2, Padding::same, Activation::sigmoid, 3},
        {6, 6, 3, 2, 3, 2, Padding::valid, Activation::none, 1},
        {5, 7, 2, 2, 2, 1, Padding::valid, Activation::relu, 2},
    };
    for (const Case& k : cases) {
        CAPTURE(k.kernel); CAPTURE(k.stride); CAPTURE(to_string(k.padding));
        Conv2D<double> layer(ConvOptions{k.filters, k.kernel, k.stride, k.padding, k.act});
        check_layer(layer, Shape{k.h, k.w, k.c}, k.batch);
    }
}

TEST_CASE("Conv2DTranspose gradients: kernels, strides and padding") {
    struct Case { std::int64_t h, w, c, filters, kernel, stride; Padding padding; Activation act; };
    const Case cases[] = {
        {4, 4, 2, 3, 4, 1, Padding::same, Activation::relu},
        {3, 4, 2, 2, 4, 2, Padding::same, Activation::none},   // the decoder's 28 -> 56 layer, small
        {3, 3, 2, 2, 3, 2, Padding::same, Activation::sigmoid},
        {3, 3, 1, 2, 3, 1, Padding::valid, Activation::none},
        {3, 2, 2, 2, 2, 3, Padding::valid, Activation::none},  // kernel < stride: gaps in the output
    };
    for (const Case& k : cases) {
        CAPTURE(k.kernel); CAPTURE(k.stride); CAPTURE(to_string(k.padding));
        Conv2DTranspose<double> layer(ConvOptions{k.filters, k.kernel, k.stride, k.padding, k.act});
        check_layer(layer, Shape{k.h, k.w, k.c});
    }
}

TEST_CASE("BatchNormalization gradients over features and over NHWC channels") {
    BatchNormalization<double> dense_bn;
    check_layer(dense_bn, Shape{4}, 5);
    BatchNormalization<double> image_bn;
    check_layer(image_bn, Shape{3, 2, 3}, 2);
}

TEST_CASE("Dropout, activations, Flatten and Reshape gradients") {
    Dropout<double> dropout(0.3);
    check_layer(dropout, Shape{20}, 3);
    ActivationLayer<double> relu(Activation::relu), sigmoid(Activation::sigmoid);
    check_layer(relu, Shape{2, 3}, 2);
    check_layer(sigmoid, Shape{7}, 2);
    Flatten<double> flatten;
    check_layer(flatten, Shape{2, 3, 2}, 2);
    Reshape<double> reshape(Shape{3, 4});
    check_layer(reshape, Shape{12}, 2);
}

TEST_CASE("Sequential chains gradients through every layer") {
    Sequential<double> model;
    model.add<Conv2D>(ConvOptions{2, 3, 1, Padding::same, Activation::relu});
    model.add<Conv2D>(ConvOptions{3, 2, 2, Padding::same, Activation::none});
    model.add<Flatten>();
    model.add<Dense>(6, Activation::relu);
    model.add<Dropout>(0.2);
    model.add<BatchNormalization>();
    model.add<Dense>(12, Activation::relu);
    model.add<Reshape>(Shape{2, 2, 3});
    model.add<Conv2DTranspose>(ConvOptions{2, 4, 2, Padding::same, Activation::sigmoid});
    check_layer(model, Shape{4, 4, 1}, 3);
}

TEST_CASE("Sequential: layers that only reshape are views, one after another too; first or last, they copy") {
    const auto make = [] {
        auto model = std::make_unique<Sequential<double>>();
        model->add<Flatten>();
        model->add<Dense>(12, Activation::sigmoid);
        model->add<Reshape>(Shape{3, 4});
        model->add<Flatten>();
        model->add<Reshape>(Shape{2, 6});
        model->add<Flatten>();
        model->add<Dense>(5, Activation::none);
        model->add<Reshape>(Shape{5, 1});
        return model;
    };
    check_layer(*make(), Shape{2, 3}, 3);
    // The viewed layers' outputs are the first Dense layer's values, in their shapes.
    const auto model = make();
    Context ctx;
    ParameterStore<double> store;
    RandomState random{3, 5};
    BuildContext<double> b{ctx, store, random, 3};
    model->build(Shape{2, 3}, b);
    store.allocate(Device::cpu, 3);
    Tensor<double> x(Shape{3, 2, 3}), y(Shape{3, 5, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = 0.1 * double(i) - 0.7;
    model->forward(ctx, x.view(), y.view(), Phase::train);
    for (std::size_t i : {2, 3, 4, 5}) {
        const TensorView<const double> a = model->activation(i, 3);
        CHECK(a.shape() == (*model)[i].output_shape().with_batch(3));
        CHECK(a.data() == model->activation(1, 3).data());
    }
}

TEST_CASE("Reparameterization gradients in mean and log_var, both variants; backward accumulates") {
    for (ReparamVariant variant : {ReparamVariant::standard, ReparamVariant::post}) {
        CAPTURE(variant == ReparamVariant::standard ? "standard" : "post");
        const std::int64_t batch = 3, latent = 4;
        Context ctx;
        ParameterStore<double> store;
        RandomState random{11, 6};
        BuildContext<double> b{ctx, store, random, batch};
        Reparameterization<double> sampling(variant);
        sampling.build(latent, b);
        CHECK(sampling.name() == "sampling");
        CHECK(store.info().empty());

        Tensor<double> mean = testing::random_tensor(Shape{batch, latent});
        Tensor<double> log_var = testing::random_tensor(Shape{batch, latent});
        Tensor<double> z(Shape{batch, latent}), r = testing::random_tensor(Shape{batch, latent});
        auto loss = [&] {
            sampling.forward(ctx, mean.view(), log_var.view(), z.view(), Phase::train);
            return testing::dot(z.view(), r.view());
        };
        loss();
        Tensor<double> dmean(Shape{batch, latent}), dlog_var(Shape{batch, latent});
        ops::fill<double>(ctx, 0.0, dmean.view());
        ops::fill<double>(ctx, 0.0, dlog_var.view());
        sampling.backward(ctx, log_var.view(), r.view(), dmean.view(), dlog_var.view());
        testing::check_gradient("Reparameterization dmean", mean.view(), dmean.view(), loss);
        testing::check_gradient("Reparameterization dlog_var", log_var.view(), dlog_var.view(), loss);

        // A second backward onto the same buffers adds the same gradients again.
        Tensor<double> twice_mean(dmean.shape()), twice_log_var(dlog_var.shape());
        copy<double>(dmean.view(), twice_mean.view());
        copy<double>(dlog_var.view(), twice_log_var.view());
        sampling.backward(ctx, log_var.view(), r.view(), twice_mean.view(), twice_log_var.view());
        for (std::int64_t i = 0; i < dmean.numel(); ++i) {
            CHECK(twice_mean[i] == doctest::Approx(2 * dmean[i]).epsilon(1e-14));
            CHECK(twice_log_var[i] == doctest::Approx(2 * dlog_var[i]).epsilon(1e-14));
        }
    }
}
