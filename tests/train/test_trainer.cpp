// ewe::Trainer and its callbacks on small models: Keras' callback order, training that
// lowers the loss, metrics independent of how often they are read, Trainer::resume
// (bit-exact whatever the fresh model's seed; mismatches refused), the non-finite guard's message, stop_training,
// a stop request (StopToken, Ctrl-C through InterruptGuard), LossDiverged's typed fields, KL
// annealing, best-epoch checkpoints, CSV logs, the posterior-collapse monitor and the
// errors of bad arguments.
#include <doctest/doctest.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/ewe.hpp>

#include "error_of.hpp"

namespace fs = std::filesystem;

namespace {

using ewe_test::error_of;

fs::path temp_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_trainer_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// The layers of a plain autoencoder of 6x6 images: flatten, dense 8 (relu), dropout,
// dense 36 (sigmoid), reshape.
std::shared_ptr<ewe::Sequential<float>> autoencoder_layers(std::int64_t hidden = 8) {
    auto layers = std::make_shared<ewe::Sequential<float>>("autoencoder");
    layers->add<ewe::Flatten>();
    layers->add<ewe::Dense>(hidden, ewe::Activation::relu);
    layers->add<ewe::Dropout>(0.25);
    layers->add<ewe::Dense>(36, ewe::Activation::sigmoid);
    layers->add<ewe::Reshape>(ewe::Shape{6, 6, 1});
    return layers;
}

// That autoencoder as an ewe::Model, under its MSE objective.
struct Autoencoder {
    ewe::Model<float> model;
    ewe::ParameterStore<float>& params = model.params();
    std::unique_ptr<ewe::AutoencoderObjective<float>> objective;

    Autoencoder(ewe::Context& ctx, std::int64_t max_batch, std::uint64_t seed, std::int64_t hidden = 8)
        : model(ctx, autoencoder_layers(hidden), ewe::Shape{6, 6, 1}, max_batch, seed),
          objective(std::make_unique<ewe::AutoencoderObjective<float>>(ctx, model, 36.0)) {}
};

// 20 images of 6x6: a bar whose position depends on the index.
ewe::Tensor<float> bars(std::int64_t n = 20) {
    ewe::Tensor<float> x(ewe::Shape{n, 6, 6, 1});
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t p = 0; p < 36; ++p) x[i * 36 + p] = (p / 6 == i % 6 || p % 6 == (i / 6) % 6) ? 0.9f : 0.1f;
    return x;
}

std::vector<float> values_of(const ewe::ParameterStore<float>& p) {
    ewe::Tensor<float> host(p.values().shape());
    ewe::copy<float>(p.values(), host.view());
    return {host.data(), host.data() + host.numel()};
}

// The sheep VAE's shape at 6x6 with a few units: seconds to train.
ewe::SheepVaeOptions tiny_sheep_vae() {
    ewe::SheepVaeOptions model_options;
    model_options.filters = {2, 3};
    model_options.units = {6, 4, 3};
    model_options.image_size = 6;
    return model_options;
}

// Records every callback in order, and every epoch's logs.
struct Recorder final : ewe::Callback<float> {
    std::vector<std::string> events;
    std::vector<ewe::EpochLogs> epochs;
    std::int64_t stop_at_step = 0;  // > 0: stop_training() after this step of epoch 1
    void on_train_begin(ewe::Trainer<float>&) override { events.push_back("train_begin"); }
    void on_epoch_begin(ewe::Trainer<float>&, std::int64_t e) override { events.push_back("epoch_begin " + std::to_string(e)); }
    void on_batch_end(ewe::Trainer<float>& t, const ewe::BatchLogs& logs) override {
        events.push_back("batch_end " + std::to_string(logs.epoch) + "." + std::to_string(logs.step));
        if (stop_at_step > 0 && logs.epoch == 1 && logs.step == stop_at_step) t.stop_training();
    }
    void on_epoch_end(ewe::Trainer<float>&, const ewe::EpochLogs& logs) override {
        events.push_back("epoch_end " + std::to_string(logs.epoch));
        epochs.push_back(logs);
    }
    void on_train_end(ewe::Trainer<float>&) override { events.push_back("train_end"); }
};

}  // namespace

