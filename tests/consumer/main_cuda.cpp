// A program outside the ewe tree, compiled by the host compiler, that links the
// installed ewe::cuda (and no CUDA library): one training step and a StepReplay on
// Device::cuda, through the backend module libewe_cuda.so that the first CUDA context
// loads from the install prefix (the program's RUNPATH). Without a usable GPU the
// context must fail with the module's "no CUDA device" error, which proves the module
// was found, loaded and accepted (a program without it says "could not be loaded"):
// exit 0 after saying that the GPU part did not run; any other error fails.
#include <ewe/ewe.hpp>

#include <cstdio>
#include <string>

int main() {
    try {
        ewe::Context ctx(ewe::Device::cuda);
        ewe::SheepVae<float> vae(ctx, ewe::SheepVaeOptions{}, 2, 1);
        ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, 2);
        ewe::Rmsprop<float> optimizer(ctx, vae.params());
        ewe::Tensor<float> host(ewe::Shape{2, 28, 28, 1});
        for (std::int64_t i = 0; i < host.numel(); ++i) host[i] = float(i % 3) / 2.0f;
        const ewe::Tensor<float> x = host.to(ewe::Device::cuda);
        ewe::StepReplay replay(ctx);
        for (int step = 0; step < 3; ++step) replay.run([&] { ewe::train_step(ctx, vae, loss, optimizer, x.view()); });
        const double total = ewe::batch_means(loss).total;
        std::printf("cuda: loss %.3f after 3 steps, %lld graph launches%s%s\n", total,
                    static_cast<long long>(replay.launches()), replay.fell_back() ? ", fell back: " : "",
                    replay.fallback_reason().c_str());
        return total > 0 && replay.launches() == 2 ? 0 : 1;
    } catch (const ewe::Error& e) {
        const std::string what = e.what();
        if (what.find("no CUDA device is available") != std::string::npos) {
            std::printf("cuda: backend module loaded; no CUDA device, so no GPU step ran (%s)\n", e.what());
            return 0;
        }
        std::printf("cuda: FAIL: %s\n", e.what());
        return 1;
    }
}
