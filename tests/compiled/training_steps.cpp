// Builds, trains and saves a small VAE (convolutions, batch normalization, dropout,
// dense layers; Adam, KL annealing, a checkpoint) and prints every step's running
// losses exactly (hex floats), then whether Eigen was compiled into this file. Built
// twice by tests/CMakeLists.txt, header-only (ewe::ewe) and against ewe::compiled;
// tests/compiled/compare.cmake runs both and requires the same bits.
//   training_steps CHECKPOINT_PATH
#include <ewe/ewe.hpp>

#include <cstdio>
#include <memory>

using namespace ewe;

namespace {

// 16x16x1 -> 32 features, and 4 latent values -> 16x16x1.
VaeOptions<float> small_vae() {
    auto encoder = std::make_shared<Sequential<float>>("encoder");
    encoder->add<Conv2D>(ConvOptions{8, 3, 2, Padding::same, Activation::relu});  // 8x8x8
    encoder->add<BatchNormalization>();
    encoder->add<Flatten>();
    encoder->add<Dropout>(0.1);
    encoder->add<Dense>(32, Activation::relu);
    auto decoder = std::make_shared<Sequential<float>>("decoder");
    decoder->add<Dense>(8 * 8 * 8, Activation::relu);
    decoder->add<Reshape>(Shape{8, 8, 8});
    decoder->add<Conv2DTranspose>(ConvOptions{1, 3, 2, Padding::same, Activation::sigmoid});  // 16x16x1
    return VaeOptions<float>{Shape{16, 16, 1}, encoder, 4, decoder};
}

class PrintLosses final : public Callback<float> {
public:
    void on_batch_end(Trainer<float>&, const BatchLogs& logs) override {
        std::printf("epoch %lld step %lld:", (long long)logs.epoch, (long long)logs.step);
        for (const auto& [name, value] : logs.running.values) std::printf(" %s %a", name.c_str(), value);
        std::printf("\n");
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: training_steps CHECKPOINT_PATH\n");
        return 2;
    }
    const std::int64_t n = 32, batch = 8;
    Tensor<float> images(Shape{n, 16, 16, 1});
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t p = 0; p < 16 * 16; ++p)
            images[i * 256 + p] = float((p * 7 + i * 13) % 17) / 16.0f;

    Context ctx(Device::cpu, ContextOptions{.threads = 2});
    Vae<float> vae(ctx, small_vae(), batch, /*seed=*/3);
    VaeLoss<float> loss(ctx, VaeLossOptions{16.0 * 16}, batch);
    Adam<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    VaeObjective<float> objective(vae, loss);
    FitOptions options;
    options.epochs = 2;
    options.handle_sigint = false;
    Trainer<float> trainer(ctx, objective, optimizer, options);
    trainer.add(std::make_shared<KlAnnealing<float>>(KlAnnealing<float>::linear(1, 2)));
    trainer.add(std::make_shared<PrintLosses>());
    const CheckpointMetadata format{{"format", "ewe.test.training_steps"}, {"format_version", "1"}};
    ModelCheckpointOptions checkpoint;
    checkpoint.path = argv[1];
    trainer.add(std::make_shared<ModelCheckpoint<float>>(checkpoint, [&](const TrainProgress&) { return format; }));
    const FitResult fit = trainer.fit(images.view());
#if defined(EIGEN_WORLD_VERSION)
    std::printf("%lld steps; Eigen compiled into this file: yes\n", (long long)fit.progress.iterations);
#else
    std::printf("%lld steps; Eigen compiled into this file: no\n", (long long)fit.progress.iterations);
#endif
    return fit.progress.iterations == 2 * n / batch ? 0 : 1;
}