TEST_CASE("fit: callbacks in Keras' order, and the loss of a plain autoencoder falls") {
    ewe::Context ctx;
    Autoencoder ae(ctx, 8, 3);
    ewe::Adam<float> optimizer(ctx, ae.params, {.lr = 1e-2});
    ewe::FitOptions options;
    options.epochs = 2;
    options.shuffle_seed = 5;
    ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
    auto recorder = std::make_shared<Recorder>();
    trainer.add(recorder);
    const ewe::Tensor<float> x = bars();
    const ewe::FitResult r = trainer.fit(x.view());
    CHECK_FALSE(r.interrupted);
    CHECK_FALSE(r.stopped);
    CHECK(r.progress.epoch == 2);
    CHECK(r.progress.iterations == 6);  // 20 images, batch 8: 3 steps per epoch
    const std::vector<std::string> expected{"train_begin", "epoch_begin 1", "batch_end 1.1", "batch_end 1.2",
                                            "batch_end 1.3", "epoch_end 1",   "epoch_begin 2", "batch_end 2.1",
                                            "batch_end 2.2", "batch_end 2.3", "epoch_end 2",   "train_end"};
    CHECK(recorder->events == expected);
    REQUIRE(recorder->epochs.size() == 2);
    CHECK(trainer.metric_names() == std::vector<std::string>{"loss", "recon"});
    CHECK(recorder->epochs[0].iterations == 3);
    CHECK(recorder->epochs[0].mean["loss"] == recorder->epochs[0].mean["recon"]);

    // Twenty more epochs lower the reconstruction error well below the first epoch's.
    ewe::FitOptions longer = options;
    longer.epochs = 22;
    ewe::Trainer<float> more(ctx, *ae.objective, optimizer, longer);
    auto late = std::make_shared<Recorder>();
    more.add(late);
    more.fit(x.view(), r.progress);
    REQUIRE(late->epochs.size() == 20);
    CHECK(late->epochs.front().epoch == 3);
    CHECK(late->epochs.back().mean["loss"] < 0.5 * recorder->epochs[0].mean["loss"]);
}

TEST_CASE("fit: the epoch metrics and weights do not depend on how often the loss is read") {
    const ewe::Tensor<float> x = bars();
    auto train = [&](std::int64_t every) {
        ewe::Context ctx;
        Autoencoder ae(ctx, 8, 11);
        ewe::Rmsprop<float> optimizer(ctx, ae.params, {.lr = 1e-3});
        ewe::FitOptions options;
        options.epochs = 3;
        options.metrics_every = every;
        ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
        auto recorder = std::make_shared<Recorder>();
        trainer.add(recorder);
        trainer.fit(x.view());
        return std::make_pair(recorder, values_of(ae.params));
    };
    const auto [each, weights_each] = train(1);
    const auto [sparse, weights_sparse] = train(2);
    CHECK(weights_each == weights_sparse);
    REQUIRE(each->epochs.size() == sparse->epochs.size());
    for (std::size_t e = 0; e < each->epochs.size(); ++e)
        CHECK(each->epochs[e].mean["loss"] == sparse->epochs[e].mean["loss"]);
    // Read every 2 steps of 3: batch_end after step 2 and after the last step.
    CHECK(std::count(sparse->events.begin(), sparse->events.end(), "batch_end 1.2") == 1);
    CHECK(std::count(sparse->events.begin(), sparse->events.end(), "batch_end 1.1") == 0);
    CHECK(std::count(sparse->events.begin(), sparse->events.end(), "batch_end 1.3") == 1);
}

