// Your own model in 60 lines (docs/api.md): a VAE of 64x64 images with 8 latent
// dimensions, built from ewe layers, trained with ewe::Trainer and two callbacks
// (KL annealing, checkpoints), then loaded into a fresh model and used to encode.
#include <ewe/ewe.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

using namespace ewe;

// 64x64x1 -> 128 features, and 8 latent values -> 64x64x1.
VaeOptions<float> disc_vae() {
    auto encoder = std::make_shared<Sequential<float>>("encoder");
    encoder->add<Conv2D>(ConvOptions{16, 4, 2, Padding::same, Activation::relu});  // 32x32x16
    encoder->add<Conv2D>(ConvOptions{32, 4, 2, Padding::same, Activation::relu});  // 16x16x32
    encoder->add<Flatten>();
    encoder->add<Dense>(128, Activation::relu);
    auto decoder = std::make_shared<Sequential<float>>("decoder");
    decoder->add<Dense>(16 * 16 * 32, Activation::relu);
    decoder->add<Reshape>(Shape{16, 16, 32});
    decoder->add<Conv2DTranspose>(ConvOptions{16, 4, 2, Padding::same, Activation::relu});    // 32x32x16
    decoder->add<Conv2DTranspose>(ConvOptions{1, 4, 2, Padding::same, Activation::sigmoid});  // 64x64x1
    return VaeOptions<float>{Shape{64, 64, 1}, encoder, 8, decoder};
}

int main(int argc, char** argv) {
    const std::int64_t n = 64, batch = 16, epochs = argc > 1 ? std::atoll(argv[1]) : 4;
    Tensor<float> images(Shape{n, 64, 64, 1});  // stand-ins for your data: discs
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t p = 0; p < 64 * 64; ++p)
            images[i * 4096 + p] = std::hypot(p / 64 - 20 - i % 24, p % 64 - 12 - i / 2) < 6 + i % 9 ? 1.0f : 0.0f;

    Context ctx;  // Context(Device::cuda) trains on the GPU
    Vae<float> vae(ctx, disc_vae(), batch, /*seed=*/7);
    VaeLoss<float> loss(ctx, VaeLossOptions{2.0 * 64 * 64}, batch);
    Adam<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    VaeObjective<float> objective(vae, loss);
    FitOptions options;
    options.epochs = epochs;
    Trainer<float> trainer(ctx, objective, optimizer, options);
    trainer.add(std::make_shared<KlAnnealing<float>>(KlAnnealing<float>::linear(1, 2)));
    const CheckpointMetadata format{{"format", "my.disc_vae"}, {"format_version", "1"}};
    trainer.add(std::make_shared<ModelCheckpoint<float>>(ModelCheckpointOptions{"disc_vae.safetensors"},
                                                         [&](const TrainProgress&) { return format; }));
    const FitResult fit = trainer.fit(images.view());

    Vae<float> loaded(ctx, disc_vae(), batch, /*seed=*/99);
    Checkpoint::read("disc_vae.safetensors", "my.disc_vae", "1").load_parameters(loaded.params());
    const VaeEncoding<float> z = encode<float>(ctx, loaded, images.view());
    const bool same = z.mean == encode<float>(ctx, vae, images.view()).mean;
    std::printf("%lld parameters, %lld steps, z of image 0: %.3f %.3f ..., loaded == trained: %s\n",
                (long long)vae.params().total_count(), (long long)fit.progress.iterations, z.mean[0], z.mean[1],
                same ? "yes" : "no");
    return same && fit.progress.epoch == epochs ? 0 : 1;
}
