// The batch means of a VaeLoss; gradient checks (double) of the MSE and KL losses, the
// VAE loss with a KL weight, the reparameterization in both variants, optimizer steps
// against values computed by hand and against their Eigen expressions bit for bit, and
// the CPU context's flushing of denormal optimizer state.
#include "gradcheck.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cfloat>
#include <thread>
#include <vector>

using namespace ewe;
using ewe::testing::check_gradient;
using ewe::testing::random_tensor;

TEST_CASE("batch_means: the last forward's per-sample terms averaged, total = reconstruction + kl_weight * kl") {
    Context ctx;
    VaeLoss<double> loss(ctx, VaeLossOptions{}, 4);
    CHECK_THROWS_AS(ewe::batch_means(loss), Error);  // no forward yet
    loss.set_kl_weight(0.25);
    Tensor<double> x = random_tensor(Shape{3, 5}, 0, 1), x_hat = random_tensor(Shape{3, 5}, 0, 1);
    Tensor<double> mean = random_tensor(Shape{3, 2}), log_var = random_tensor(Shape{3, 2});
    loss.forward(ctx, x.view(), x_hat.view(), mean.view(), log_var.view());
    double recon = 0, kl = 0;
    for (int i = 0; i < 3; ++i) {
        recon += loss.per_sample_reconstruction()[i];
        kl += loss.per_sample_kl()[i];
    }
    const VaeLossMeans m = ewe::batch_means(loss);
    CHECK(m.reconstruction == recon / 3);
    CHECK(m.kl == kl / 3);
    CHECK(m.total == recon / 3 + 0.25 * (kl / 3));
}

TEST_CASE("VAE loss: values and gradients for both KL reductions and any KL weight") {
    Context ctx;
    const std::int64_t n = 3, pixels = 6, latent = 2;
    for (KlReduction reduction : {KlReduction::mean, KlReduction::sum}) {
        for (double weight : {0.0, 0.35, 1.0}) {
            CAPTURE(weight);
            VaeLoss<double> loss(ctx, VaeLossOptions{1568.0, reduction}, n);
            loss.set_kl_weight(weight);
            Tensor<double> x = random_tensor(Shape{n, pixels}, 0, 1), x_hat = random_tensor(Shape{n, pixels}, 0, 1);
            Tensor<double> mean = random_tensor(Shape{n, latent}), log_var = random_tensor(Shape{n, latent});
            auto total = [&] {
                loss.forward(ctx, x.view(), x_hat.view(), mean.view(), log_var.view());
                return ewe::batch_means(loss).total;
            };
            // Known value: the first sample by the formula written out.
            loss.forward(ctx, x.view(), x_hat.view(), mean.view(), log_var.view());
            double sse = 0, kl = 0;
            for (int p = 0; p < pixels; ++p) sse += (x_hat[p] - x[p]) * (x_hat[p] - x[p]);
            for (int d = 0; d < latent; ++d) kl += -0.5 * (1 + log_var[d] - mean[d] * mean[d] - std::exp(log_var[d]));
            CHECK(loss.per_sample_reconstruction()[0] == doctest::Approx(1568.0 * sse / pixels));
            CHECK(loss.per_sample_kl()[0] == doctest::Approx(reduction == KlReduction::mean ? kl / latent : kl));

            Tensor<double> dx_hat(x_hat.shape()), dmean(mean.shape()), dlog_var(log_var.shape());
            loss.backward(ctx, x.view(), x_hat.view(), mean.view(), log_var.view(), dx_hat.view(), dmean.view(),
                          dlog_var.view());
            check_gradient("d/dx_hat", x_hat.view(), dx_hat.view(), total);
            check_gradient("d/dmean", mean.view(), dmean.view(), total);
            check_gradient("d/dlog_var", log_var.view(), dlog_var.view(), total);
        }
    }
}