namespace {

const ewe::CheckpointMetadata kFormat{{"format", "ewe.test_autoencoder"}, {"format_version", "1"}};

ewe::Checkpoint read_test_checkpoint(const fs::path& path) {
    return ewe::Checkpoint::read(path, "ewe.test_autoencoder", "1");
}

// Trains `ae` with `optimizer` through `epochs` (batch 8, shuffle seed 9 unless `options`
// says otherwise), first resuming from `resume` when given, and saves every epoch to
// `checkpoint`. Returns the epoch logs.
std::vector<ewe::EpochLogs> train_autoencoder(ewe::Context& ctx, Autoencoder& ae, ewe::Optimizer<float>& optimizer,
                                              std::int64_t epochs, const fs::path& checkpoint,
                                              const fs::path* resume = nullptr, ewe::FitOptions options = {}) {
    options.epochs = epochs;
    if (options.shuffle_seed == 0) options.shuffle_seed = 9;
    ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
    ewe::ModelCheckpointOptions saving;
    saving.path = checkpoint;
    trainer.add(std::make_shared<ewe::ModelCheckpoint<float>>(saving, [](const ewe::TrainProgress&) { return kFormat; }));
    auto recorder = std::make_shared<Recorder>();
    trainer.add(recorder);
    if (resume) trainer.resume(read_test_checkpoint(*resume));
    trainer.fit(bars().view());
    return recorder->epochs;
}

}  // namespace

TEST_CASE("Trainer::resume: one call continues a checkpoint bit for bit, whatever seed the fresh model was built with") {
    const fs::path dir = temp_dir("resume");
    ewe::Context ctx;
    Autoencoder whole(ctx, 8, 21);
    ewe::Rmsprop<float> whole_optimizer(ctx, whole.params, {.lr = 1e-3});
    const std::vector<ewe::EpochLogs> whole_logs =
        train_autoencoder(ctx, whole, whole_optimizer, 3, dir / "whole.safetensors");

    Autoencoder first(ctx, 8, 21);
    ewe::Rmsprop<float> first_optimizer(ctx, first.params, {.lr = 1e-3});
    train_autoencoder(ctx, first, first_optimizer, 1, dir / "split.safetensors");
    const fs::path split = dir / "split.safetensors";
    const ewe::Checkpoint c = read_test_checkpoint(split);
    CHECK(c.meta("random.seed") == "21");
    CHECK(c.meta("fit.batch_size") == "8");
    CHECK(c.meta("fit.shuffle") == "true");
    CHECK(c.meta("fit.shuffle_seed") == "9");
    CHECK(c.meta("fit.samples") == "20");
    CHECK(c.meta("optimizer") == "RMSprop");
    CHECK(c.meta_double("optimizer.rho", 0, 1) == 0.9);
    CHECK(c.meta_double("optimizer.epsilon", 0, 1) == 1e-7);

    // A fresh model of another seed and an optimizer of another learning rate: the
    // checkpoint's seed and learning rate replace theirs.
    Autoencoder rest(ctx, 8, 99);
    ewe::Rmsprop<float> rest_optimizer(ctx, rest.params, {.lr = 0.5});
    const std::vector<ewe::EpochLogs> rest_logs =
        train_autoencoder(ctx, rest, rest_optimizer, 3, dir / "rest.safetensors", &split);
    CHECK(values_of(rest.params) == values_of(whole.params));
    CHECK(rest.model.random().seed == 21);
    CHECK(rest_optimizer.learning_rate() == 1e-3);
    REQUIRE(rest_logs.size() == 2);
    CHECK(rest_logs[0].epoch == 2);
    CHECK(rest_logs[0].mean["loss"] == whole_logs[1].mean["loss"]);
    CHECK(rest_logs[1].mean["loss"] == whole_logs[2].mean["loss"]);
    const ewe::Checkpoint last = read_test_checkpoint(dir / "rest.safetensors");
    CHECK(ewe::read_progress(last).epoch == 3);
    CHECK(ewe::read_progress(last).iterations == 9);

    // The seed matters: the parameters and optimizer state alone, loaded into the model
    // of seed 99, continue with other dropout masks.
    Autoencoder unseeded(ctx, 8, 99);
    ewe::Rmsprop<float> unseeded_optimizer(ctx, unseeded.params, {.lr = 1e-3});
    c.load_parameters(unseeded.params);
    c.load_optimizer(unseeded_optimizer, 3, 1e-3);
    ewe::FitOptions options;
    options.epochs = 3;
    options.shuffle_seed = 9;
    ewe::Trainer<float>(ctx, *unseeded.objective, unseeded_optimizer, options).fit(bars().view(), ewe::read_progress(c));
    CHECK(values_of(unseeded.params) != values_of(whole.params));
    fs::remove_all(dir);
}

