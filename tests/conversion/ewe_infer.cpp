// ewe's side of the weight-conversion test (tests/conversion/run.sh): loads a sheep VAE
// checkpoint, runs the eval forward (no dropout, moving BatchNorm statistics, z = the
// posterior mean) on the images of --input and writes z_mean.npy, z_log_var.npy and
// reconstruction.npy (float32; (N, latent), (N, latent), (N, h, w, c)) into --out.
//   ewe_infer --checkpoint CK.safetensors --input X.npy --out DIR
// X.npy: float32 (N, h, w, c) or (N, h*w*c), NHWC, values as the model expects them.
#include <cstdio>
#include <filesystem>
#include <string>

#include <ewe/ewe.hpp>
#include <ewe/io/npy.hpp>

namespace {

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr, "ewe_infer: %s\nusage: ewe_infer --checkpoint CK.safetensors --input X.npy --out DIR\n",
                 why.c_str());
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string checkpoint, input, out;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) usage("missing value after " + a);
        if (a == "--checkpoint") checkpoint = argv[++i];
        else if (a == "--input") input = argv[++i];
        else if (a == "--out") out = argv[++i];
        else usage("unknown argument " + a);
    }
    if (checkpoint.empty() || input.empty() || out.empty()) usage("--checkpoint, --input and --out are required");
    try {
        const ewe::Tensor<float> x_file = ewe::io::npy_to_tensor<float>(ewe::io::read_npy(input), "--input " + input);
        const std::int64_t n = x_file.shape().rank() > 0 ? x_file.dim(0) : 0;
        if (n == 0) ewe::fail("--input ", input, ": expected (N, h, w, c) or (N, h*w*c) images, found ", x_file.shape());

        const ewe::Checkpoint ck = ewe::Checkpoint::read(checkpoint, ewe::kSheepVaeFormat, ewe::kSheepVaeFormatVersion);
        ewe::Context ctx;
        ewe::SheepVae<float> vae(ctx, ewe::sheep_vae_options(ck), n, 0);
        ck.load_parameters(vae.params());
        const ewe::Shape image = vae.image_shape();
        if (x_file.numel() != n * image.numel())
            ewe::fail("--input ", input, ": shape ", x_file.shape(), " does not hold N images of ", image);
        const ewe::TensorView<const float> x(x_file.data(), image.with_batch(n));

        vae.forward(ctx, x, ewe::Phase::eval);
        const std::filesystem::path dir(out);
        std::filesystem::create_directories(dir);
        auto save = [&](const char* name, ewe::TensorView<const float> t) {
            ewe::Tensor<float> host(t.shape());
            ewe::copy<float>(t, host.view());
            ewe::io::write_npy<float>(dir / name, host.view());
        };
        save("z_mean.npy", vae.mean(n));
        save("z_log_var.npy", vae.log_var(n));
        save("reconstruction.npy", vae.reconstruction(n));
        std::printf("ewe_infer: %lld images through %s -> %s\n", static_cast<long long>(n), checkpoint.c_str(),
                    out.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ewe_infer: %s\n", e.what());
        return 1;
    }
    return 0;
}