TEST_CASE("reparameterization gradients, standard and the post's variant") {
    Context ctx;
    const PhiloxKey key{11, 2, 4};
    for (ReparamVariant variant : {ReparamVariant::standard, ReparamVariant::post}) {
        Tensor<double> mean = random_tensor(Shape{4, 3}), log_var = random_tensor(Shape{4, 3});
        Tensor<double> z(mean.shape()), r = random_tensor(mean.shape());
        auto loss = [&] {
            ops::reparameterize_forward<double>(ctx, variant, key, mean.view(), log_var.view(), z.view());
            return testing::dot(z.view(), r.view());
        };
        loss();
        const double eps0 = philox_normal(key, 0);
        const double sigma0 = variant == ReparamVariant::standard ? std::exp(0.5 * log_var[0]) : std::exp(log_var[0]);
        CHECK(z[0] == doctest::Approx(mean[0] + sigma0 * eps0));
        Tensor<double> dmean(mean.shape()), dlog_var(mean.shape());
        ops::fill<double>(ctx, 0.0, dmean.view());
        ops::fill<double>(ctx, 0.0, dlog_var.view());
        ops::reparameterize_backward<double>(ctx, variant, key, log_var.view(), r.view(), dmean.view(), dlog_var.view());
        check_gradient("dmean", mean.view(), dmean.view(), loss);
        check_gradient("dlog_var", log_var.view(), dlog_var.view(), loss);
    }
}

namespace {
// A one-parameter store holding p = 1 with gradient g.
struct OneParameter {
    Context ctx;
    ParameterStore<double> store;
    OneParameter() {
        store.add("p", Shape{1}, true, Init::ones);
        store.allocate(Device::cpu, 0);
    }
    double p() const { return store.values()[0]; }
    void grad(double g) { store.grads()[0] = g; }
};
}  // namespace

TEST_CASE("RMSprop step by hand: s = 0.1 g^2, p -= lr g / (sqrt(s) + 1e-7)") {
    OneParameter one;
    Rmsprop<double> opt(one.ctx, one.store, {.lr = 0.1});
    one.grad(0.5);
    opt.step(one.ctx);
    CHECK(one.p() == doctest::Approx(0.6837724339830356).epsilon(1e-14));
    CHECK(opt.state()[0].second[0] == doctest::Approx(0.025).epsilon(1e-14));
}

TEST_CASE("Adam first step by hand (Keras epsilon placement)") {
    OneParameter one;
    Adam<double> opt(one.ctx, one.store, {.lr = 0.1});
    one.grad(0.5);
    opt.step(one.ctx);
    CHECK(one.p() == doctest::Approx(0.900000632451532).epsilon(1e-14));
}

// The door folds the bias corrections into the step size (ewe/ops/ops.hpp): the second
// step must use 1 - beta^2, not the first step's 1 - beta.
TEST_CASE("Adam second step by hand: step size lr * sqrt(1 - b2^t) / (1 - b1^t) at t = 2") {
    OneParameter one;
    Adam<double> opt(one.ctx, one.store, {.lr = 0.1});
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7;
    one.grad(0.5);
    opt.step(one.ctx);
    const double p1 = one.p(), m1 = (1 - b1) * 0.5, v1 = (1 - b2) * 0.25;
    one.grad(0.25);
    opt.step(one.ctx);
    const double m2 = b1 * m1 + (1 - b1) * 0.25, v2 = b2 * v1 + (1 - b2) * 0.0625;
    const double step_size = 0.1 * std::sqrt(1 - b2 * b2) / (1 - b1 * b1);
    CHECK(one.p() == doctest::Approx(p1 - step_size * m2 / (std::sqrt(v2) + eps)).epsilon(1e-14));
}