TEST_CASE("Trainer::resume: a VAE under KL annealing continues bit for bit from a model of another seed") {
    const fs::path dir = temp_dir("resume_vae");
    const ewe::Tensor<float> x = bars(12);
    // Trains a tiny sheep VAE of `seed` (Adam, batch 4, KL annealing over epochs 2 to 3)
    // through `epochs`, resuming from `resume` when given; returns the parameters and the
    // last epoch's loss.
    auto run = [&](std::uint64_t seed, std::int64_t epochs, const fs::path& checkpoint, const fs::path* resume) {
        ewe::Context ctx;
        ewe::SheepVae<float> vae(ctx, tiny_sheep_vae(), 4, seed);
        ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{36.0 * 2}, 4);
        ewe::VaeObjective<float> objective(vae, loss);
        ewe::Adam<float> optimizer(ctx, vae.params(), {.lr = 1e-2});
        ewe::FitOptions options;
        options.epochs = epochs;
        options.shuffle_seed = 3;
        ewe::Trainer<float> trainer(ctx, objective, optimizer, options);
        trainer.add(std::make_shared<ewe::KlAnnealing<float>>(ewe::KlAnnealing<float>::linear(1, 2)));
        trainer.add(std::make_shared<ewe::ModelCheckpoint<float>>(ewe::ModelCheckpointOptions{checkpoint},
                                                                  [](const ewe::TrainProgress&) { return kFormat; }));
        auto recorder = std::make_shared<Recorder>();
        trainer.add(recorder);
        if (resume) CHECK(trainer.resume(read_test_checkpoint(*resume)).iterations == 3);
        trainer.fit(x.view());
        return std::make_pair(values_of(vae.params()), recorder->epochs.back().mean["loss"]);
    };
    const auto [whole, whole_loss] = run(5, 3, dir / "whole.safetensors", nullptr);
    run(5, 1, dir / "first.safetensors", nullptr);
    const fs::path first = dir / "first.safetensors";
    const auto [resumed, resumed_loss] = run(77, 3, dir / "rest.safetensors", &first);
    CHECK(resumed == whole);
    CHECK(resumed_loss == whole_loss);
    fs::remove_all(dir);
}

