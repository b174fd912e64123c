// ewe::Model, the owner of a plain Sequential network, and ewe::io::read_images_npy:
// a plain autoencoder of real Quick, Draw! sheep ($EWE_DATA/sheep.npy) built, trained,
// saved and reloaded as docs/api.md shows it; .npy files of each accepted layout read
// as scaled (n, h, w, c) tensors, and other layouts refused naming the file.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <ewe/ewe.hpp>

#include "error_of.hpp"

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_model_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// $EWE_DATA/sheep.npy, or empty (and a message saying the case is skipped) where it is
// absent, as test_sheep_model's real-data case does.
fs::path sheep_file() {
    const char* dir = std::getenv("EWE_DATA");
    const fs::path file = fs::path(dir ? dir : "") / "sheep.npy";
    if (dir && fs::exists(file)) return file;
    MESSAGE("skipped: " << file << " not found (set EWE_DATA to the Quick, Draw! folder)");
    return {};
}

// Mean squared error of the model's reconstructions of `images`.
double reconstruction_error(ewe::Context& ctx, ewe::Model<float>& model, const ewe::Tensor<float>& images) {
    const ewe::Tensor<float> y = model.predict(ctx, images.view());
    double sum = 0;
    for (std::int64_t i = 0; i < images.numel(); ++i) sum += (double(y[i]) - images[i]) * (double(y[i]) - images[i]);
    return sum / double(images.numel());
}

std::vector<float> values_of(const ewe::Tensor<float>& t) { return {t.data(), t.data() + t.numel()}; }

using ewe_test::error_of;

}  // namespace

TEST_CASE("Model: a plain autoencoder of sheep is built, trained, saved and reloaded in a few lines") {
    const fs::path sheep = sheep_file();
    if (sheep.empty()) return;
    const fs::path dir = temp_dir("plain");
    ewe::Context ctx;
    const ewe::Tensor<float> images = ewe::io::read_images_npy<float>(sheep, ewe::Shape{28, 28, 1}, 1.0 / 255, /*limit=*/64);
    REQUIRE(images.shape() == ewe::Shape{64, 28, 28, 1});
    CHECK(*std::min_element(images.data(), images.data() + images.numel()) == 0.0f);
    CHECK(*std::max_element(images.data(), images.data() + images.numel()) == 1.0f);

    auto layers = [] {
        auto s = std::make_shared<ewe::Sequential<float>>("autoencoder");
        s->add<ewe::Flatten>();
        s->add<ewe::Dense>(32, ewe::Activation::relu);
        s->add<ewe::Dense>(28 * 28, ewe::Activation::sigmoid);
        s->add<ewe::Reshape>(ewe::Shape{28, 28, 1});
        return s;
    };
    ewe::Model<float> model(ctx, layers(), ewe::Shape{28, 28, 1}, /*max_batch=*/16, /*seed=*/7);
    CHECK(model.output_shape() == ewe::Shape{28, 28, 1});
    CHECK(model.params().total_count() == 784 * 32 + 32 + 32 * 784 + 784);
    CHECK(model.summary().find("Total params: 50,992") != std::string::npos);
    ewe::AutoencoderObjective<float> objective(ctx, model, 28.0 * 28.0);
    ewe::Adam<float> optimizer(ctx, model.params(), {.lr = 1e-2});
    ewe::FitOptions options;
    options.epochs = 4;
    ewe::Trainer<float> trainer(ctx, objective, optimizer, options);
    const ewe::CheckpointMetadata format{{"format", "my.autoencoder"}, {"format_version", "1"}};
    trainer.add(std::make_shared<ewe::ModelCheckpoint<float>>(ewe::ModelCheckpointOptions{dir / "ae.safetensors"},
                                                              [&](const ewe::TrainProgress&) { return format; }));
    const double before = reconstruction_error(ctx, model, images);
    const ewe::FitResult fit = trainer.fit(images.view());
    CHECK(fit.progress.epoch == 4);
    CHECK(fit.progress.iterations == 16);
    const double after = reconstruction_error(ctx, model, images);
    INFO("reconstruction MSE before ", before, ", after ", after);
    CHECK(after < 0.7 * before);

    // A fresh model of another seed, loaded from the file, predicts exactly as the trained one.
    ewe::Model<float> loaded(ctx, layers(), ewe::Shape{28, 28, 1}, 16, /*seed=*/99);
    const std::vector<float> trained = values_of(model.predict(ctx, images.view()));
    CHECK(values_of(loaded.predict(ctx, images.view())) != trained);
    ewe::Checkpoint::read(dir / "ae.safetensors", "my.autoencoder", "1").load_parameters(loaded.params());
    CHECK(values_of(loaded.predict(ctx, images.view())) == trained);
    fs::remove_all(dir);
}