TEST_CASE("SGD with Nesterov momentum, two steps by hand") {
    OneParameter one;
    Sgd<double> opt(one.ctx, one.store, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
    one.grad(0.5);
    opt.step(one.ctx);  // v = -0.05, p = 1 + 0.9 * -0.05 - 0.05
    CHECK(one.p() == doctest::Approx(0.905).epsilon(1e-14));
    one.grad(0.25);
    opt.step(one.ctx);  // v = 0.9 * -0.05 - 0.025 = -0.07, p = 0.905 - 0.063 - 0.025
    CHECK(one.p() == doctest::Approx(0.817).epsilon(1e-14));
    Sgd<double> plain(one.ctx, one.store, {.lr = 0.1});
    plain.step(one.ctx);
    CHECK(one.p() == doctest::Approx(0.792).epsilon(1e-14));
}

// The CPU update ops run every element through one packet loop (ewe/cpu/update_packets.hpp):
// each rule gives the bits of its Eigen array expression (the form the ops had before), on
// the whole buffer and on any split into ranges (before the packet loop, Eigen computed an
// unaligned range's edges with scalar code, whose square root differs in the last bit).
TEST_CASE("CPU update ops: the bits of each rule's Eigen array expression, on any split into ranges") {
    using Array = Eigen::Array<float, Eigen::Dynamic, 1>;
    constexpr std::int64_t n = 4096;  // whole packets, so the Eigen expressions run vectorized throughout
    Array p0(n), g(n), a0(n), b0(n);
    for (std::int64_t i = 0; i < n; ++i) {
        p0[i] = float((i * 37) % 101) / 50.0f - 1.0f;
        g[i] = float((i * 53) % 97) / 48.0f - 1.0f;
        a0[i] = float((i * 29) % 89) / 88.0f;
        b0[i] = float((i * 31) % 83) / 82.0f;
    }
    const float lr = 0.01f, rho = 0.9f, eps = 1e-7f, b1 = 0.9f, b2 = 0.999f, momentum = 0.9f;
    const double adam_step = double(lr) * std::sqrt(1.0 - double(b2)) / (1.0 - double(b1));  // ops::adam_update at step 1
    enum class Rule { sgd, sgd_momentum, sgd_nesterov, rmsprop, adam };
    for (const Rule rule : {Rule::sgd, Rule::sgd_momentum, Rule::sgd_nesterov, Rule::rmsprop, Rule::adam}) {
        CAPTURE(int(rule));
        Array p = p0, a = a0, b = b0;  // the expressions
        switch (rule) {
            case Rule::sgd: p -= lr * g; break;
            case Rule::sgd_momentum:
                a = momentum * a - lr * g;
                p += a;
                break;
            case Rule::sgd_nesterov:
                a = momentum * a - lr * g;
                p += momentum * a - lr * g;
                break;
            case Rule::rmsprop:
                a = rho * a + float(1.0 - double(rho)) * g.square();  // as the op: 1 - rho in double
                p -= lr * g / (a.sqrt() + eps);
                break;
            case Rule::adam: {
                const float rate = float(adam_step);
                a = b1 * a + (1.0f - b1) * g;
                b = b2 * b + (1.0f - b2) * g.square();
                p -= rate * a / (b.sqrt() + eps);
                break;
            }
        }
        std::vector<float> whole_p, whole_a, whole_b;  // the op on the whole buffer
        for (const std::vector<std::int64_t>& cuts :
             {std::vector<std::int64_t>{0, n}, std::vector<std::int64_t>{0, 37, 1000, 1003, n}}) {
            CAPTURE(cuts.size());
            Context ctx(Device::cpu, ContextOptions{.threads = 1});
            Tensor<float> tp(Shape{n}), tg(Shape{n}), ta(Shape{n}), tb(Shape{n});
            std::copy_n(p0.data(), n, tp.data());
            std::copy_n(g.data(), n, tg.data());
            std::copy_n(a0.data(), n, ta.data());
            std::copy_n(b0.data(), n, tb.data());
            for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
                const auto part = [&](Tensor<float>& t) { return t.view().slice(cuts[k], Shape{cuts[k + 1] - cuts[k]}); };
                const TensorView<const float> gp = part(tg);
                switch (rule) {
                    case Rule::sgd: ops::sgd_update<float>(ctx, {.lr = lr}, lr, part(tp), gp, TensorView<float>()); break;
                    case Rule::sgd_momentum:
                        ops::sgd_update<float>(ctx, {.lr = lr, .momentum = momentum}, lr, part(tp), gp, part(ta));
                        break;
                    case Rule::sgd_nesterov:
                        ops::sgd_update<float>(ctx, {.lr = lr, .momentum = momentum, .nesterov = true}, lr, part(tp), gp,
                                               part(ta));
                        break;
                    case Rule::rmsprop:
                        ops::rmsprop_update<float>(ctx, {.lr = lr, .rho = rho, .epsilon = eps}, lr, part(tp), gp, part(ta));
                        break;
                    case Rule::adam:
                        ops::adam_update<float>(ctx, {.lr = lr, .beta1 = b1, .beta2 = b2, .epsilon = eps}, lr, 1, part(tp),
                                                gp, part(ta), part(tb));
                        break;
                }
            }
            if (whole_p.empty()) {
                whole_p.assign(tp.data(), tp.data() + n);
                whole_a.assign(ta.data(), ta.data() + n);
                whole_b.assign(tb.data(), tb.data() + n);
#if defined(__OPTIMIZE__)
                // The expressions' bits: only where this file is optimized as the library is.
                // Unoptimized (the sanitizer build) GCC fuses no multiply-add in the expressions,
                // while Nesterov's rule fuses two explicitly, as the optimized expression does.
                CHECK(std::equal(tp.data(), tp.data() + n, p.data()));
                CHECK(std::equal(ta.data(), ta.data() + n, a.data()));
                CHECK(std::equal(tb.data(), tb.data() + n, b.data()));
#endif
                // Against the expression to float rounding, at any optimization.
                double worst = 0;
                for (std::int64_t i = 0; i < n; ++i)
                    worst = std::max({worst, std::abs(double(tp[i]) - double(p[i])), std::abs(double(ta[i]) - double(a[i])),
                                      std::abs(double(tb[i]) - double(b[i]))});
                CHECK(worst <= 1e-6);
            } else {  // any split: the bits of the whole buffer's update
                CHECK(std::equal(tp.data(), tp.data() + n, whole_p.data()));
                CHECK(std::equal(ta.data(), ta.data() + n, whole_a.data()));
                CHECK(std::equal(tb.data(), tb.data() + n, whole_b.data()));
            }
        }
    }
}