TEST_CASE("Trainer::resume refuses a checkpoint of another optimizer, setting, architecture or data, naming both") {
    const fs::path dir = temp_dir("resume_mismatch");
    const fs::path saved = dir / "saved.safetensors";
    ewe::Context ctx;
    Autoencoder original(ctx, 8, 1);
    ewe::Rmsprop<float> original_optimizer(ctx, original.params, {.lr = 1e-3});
    train_autoencoder(ctx, original, original_optimizer, 1, saved);
    const ewe::Checkpoint c = read_test_checkpoint(saved);

    // Returns the message of resume()'s (or, with `images`, fit()'s) CheckpointMismatch.
    const auto refusal = [&](Autoencoder& ae, ewe::Optimizer<float>& optimizer, ewe::FitOptions options,
                             const ewe::Tensor<float>* images = nullptr) -> std::string {
        if (options.batch_size == 0) options.batch_size = 8;
        if (options.shuffle_seed == 0) options.shuffle_seed = 9;
        ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
        try {
            trainer.resume(c);
            if (images) trainer.fit(images->view());
        } catch (const ewe::CheckpointMismatch& e) {
            return e.what();
        }
        return "(no CheckpointMismatch)";
    };
    const auto has = [](const std::string& message, const std::string& part) {
        INFO(message);
        CHECK(message.find(part) != std::string::npos);
    };
    {
        Autoencoder ae(ctx, 8, 1);
        const std::vector<float> before = values_of(ae.params);
        ewe::Adam<float> adam(ctx, ae.params, {.lr = 1e-3});
        has(refusal(ae, adam, {}), "saved.safetensors was trained with the optimizer RMSprop, this trainer has Adam");
        CHECK(values_of(ae.params) == before);  // refused before loading anything
        ewe::Rmsprop<float> other_rho(ctx, ae.params, {.lr = 1e-3, .rho = 0.95, .epsilon = 1e-7});
        has(refusal(ae, other_rho, {}), "was trained with RMSprop rho 0.9, this trainer has 0.95");
        ewe::Rmsprop<float> same(ctx, ae.params, {.lr = 1e-3});
        ewe::FitOptions small;
        small.batch_size = 4;
        has(refusal(ae, same, small), "was trained with batch_size 8, this trainer has 4");
        ewe::FitOptions reseeded;
        reseeded.shuffle_seed = 10;
        has(refusal(ae, same, reseeded), "was trained with shuffle_seed 9, this trainer has 10");
        ewe::FitOptions ordered;
        ordered.shuffle = false;
        has(refusal(ae, same, ordered), "was trained with shuffle true, this trainer has false");
        const ewe::Tensor<float> fewer = bars(12);
        has(refusal(ae, same, {}, &fewer), "saved.safetensors was trained on 20 samples, these images are 12");
    }
    {
        Autoencoder wider(ctx, 8, 1, 12);
        ewe::Rmsprop<float> optimizer(ctx, wider.params, {.lr = 1e-3});
        has(refusal(wider, optimizer, {}), "tensor 'dense/kernel' has shape (36, 8), the model's is (36, 12)");
    }
    {
        // Weights saved part way through epoch 2 (after step 4 of 3 per epoch): fit refuses.
        Autoencoder ae(ctx, 8, 1);
        ewe::Rmsprop<float> optimizer(ctx, ae.params, {.lr = 1e-3});
        ewe::FitOptions options;
        options.batch_size = 8;
        options.shuffle_seed = 9;
        ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
        ewe::CheckpointMetadata m = trainer.resume_metadata(ewe::TrainProgress{1, 4});
        m.merge(ewe::CheckpointMetadata(kFormat));
        ewe::save_checkpoint<float>(dir / "part.safetensors", ae.params, &optimizer, m);
        trainer.resume(read_test_checkpoint(dir / "part.safetensors"));
        CHECK_THROWS_WITH_AS(trainer.fit(bars().view()),
                             doctest::Contains("was saved after 4 steps, not at the end of epoch 1 (3 steps"),
                             ewe::CheckpointMismatch);
    }
    {
        // A checkpoint without the keys of an exact resume (saved by hand, or by an older
        // ewe) is refused naming the first missing key.
        Autoencoder ae(ctx, 8, 1);
        ewe::Rmsprop<float> optimizer(ctx, ae.params, {.lr = 1e-3});
        ewe::CheckpointMetadata m = ewe::training_metadata(optimizer, ewe::TrainProgress{1, 3});
        m.merge(ewe::CheckpointMetadata(kFormat));
        ewe::save_checkpoint<float>(dir / "old.safetensors", ae.params, &optimizer, m);
        ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer);
        CHECK(error_of([&] { trainer.resume(read_test_checkpoint(dir / "old.safetensors")); })
                  .find("old.safetensors: metadata has no 'random.seed'") != std::string::npos);
    }
    fs::remove_all(dir);
}

TEST_CASE("fit: a non-finite loss stops training, naming the epoch, the step and the first bad layer") {
    ewe::Context ctx;
    Autoencoder ae(ctx, 8, 4);
    // A NaN in the second dense layer's bias: its output is the first non-finite one.
    const ewe::ParameterInfo* bias = nullptr;
    for (const ewe::ParameterInfo& info : ae.params.info())
        if (info.name == "dense_1/bias") bias = &info;
    REQUIRE(bias != nullptr);
    ae.params.values()[bias->offset + 3] = std::numeric_limits<float>::quiet_NaN();
    ewe::Rmsprop<float> optimizer(ctx, ae.params, {.lr = 1e-3});
    ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, ewe::FitOptions{});
    const ewe::Tensor<float> x = bars();
    const std::string m = error_of([&] { trainer.fit(x.view()); });
    CAPTURE(m);
    CHECK(m.find("fit: the loss became NaN at epoch 1, step 1") != std::string::npos);
    CHECK(m.find("first non-finite: the output of layer 'dense_1'") != std::string::npos);
    // A caller reacts to the type and its fields, never to the text.
    try {
        trainer.fit(x.view());
        FAIL("no LossDiverged");
    } catch (const ewe::LossDiverged& e) {
        CHECK(e.epoch() == 1);
        CHECK(e.step() == 1);
        CHECK(std::string(e.what()) == "fit: " + e.reason());
    }
}