TEST_CASE("Model: bad arguments are refused, naming what was expected") {
    ewe::Context ctx;
    CHECK(error_of([&] { ewe::Model<float>(ctx, nullptr, ewe::Shape{4}, 2, 1); }).find("Model: the layers are null") !=
          std::string::npos);
    auto dense = std::make_shared<ewe::Sequential<float>>("net");
    dense->add<ewe::Dense>(3, ewe::Activation::none);
    CHECK(error_of([&] { ewe::Model<float>(ctx, dense, ewe::Shape{4}, 0, 1); })
              .find("Model 'net': max_batch must be positive, found 0") != std::string::npos);
    ewe::Model<float> model(ctx, dense, ewe::Shape{4}, 2, 1);
    const ewe::Tensor<float> wrong(ewe::Shape{3, 5});
    CHECK(error_of([&] { model.predict(ctx, wrong.view()); }).find("Model::predict: x should be (n, 4,), found (3, 5)") !=
          std::string::npos);
    CHECK(error_of([&] { ewe::AutoencoderObjective<float>(ctx, model, 1.0); })
              .find("the model maps (4,) to (3,); an autoencoder reproduces its input") != std::string::npos);
}

TEST_CASE("read_images_npy: flat, (n, h, w) and (n, h, w, c) files of any dtype, scaled; other layouts refused") {
    const fs::path dir = temp_dir("npy");
    const std::vector<std::uint8_t> bytes{0, 51, 102, 255, 255, 0, 0, 51, 1, 2, 3, 4};
    ewe::io::write_npy<std::uint8_t>(dir / "flat.npy", bytes.data(), ewe::Shape{3, 4});
    const ewe::Tensor<float> flat = ewe::io::read_images_npy<float>(dir / "flat.npy", ewe::Shape{2, 2, 1}, 1.0 / 255);
    REQUIRE(flat.shape() == ewe::Shape{3, 2, 2, 1});
    CHECK(flat[1] == doctest::Approx(0.2));
    CHECK(flat[3] == 1.0f);
    CHECK(flat[11] == doctest::Approx(4.0 / 255));

    const std::vector<float> values{0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f};
    ewe::io::write_npy<float>(dir / "square.npy", values.data(), ewe::Shape{2, 2, 2});
    const ewe::Tensor<double> square = ewe::io::read_images_npy<double>(dir / "square.npy", ewe::Shape{2, 2, 1}, 2.0);
    REQUIRE(square.shape() == ewe::Shape{2, 2, 2, 1});
    CHECK(square[7] == 15.0);
    ewe::io::write_npy<float>(dir / "channels.npy", values.data(), ewe::Shape{2, 2, 1, 2});
    const ewe::Tensor<float> first = ewe::io::read_images_npy<float>(dir / "channels.npy", ewe::Shape{2, 1, 2}, 1.0, 1);
    REQUIRE(first.shape() == ewe::Shape{1, 2, 1, 2});
    CHECK(first[3] == 3.5f);

    const auto refused = [&](const fs::path& path, const ewe::Shape& image) {
        return error_of([&] { ewe::io::read_images_npy<float>(path, image, 1.0); });
    };
    CHECK(refused(dir / "flat.npy", ewe::Shape{3, 3, 1})
              .find("flat.npy: expected samples of shape (3, 3, 1) (or flat (n, 9)), found an array of shape (3, 4)") !=
          std::string::npos);
    CHECK(refused(dir / "square.npy", ewe::Shape{4, 1, 1}).find("square.npy: expected samples of shape (4, 1, 1)") !=
          std::string::npos);
    const std::vector<float> bad{0.0f, std::numeric_limits<float>::infinity(), 0.0f, 0.0f};
    ewe::io::write_npy<float>(dir / "inf.npy", bad.data(), ewe::Shape{1, 4});
    CHECK(refused(dir / "inf.npy", ewe::Shape{2, 2, 1}).find("inf.npy: sample 0, value 1 is inf") != std::string::npos);
    ewe::io::write_npy<float>(dir / "empty.npy", bad.data(), ewe::Shape{0, 4});
    CHECK(refused(dir / "empty.npy", ewe::Shape{2, 2, 1}).find("empty.npy: holds no samples") != std::string::npos);
    CHECK(refused(dir / "missing.npy", ewe::Shape{2, 2, 1}).find("missing.npy") != std::string::npos);
    fs::remove_all(dir);
}
