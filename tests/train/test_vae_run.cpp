// A VAE's training run in a folder (ewe/train/vae_run.hpp) on a small SheepVae: a new
// run writes its files and records its settings and data in the checkpoint; a resume
// continues with the checkpoint's settings (and says which it took), and refuses other
// data or a setting given with another value, naming both in the library's words or the
// program's (VaeRunNames); load_trained_vae rebuilds the trained model from the
// checkpoint or its folder, refusing a folder without one and images the program does
// not handle. The products' precision is one of the settings (fp32 in a checkpoint
// written before it was recorded).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/io/fingerprint.hpp>
#include <ewe/io/safetensors.hpp>
#include <ewe/train/vae_run.hpp>

#include "error_of.hpp"
#include "small_sheep_vae.hpp"

namespace fs = std::filesystem;
using ewe_test::error_of;

namespace {

fs::path temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("ewe_test_vae_run_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    return p;
}

// `n` 8x8 images, different for each `salt`.
ewe::Tensor<float> images(std::int64_t n, int salt) {
    ewe::Tensor<float> x(ewe::Shape{n, 8, 8, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float((i * 7 + salt) % 5) / 4.0f;
    return x;
}

ewe::VaeRunOptions<float> run_options(const fs::path& dir, std::ostream& log) {
    ewe::VaeRunOptions<float> r;
    r.dir = dir;
    r.model_options = ewe_test::small_model_options();
    r.settings.seed = 5;
    r.settings.batch = 4;
    r.settings.lr = 1e-3;
    r.settings.kl_start = 1;
    r.settings.kl_steep = 2;
    r.epochs = 2;
    r.snapshots = {1};
    r.monitor = 4;
    r.threads = 1;
    r.log = &log;
    r.progress_bar = false;
    r.handle_sigint = false;
    return r;
}

}  // namespace

TEST_CASE("train_vae_run: a new run, then a resume with the checkpoint's settings, refused on other data or settings") {
    const fs::path dir = temp_dir("train");
    const ewe::Tensor<float> x = images(12, 0);
    std::ostringstream log;
    ewe::VaeRunOptions<float> r = run_options(dir, log);
    const ewe::VaeRunResult first = ewe::train_vae_run<float>(r, x.view(), "eight.npy");
    CHECK_FALSE(first.stopped);
    CHECK(first.epochs_trained == 2);
    CHECK(first.progress.epoch == 2);
    CHECK(first.progress.iterations == 6);  // 12 images in batches of 4
    CHECK(first.parameters > 0);
    for (const char* f : {"checkpoint.safetensors", "metrics.csv", "loss.svg", "kl.svg", "latent_epoch001.npy"})
        CHECK_MESSAGE(fs::exists(dir / f), f);

    const ewe::VaeRunCheckpoint c = ewe::read_vae_run_checkpoint(dir / "checkpoint.safetensors", "--checkpoint");
    CHECK(c.progress.epoch == 2);
    CHECK(c.model_options.latent == 2);
    CHECK(c.model_options.image_size == 8);
    CHECK(c.settings.seed == 5);
    CHECK(c.settings.batch == 4);
    CHECK(c.settings.lr == doctest::Approx(1e-3));
    CHECK(c.settings.kl_start == 1);
    CHECK(c.settings.kl_steep == 2);
    CHECK(c.settings.samples == 12);
    CHECK(c.settings.data == "eight.npy");
    CHECK(c.settings.data_hash == ewe::io::content_hash<float>(x.view()));

    // A rerun without --resume or --overwrite is refused by the folder.
    CHECK(error_of([&] { ewe::train_vae_run<float>(r, x.view(), "eight.npy"); }).find("already holds a run") !=
          std::string::npos);

    // Resumed with no setting given: all of them come from the checkpoint, and the log says so.
    r.resume = true;
    r.epochs = 3;
    r.settings.lr = 0.5;  // not given: the checkpoint's 0.001 is used
    log.str("");
    const ewe::VaeRunResult second = ewe::train_vae_run<float>(r, x.view(), "eight.npy");
    CHECK(second.epochs_trained == 1);
    CHECK(second.progress.epoch == 3);
    CHECK(log.str().find("Resuming from " + (dir / "checkpoint.safetensors").string() + " after epoch 2 (6 steps) on the "
                         "same data with hash " + ewe::io::hash_text(c.settings.data_hash) + " (eight.npy, 12 samples)"
                         "; from the checkpoint: latent 2, width 1, reparam standard, seed 5, batch 4, lr 0.001, "
                         "kl_start 1, kl_steep 2") != std::string::npos);
    CHECK(ewe::read_vae_run_checkpoint(dir / "checkpoint.safetensors", "--checkpoint").settings.lr ==
          doctest::Approx(1e-3));

    // A setting given with another value is refused, naming both values: in the library's
    // words, or in the program's (its flags).
    r.epochs = 4;
    r.given_settings = {"lr"};
    const std::string path = (dir / "checkpoint.safetensors").string();
    CHECK(error_of([&] { ewe::train_vae_run<float>(r, x.view(), "eight.npy"); }) ==
          "resume: " + path + " was trained with lr 0.001, this run asks for lr 0.5; leave lr out to continue with the "
          "checkpoint's, or train into another dir");
    r.names.resume = "--resume";
    r.names.folder = "--out";
    r.names.lr = "--lr";
    r.given_settings = {"--lr"};
    CHECK(error_of([&] { ewe::train_vae_run<float>(r, x.view(), "eight.npy"); }) ==
          "--resume: " + path + " was trained with --lr 0.001, this run asks for --lr 0.5; leave --lr out to continue "
          "with the checkpoint's, or train into another --out");
    // Other data (the same count, other content) is refused, naming both.
    r.given_settings = {};
    r.names.data = "--data and --limit";
    r.names.rows = "drawings";
    const std::string other = error_of([&] { ewe::train_vae_run<float>(r, images(12, 1).view(), "other.npy"); });
    CHECK(other.find("was trained on data with hash " + ewe::io::hash_text(c.settings.data_hash) +
                     " (eight.npy, 12 drawings), this run's data with hash") != std::string::npos);
    CHECK(other.find("(other.npy, 12 drawings); use the same --data and --limit") != std::string::npos);
    // A checkpoint for other images is refused when the program names the ones it handles.
    r.images = {28, 1, "Quick, Draw! bitmaps"};
    CHECK(error_of([&] { ewe::train_vae_run<float>(r, x.view(), "eight.npy"); })
              .find("the checkpoint is for 8x8x1 images; this program handles 28x28x1 Quick, Draw! bitmaps") !=
          std::string::npos);
    CHECK(ewe::read_vae_run_checkpoint(dir / "checkpoint.safetensors", "--checkpoint").progress.epoch == 3);
    fs::remove_all(dir);
}

TEST_CASE("train_vae_run: the products' precision is a run setting: recorded, fp32 in an older checkpoint, another refused on resume") {
    const fs::path dir = temp_dir("precision");
    const ewe::Tensor<float> x = images(8, 3);
    std::ostringstream log;
    ewe::VaeRunOptions<float> r = run_options(dir, log);
    r.epochs = 1;
    ewe::train_vae_run<float>(r, x.view(), "eight.npy");
    const fs::path path = dir / "checkpoint.safetensors";
    CHECK(ewe::io::read_safetensors(path).metadata.at("train.product_precision") == "fp32");
    CHECK(ewe::read_vae_run_checkpoint(path, "--checkpoint").settings.product_precision == ewe::CpuProductPrecision::fp32);

    // Given with the other value: refused before anything trains, naming both values.
    r.resume = true;
    r.epochs = 2;
    r.settings.product_precision = ewe::CpuProductPrecision::bf16;
    r.given_settings = {"product_precision"};
    const std::string refusal = "resume: " + path.string() + " was trained with product_precision fp32, this run asks "
                                "for product_precision bf16; leave product_precision out to continue with the "
                                "checkpoint's, or train into another dir";
    CHECK(error_of([&] { ewe::train_vae_run<float>(r, x.view(), "eight.npy"); }) == refusal);

    // A checkpoint written before the setting was recorded was trained in fp32.
    const ewe::io::SafetensorsFile file = ewe::io::read_safetensors(path);
    std::vector<ewe::io::SafetensorsEntry> entries;
    for (const auto& [name, t] : file.tensors)
        entries.push_back({name, t.dtype, t.shape, file.data.data() + t.begin, t.end - t.begin});
    std::map<std::string, std::string> meta = file.metadata;
    REQUIRE(meta.erase("train.product_precision") == 1);
    ewe::io::write_safetensors(path, entries, meta);
    CHECK(ewe::read_vae_run_checkpoint(path, "--checkpoint").settings.product_precision == ewe::CpuProductPrecision::fp32);
    CHECK(error_of([&] { ewe::train_vae_run<float>(r, x.view(), "eight.npy"); }) == refusal);
    // An edited value names the key.
    meta["train.product_precision"] = "fp16";
    ewe::io::write_safetensors(path, entries, meta);
    CHECK(error_of([&] { (void)ewe::read_vae_run_checkpoint(path, "--checkpoint"); }) ==
          "--checkpoint " + path.string() + ": metadata train.product_precision = 'fp16' (expected fp32 or bf16)");
    meta.erase("train.product_precision");
    ewe::io::write_safetensors(path, entries, meta);

    // Left out: the checkpoint's is taken (fp32 here, though the options ask for bf16), and said.
    r.given_settings = {};
    log.str("");
    CHECK(ewe::train_vae_run<float>(r, x.view(), "eight.npy").epochs_trained == 1);
    CHECK(log.str().find("kl_steep 2, product_precision fp32") != std::string::npos);
    CHECK(ewe::read_vae_run_checkpoint(path, "--checkpoint").settings.product_precision == ewe::CpuProductPrecision::fp32);

    // A run in bf16 resumes in bf16 when the precision is left out.
    if (ewe::cpu_bf16_products_available()) {
        const fs::path bf16_dir = dir / "bf16";
        ewe::VaeRunOptions<float> b = run_options(bf16_dir, log);
        b.epochs = 1;
        b.settings.product_precision = ewe::CpuProductPrecision::bf16;
        ewe::train_vae_run<float>(b, x.view(), "eight.npy");
        b.resume = true;
        b.epochs = 2;
        b.settings.product_precision = ewe::CpuProductPrecision::fp32;
        log.str("");
        CHECK(ewe::train_vae_run<float>(b, x.view(), "eight.npy").epochs_trained == 1);
        CHECK(log.str().find("product_precision bf16") != std::string::npos);
        CHECK(ewe::read_vae_run_checkpoint(bf16_dir / "checkpoint.safetensors", "--checkpoint").settings.product_precision ==
              ewe::CpuProductPrecision::bf16);
    }
    fs::remove_all(dir);
}

TEST_CASE("load_trained_vae: the model of a checkpoint or a run folder; a folder without one is refused") {
    const fs::path dir = temp_dir("load");
    const ewe::Tensor<float> x = images(8, 2);
    std::ostringstream log;
    ewe::VaeRunOptions<float> r = run_options(dir / "run", log);
    r.epochs = 1;
    const ewe::VaeRunResult trained = ewe::train_vae_run<float>(r, x.view(), "eight.npy");
    ewe::TrainedVaeOptions options;
    options.threads = 1;
    options.max_batch = 3;
    for (const fs::path& path : {dir / "run", dir / "run" / "checkpoint.safetensors"}) {
        const ewe::TrainedVae<float> m = ewe::load_trained_vae<float>(path, ewe::Device::cpu, options);
        CHECK(m.vae->params().total_count() == trained.parameters);
        CHECK(m.checkpoint.progress.epoch == 1);
        CHECK(m.checkpoint.model_options.filters == ewe_test::small_model_options().filters);
        // The loaded weights are the checkpoint's.
        const ewe::VaeRunCheckpoint c = ewe::read_vae_run_checkpoint(dir / "run" / "checkpoint.safetensors", "--run");
        ewe::Context ctx(ewe::Device::cpu);
        ewe::SheepVae<float> fresh(ctx, c.model_options, 3, 99);
        c.file.load_parameters(fresh.params());
        const ewe::Tensor<float> a = ewe::Tensor<float>::copy_of(m.vae->params().values(), ewe::Device::cpu);
        const ewe::Tensor<float> b = ewe::Tensor<float>::copy_of(fresh.params().values(), ewe::Device::cpu);
        REQUIRE(a.numel() == b.numel());
        bool same = true;
        for (std::int64_t i = 0; i < a.numel(); ++i) same = same && a[i] == b[i];
        CHECK(same);
    }
    fs::create_directories(dir / "empty");
    CHECK(error_of([&] { ewe::load_trained_vae<float>(dir / "empty", ewe::Device::cpu, options); }) ==
          "checkpoint: " + (dir / "empty").string() + " is a folder without checkpoint.safetensors (expected a "
          "checkpoint or the folder of a training run)");
    options.flag = "--run";
    CHECK(error_of([&] { ewe::load_trained_vae<float>(dir / "empty", ewe::Device::cpu, options); }) ==
          "--run: " + (dir / "empty").string() + " is a folder without checkpoint.safetensors (expected a checkpoint "
          "or the folder of a training run)");
    options.images = {28, 1, "Quick, Draw! bitmaps"};
    CHECK(error_of([&] { ewe::load_trained_vae<float>(dir / "run", ewe::Device::cpu, options); })
              .find("--run: " + (dir / "run" / "checkpoint.safetensors").string() +
                    ": the checkpoint is for 8x8x1 images; this program handles 28x28x1 Quick, Draw! bitmaps") !=
          std::string::npos);
    fs::remove_all(dir);
}