#if defined(__SSE2__)
TEST_CASE("CPU contexts flush denormals to zero unless told not to, so RMSprop state decays to 0") {
    // With IEEE gradual underflow first, whatever earlier tests set.
    std::thread([] {
        set_cpu_denormal_flushing(false);
        volatile float tiny = 1e-39f;  // denormal: the smallest normal float is 1.18e-38
        const auto rmsprop_decay = [](Context& ctx) {  // s = 0.9 s + 0.1 g^2 with g = 0
            Tensor<float> p = Tensor<float>::from({2}, {1, 1}), g = Tensor<float>::from({2}, {0, 0});
            Tensor<float> s = Tensor<float>::from({2}, {FLT_MIN, 1});
            ops::rmsprop_update<float>(ctx, RmspropOptions{}, 1e-3, p, g, s);
            CHECK(s[1] == doctest::Approx(0.9));
            return s[0];
        };
        {
            ContextOptions keep;
            keep.flush_denormals = false;
            Context ctx(Device::cpu, keep);
            CHECK(tiny * 0.5f != 0.0f);
            CHECK(rmsprop_decay(ctx) == doctest::Approx(0.9 * FLT_MIN));
        }
        Context ctx;
        CHECK(tiny * 0.5f == 0.0f);
        int unflushed = 0;
#pragma omp parallel reduction(+ : unflushed)
        unflushed += tiny * 0.5f != 0.0f;
        CHECK(unflushed == 0);
        CHECK(rmsprop_decay(ctx) == 0.0f);
    }).join();
}
#endif

TEST_CASE("optimizers reject invalid hyperparameters") {
    OneParameter one;
    CHECK_THROWS_WITH_AS(Rmsprop<double>(one.ctx, one.store, {.lr = -1.0}), doctest::Contains("learning rate must be positive"),
                         ewe::Error);
    CHECK_THROWS_WITH_AS(Rmsprop<double>(one.ctx, one.store, {.lr = 0.1, .rho = 1.5, .epsilon = 1e-7}),
                         doctest::Contains("rho must be in [0, 1), found 1.5"), ewe::Error);
    CHECK_THROWS_WITH_AS(Sgd<double>(one.ctx, one.store, {.lr = 0.1, .momentum = 0.0, .nesterov = true}),
                         doctest::Contains("nesterov needs a momentum"), ewe::Error);
}