TEST_CASE("fit: a stop request ends after the current step as an interrupt; Ctrl-C requests it through InterruptGuard") {
    ewe::Context ctx;
    Autoencoder ae(ctx, 4, 4);
    ewe::Sgd<float> optimizer(ctx, ae.params, {.lr = 1e-2});
    ewe::FitOptions options;
    options.epochs = 3;
    options.handle_sigint = false;  // the test's own guard routes SIGINT below
    const ewe::StopToken stop = options.stop;
    ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
    // A real SIGINT during step 2 of epoch 1, under the library's one handler.
    struct RaiseAtStep final : ewe::Callback<float> {
        std::int64_t interrupts = 0;
        void on_batch_end(ewe::Trainer<float>&, const ewe::BatchLogs& logs) override {
            if (logs.epoch == 1 && logs.step == 1) std::raise(SIGINT);
        }
        void on_interrupt(ewe::Trainer<float>&, const ewe::TrainProgress&) override { ++interrupts; }
    };
    auto raiser = std::make_shared<RaiseAtStep>();
    trainer.add(raiser);
    const ewe::Tensor<float> x = bars();
    const auto before = std::signal(SIGINT, SIG_DFL);
    std::signal(SIGINT, before);
    ewe::FitResult r;
    {
        const ewe::InterruptGuard guard(stop);
        r = trainer.fit(x.view());
        CHECK(stop.stop_requested());
    }
    const auto after = std::signal(SIGINT, SIG_DFL);
    std::signal(SIGINT, after);
    CHECK((after == before));  // the guard gave the previous handler back
    CHECK(r.interrupted);
    CHECK_FALSE(r.stopped);
    CHECK(trainer.interrupted_step() == 1);
    CHECK(r.progress.iterations == 1);
    CHECK(raiser->interrupts == 1);
}

TEST_CASE("fit: stop_training from a callback ends after the current step, without an epoch end") {
    ewe::Context ctx;
    Autoencoder ae(ctx, 4, 4);
    ewe::Sgd<float> optimizer(ctx, ae.params, {.lr = 1e-2});
    ewe::FitOptions options;
    options.epochs = 3;
    ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
    auto recorder = std::make_shared<Recorder>();
    recorder->stop_at_step = 2;
    trainer.add(recorder);
    const ewe::Tensor<float> x = bars();
    const ewe::FitResult r = trainer.fit(x.view());
    CHECK(r.stopped);
    CHECK(r.progress.epoch == 0);
    CHECK(r.progress.iterations == 2);
    CHECK(recorder->epochs.empty());
    CHECK(recorder->events.back() == "train_end");
}

TEST_CASE("KlAnnealing: the post's schedule sets the VAE loss' KL weight each epoch and says when it changes") {
    const auto schedule = ewe::KlAnnealing<float>::linear(2, 2);
    CHECK(schedule(1) == 0.0);
    CHECK(schedule(2) == 0.0);
    CHECK(schedule(3) == 0.5);
    CHECK(schedule(4) == 1.0);
    CHECK(schedule(9) == 1.0);
    const auto step = ewe::KlAnnealing<float>::linear(1, 0);
    CHECK(step(1) == 0.0);
    CHECK(step(2) == 1.0);
    CHECK(error_of([] { (void)ewe::KlAnnealing<float>::linear(-1, 2); }).find("start and steep must be >= 0") !=
          std::string::npos);

    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, tiny_sheep_vae(), 4, 1);
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{36.0 * 2}, 4);
    ewe::VaeObjective<float> objective(vae, loss);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    ewe::FitOptions options;
    options.epochs = 4;
    ewe::Trainer<float> trainer(ctx, objective, optimizer, options);
    std::ostringstream log;
    trainer.add(std::make_shared<ewe::KlAnnealing<float>>(schedule, &log));
    auto recorder = std::make_shared<Recorder>();
    trainer.add(recorder);
    trainer.fit(bars(8).view());
    CHECK(log.str() == "KL weight: 0 (epoch 1)\nKL weight: 0.5 (epoch 3)\nKL weight: 1 (epoch 4)\n");
    REQUIRE(recorder->epochs.size() == 4);
    CHECK(trainer.metric_names() == std::vector<std::string>{"loss", "recon", "kl", "kl_weight"});
    CHECK(recorder->epochs[2].mean["kl_weight"] == 0.5);
    const ewe::Metrics& m = recorder->epochs[2].mean;
    CHECK(m["loss"] == doctest::Approx(m["recon"] + 0.5 * m["kl"]).epsilon(1e-12));
    CHECK(loss.kl_weight() == 1.0);

    Autoencoder ae(ctx, 4, 1);
    CHECK(error_of([&] { ae.objective->set_term_weight("kl", 1.0); }).find("has no weight to set") != std::string::npos);
}

