// A program outside the ewe tree: builds the sheep VAE, checks its parameter count
// and takes one training step, so linking and running are both exercised.
#include <ewe/ewe.hpp>

#include <cstdio>

int main() {
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, ewe::SheepVaeConfig{}, 2, 1);
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossConfig{}, 2);
    ewe::Rmsprop<float> optimizer(ctx, vae.params());
    ewe::Tensor<float> x(ewe::Shape{2, 28, 28, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float(i % 3) / 2.0f;
    ewe::train_step(ctx, vae, loss, optimizer, x.view());
    const double total = loss.values().total;
    std::printf("params %lld loss %.3f\n", static_cast<long long>(vae.params().total_count()), total);
    return vae.params().total_count() == 12857845 && total > 0 ? 0 : 1;
}
