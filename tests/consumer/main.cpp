// A program outside the ewe tree, built with nothing but the flags ewe::ewe carries.
//   consumer          builds the sheep VAE, checks its parameter count and takes one
//                     training step, so linking and running are both exercised.
//   consumer bench N  times N training steps of batch 8 after 3 untimed ones and prints
//                     the median ms/step: the step `sheep_vae bench` times (seed model,
//                     RMSprop, fp32), here as a user's build compiles it
//                     (bench/compare/consumer_step.sh compares the two).
#include <ewe/ewe.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

ewe::Tensor<float> images(std::int64_t batch) {
    ewe::Tensor<float> x(ewe::Shape{batch, 28, 28, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float(i % 3) / 2.0f;
    return x;
}

int check() {
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, ewe::SheepVaeOptions{}, 2, 1);
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, 2);
    ewe::Rmsprop<float> optimizer(ctx, vae.params());
    const ewe::Tensor<float> x = images(2);
    ewe::train_step(ctx, vae, loss, optimizer, x.view());
    const double total = ewe::batch_means(loss).total;
    std::printf("params %lld loss %.3f\n", static_cast<long long>(vae.params().total_count()), total);
    return vae.params().total_count() == 12857845 && total > 0 ? 0 : 1;
}

int bench(std::int64_t steps) {
    constexpr std::int64_t kBatch = 8;
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, ewe::SheepVaeOptions{}, kBatch, 42);
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, kBatch);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    const ewe::Tensor<float> x = images(kBatch);
    for (int i = 0; i < 3; ++i) ewe::train_step(ctx, vae, loss, optimizer, x.view());
    std::vector<double> ms;
    for (std::int64_t i = 0; i < steps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        ewe::train_step(ctx, vae, loss, optimizer, x.view());
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const std::size_t m = ms.size();
    std::printf("consumer: median %.2f ms/step, batch %lld, %lld steps\n",
                m % 2 ? ms[m / 2] : 0.5 * (ms[m / 2 - 1] + ms[m / 2]), static_cast<long long>(kBatch),
                static_cast<long long>(steps));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 1) return check();
    const long long steps = argc == 3 ? std::atoll(argv[2]) : 0;
    if (std::string(argv[1]) != "bench" || steps < 1) {
        std::fprintf(stderr, "usage: consumer [bench STEPS]\n");
        return 2;
    }
    return bench(steps);
}