TEST_CASE("ModelCheckpoint keeps the best epoch; CsvLogger writes one row per epoch") {
    const fs::path dir = temp_dir("best");
    ewe::Context ctx;
    Autoencoder ae(ctx, 8, 2);
    ewe::Adam<float> optimizer(ctx, ae.params, {.lr = 3e-2});
    ewe::FitOptions options;
    options.epochs = 6;
    ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
    ewe::ModelCheckpointOptions saving;
    saving.path = dir / "last.safetensors";
    saving.every = 4;
    saving.best_path = dir / "best.safetensors";
    trainer.add(std::make_shared<ewe::ModelCheckpoint<float>>(saving, [](const ewe::TrainProgress&) {
        return ewe::CheckpointMetadata{{"format", "ewe.test_autoencoder"}, {"format_version", "1"}};
    }));
    trainer.add(std::make_shared<ewe::CsvLogger<float>>(dir / "metrics.csv"));
    auto recorder = std::make_shared<Recorder>();
    trainer.add(recorder);
    trainer.fit(bars().view());

    const auto rows = ewe::io::read_csv(dir / "metrics.csv");
    REQUIRE(rows.size() == 7);
    CHECK(rows[0] == std::vector<std::string>{"epoch", "step", "loss", "recon", "seconds"});
    CHECK(rows[6][0] == "6");
    CHECK(rows[6][1] == "18");
    std::size_t best = 0;
    for (std::size_t e = 1; e < recorder->epochs.size(); ++e)
        if (recorder->epochs[e].mean["loss"] < recorder->epochs[best].mean["loss"]) best = e;
    const ewe::Checkpoint b = ewe::Checkpoint::read(dir / "best.safetensors", "ewe.test_autoencoder", "1");
    CHECK(ewe::read_progress(b).epoch == recorder->epochs[best].epoch);
    CHECK(b.meta_double("best.loss", 0, 1e9) == recorder->epochs[best].mean["loss"]);
    // every = 4: the last-epoch file holds epoch 4, not 6.
    CHECK(ewe::read_progress(ewe::Checkpoint::read(dir / "last.safetensors", "ewe.test_autoencoder", "1")).epoch == 4);
    fs::remove_all(dir);
}

TEST_CASE("Trainer: bad arguments are refused, naming what was expected") {
    ewe::Context ctx;
    Autoencoder ae(ctx, 4, 1);
    ewe::Rmsprop<float> optimizer(ctx, ae.params, {.lr = 1e-3});
    ewe::FitOptions big;
    big.batch_size = 5;
    CHECK(error_of([&] { ewe::Trainer<float>(ctx, *ae.objective, optimizer, big); })
              .find("batch_size 5 must be in [1, 4] (the model's max_batch)") != std::string::npos);
    Autoencoder other(ctx, 4, 1);
    ewe::Rmsprop<float> elsewhere(ctx, other.params, {.lr = 1e-3});
    CHECK(error_of([&] { ewe::Trainer<float>(ctx, *ae.objective, elsewhere); })
              .find("another parameter store") != std::string::npos);
    ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer);
    const ewe::Tensor<float> wrong(ewe::Shape{3, 5, 5, 1});
    CHECK(error_of([&] { trainer.fit(wrong.view()); }).find("Trainer::fit: images should be (n, 6, 6, 1)") !=
          std::string::npos);
    CHECK(error_of([&] { trainer.add(nullptr); }).find("null callback") != std::string::npos);
}

