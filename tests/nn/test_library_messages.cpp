// Messages of the library itself (issue 26, item 6): they name the library's arguments
// and files, never a program's command-line flags; a layer not yet built is named by
// its kind; every shape is printed one way, "(784, 32)"; a program missing the CUDA
// backend is told to link ewe::cuda; ModelCheckpointOptions{path} compiles cleanly
// under -Wextra.
#include <doctest/doctest.h>

// An aggregate initialization that leaves members out must not warn (-Wextra's
// -Wmissing-field-initializers); made an error here, so this file does not compile
// when an options struct has a member without a default.
#pragma GCC diagnostic error "-Wmissing-field-initializers"

#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>

#include <ewe/ewe.hpp>

#include "error_of.hpp"

namespace fs = std::filesystem;

namespace {

using ewe_test::error_of;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

fs::path temp_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_messages_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// One parameter "w" of `shape`, allocated on the CPU.
struct OneParameter {
    ewe::ParameterStore<float> params;
    explicit OneParameter(ewe::Shape shape) {
        params.add("w", shape, true, ewe::Init::glorot_uniform, shape[0], shape[1]);
        params.allocate(ewe::Device::cpu, 1);
    }
};

}  // namespace

TEST_CASE("Checkpoint::read names the file as a checkpoint, or by the caller's source; never a program's flag") {
    const fs::path dir = temp_dir("checkpoint");
    const fs::path path = dir / "other.safetensors";
    OneParameter saved(ewe::Shape{4, 3});
    ewe::save_checkpoint<float>(path, saved.params, nullptr, {{"format", "ewe.other"}, {"format_version", "1"}});

    const std::string plain = error_of([&] { (void)ewe::Checkpoint::read(path, "ewe.vae", "1"); });
    INFO(plain);
    CHECK(plain.rfind("checkpoint " + path.string() + ": not a vae checkpoint (metadata 'format' should be ewe.vae)",
                      0) == 0);
    CHECK(!contains(plain, "--"));
    const std::string missing = error_of([&] { (void)ewe::Checkpoint::read(dir / "nope.safetensors", "ewe.vae", "1"); });
    CHECK(missing == "checkpoint: " + (dir / "nope.safetensors").string() + " does not exist (expected a file)");
    // A program names its own option.
    const std::string flagged = error_of([&] { (void)ewe::Checkpoint::read(path, "ewe.vae", "1", "--model"); });
    CHECK(flagged.rfind("--model " + path.string() + ": not a vae checkpoint", 0) == 0);
    fs::remove_all(dir);
}

TEST_CASE("one shape format everywhere: (784, 32), (7,), ()") {
    CHECK(ewe::Shape{784, 32}.str() == "(784, 32)");
    CHECK(ewe::Shape{7}.str() == "(7,)");
    CHECK(ewe::Shape{}.str() == "()");
    const std::vector<std::int64_t> dims{784, 64};
    CHECK(ewe::shape_text(dims.data(), dims.size()) == "(784, 64)");

    // A checkpoint tensor of another shape: both shapes printed the same way.
    const fs::path dir = temp_dir("shapes");
    OneParameter saved(ewe::Shape{784, 32});
    ewe::save_checkpoint<float>(dir / "w.safetensors", saved.params, nullptr, {{"format", "ewe.w"}, {"format_version", "1"}});
    OneParameter wider(ewe::Shape{784, 64});
    const ewe::Checkpoint c = ewe::Checkpoint::read(dir / "w.safetensors", "ewe.w", "1");
    const std::string what = error_of([&] { c.load_parameters(wider.params); });
    INFO(what);
    CHECK(contains(what, "tensor 'w' has shape (784, 32), the model expects (784, 64)"));
    fs::remove_all(dir);
}

TEST_CASE("a layer's messages before build name its kind, not an empty name") {
    const std::string unnamed = error_of([] { ewe::Dropout<float> d(1.5); });
    CHECK(unnamed == "Dropout (unnamed): rate must be in [0, 1), found 1.500000");
    const std::string named = error_of([] { ewe::Dropout<float> d(-0.5, "drop"); });
    CHECK(named == "Dropout 'drop': rate must be in [0, 1), found -0.500000");
    ewe::ConvOptions no_filters;
    no_filters.filters = 0;
    const std::string conv = error_of([&] { ewe::Conv2D<float> c(no_filters); });
    CHECK(contains(conv, "Conv2D (unnamed): filters must be positive, found 0"));
}

TEST_CASE("Trainer: metrics_every's message states its check (>= 0, 0 picks the device's default)") {
    ewe::Context ctx;
    auto layers = std::make_shared<ewe::Sequential<float>>("autoencoder");
    layers->add<ewe::Flatten>();
    layers->add<ewe::Dense>(4, ewe::Activation::sigmoid);
    layers->add<ewe::Reshape>(ewe::Shape{2, 2, 1});
    ewe::Model<float> model(ctx, layers, ewe::Shape{2, 2, 1}, 2, 1);
    ewe::AutoencoderObjective<float> objective(ctx, model, 4.0);
    ewe::Rmsprop<float> optimizer(ctx, model.params(), {.lr = 1e-3});
    ewe::FitOptions options;
    options.metrics_every = -1;
    CHECK(error_of([&] { ewe::Trainer<float>(ctx, objective, optimizer, options); }) ==
          "Trainer: metrics_every must be >= 0 (0: every step on the CPU, every 50 on CUDA), found -1");
    options.metrics_every = 0;
    CHECK(error_of([&] { ewe::Trainer<float>(ctx, objective, optimizer, options); }) == "(no error)");
}

TEST_CASE("ModelCheckpointOptions{path}: the other members keep their defaults (and no -Wextra warning)") {
    const ewe::ModelCheckpointOptions options{"last.safetensors"};
    CHECK(options.path == "last.safetensors");
    CHECK(options.every == 1);
    CHECK(options.best_path.empty());
    CHECK(options.monitor == "loss");
    CHECK(options.interrupted_path.empty());
}

TEST_CASE("a program without the CUDA backend is told to link ewe::cuda") {
    ::setenv("EWE_CUDA_BACKEND", "/nonexistent/libewe_cuda.so", 1);
    const std::string what = error_of([] { ewe::Context ctx(ewe::Device::cuda); });
    ::unsetenv("EWE_CUDA_BACKEND");
    INFO(what);
    CHECK(contains(what, "link the program to ewe::cuda (CMake: find_package(ewe COMPONENTS cuda)"));
    CHECK(!contains(what, "build ewe with CUDA"));
}