TEST_CASE("posterior_statistics: active units by the variance of the posterior means, KL per dimension") {
    ewe::VaeEncoding<float> enc;
    enc.latent = 2;
    // Three images: dimension 0's means spread (variance 2/3), dimension 1's all 0.5.
    enc.mean = {0.0f, 0.5f, 1.0f, 0.5f, 2.0f, 0.5f};
    enc.log_var = {0.0f, -1.0f, 0.0f, -1.0f, 0.0f, -1.0f};
    const ewe::PosteriorStatistics s = ewe::posterior_statistics(enc);
    CHECK(s.active_units == 1);
    CHECK(s.variance_of_means[0] == doctest::Approx(2.0 / 3.0));
    CHECK(s.variance_of_means[1] == doctest::Approx(0.0));
    CHECK(s.kl_per_dimension[0] == doctest::Approx((0.0 + 0.5 + 2.0) / 3.0));  // 0.5 * mean(mu^2) with log_var 0
    CHECK(s.kl_per_dimension[1] == doctest::Approx(-0.5 * (1 - 1 - 0.25 - std::exp(-1.0))));
    CHECK(ewe::posterior_statistics(enc, 1.0).active_units == 0);
}

TEST_CASE("PosteriorMonitor: active units and per-dimension KL in every epoch's metrics; one warning on collapse") {
    const fs::path dir = temp_dir("monitor");
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, tiny_sheep_vae(), 4, 1);
    // z_mean's weights at 0 and a learning rate too small to move them: every posterior
    // mean stays 0, so no unit is active.
    for (const ewe::ParameterInfo& info : vae.params().info())
        if (info.name.rfind("z_mean/", 0) == 0)
            for (std::int64_t i = 0; i < info.shape.numel(); ++i) vae.params().values()[info.offset + i] = 0.0f;
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{72.0}, 4);
    ewe::VaeObjective<float> objective(vae, loss);
    ewe::Sgd<float> optimizer(ctx, vae.params(), {.lr = 1e-30});
    ewe::FitOptions options;
    options.epochs = 3;
    ewe::Trainer<float> trainer(ctx, objective, optimizer, options);
    std::ostringstream log;
    trainer.add(std::make_shared<ewe::KlAnnealing<float>>(ewe::KlAnnealing<float>::linear(1, 0)));  // 0, then 1
    const ewe::Tensor<float> x = bars(8);
    auto monitor = std::make_shared<ewe::PosteriorMonitor<float>>(vae, x.view(), &log);
    trainer.add(monitor);
    trainer.add(std::make_shared<ewe::CsvLogger<float>>(dir / "metrics.csv"));
    auto recorder = std::make_shared<Recorder>();
    trainer.add(recorder);
    trainer.fit(x.view());
    CHECK(trainer.metric_names() ==
          std::vector<std::string>{"loss", "recon", "kl", "kl_weight", "active_units", "kl_dim_0", "kl_dim_1"});
    REQUIRE(recorder->epochs.size() == 3);
    CHECK(recorder->epochs[0].mean["active_units"] == 0.0);
    CHECK(monitor->last().active_units == 0);
    // Warned once, at the first epoch with a KL weight above 0.
    CHECK(log.str().find("warning: posterior collapse at epoch 2 (KL weight 1)") == 0);
    CHECK(log.str().find("posterior collapse", 10) == std::string::npos);
    const auto rows = ewe::io::read_csv(dir / "metrics.csv");
    REQUIRE(rows.size() == 4);
    CHECK(rows[0] == std::vector<std::string>{"epoch", "step", "loss", "recon", "kl", "kl_weight", "active_units",
                                              "kl_dim_0", "kl_dim_1", "seconds"});
    fs::remove_all(dir);
}
