// ewe::Trainer and its callbacks on small models: Keras' callback order, training that
// lowers the loss, metrics independent of how often they are read, bit-exact resume
// from a ModelCheckpoint file, the non-finite guard's message, stop_training, KL
// annealing, best-epoch checkpoints, CSV logs, the posterior-collapse monitor and the
// errors of bad arguments.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/ewe.hpp>

namespace fs = std::filesystem;

namespace {

std::string error_of(const auto& f) {
    try {
        f();
    } catch (const ewe::Error& e) {
        return e.what();
    }
    return "(no error)";
}

fs::path temp_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_trainer_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// A plain autoencoder of 6x6 images: flatten, dense 8 (relu), dropout, dense 36
// (sigmoid), reshape, with its own parameters.
struct Autoencoder {
    ewe::ParameterStore<float> params;
    ewe::RandomState random;
    ewe::Sequential<float> model{"autoencoder"};
    std::unique_ptr<ewe::AutoencoderObjective<float>> objective;

    Autoencoder(ewe::Context& ctx, std::int64_t max_batch, std::uint64_t seed) {
        random.seed = seed;
        model.add<ewe::Flatten>();
        model.add<ewe::Dense>(8, ewe::Activation::relu);
        model.add<ewe::Dropout>(0.25);
        model.add<ewe::Dense>(36, ewe::Activation::sigmoid);
        model.add<ewe::Reshape>(ewe::Shape{6, 6, 1});
        ewe::BuildContext<float> b{ctx, params, random, max_batch};
        model.build(ewe::Shape{6, 6, 1}, b);
        params.allocate(ctx.device(), seed);
        objective = std::make_unique<ewe::AutoencoderObjective<float>>(ctx, model, params, random, 36.0);
    }
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
ewe::SheepVaeConfig tiny_sheep_vae() {
    ewe::SheepVaeConfig config;
    config.filters = {2, 3};
    config.units = {6, 4, 3};
    config.image_size = 6;
    return config;
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
    ewe::Adam<float> optimizer(ctx, ae.params, 1e-2);
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
        ewe::Rmsprop<float> optimizer(ctx, ae.params, 1e-3);
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

TEST_CASE("fit: resumed from a ModelCheckpoint file, training continues bit for bit") {
    const fs::path dir = temp_dir("resume");
    const ewe::Tensor<float> x = bars();
    const ewe::SheepVaeConfig unused;  // (metadata needs a format; any model's works)
    auto metadata = [](const ewe::TrainProgress&) {
        return ewe::CheckpointMetadata{{"format", "ewe.test_autoencoder"}, {"format_version", "1"}};
    };
    auto run = [&](std::int64_t epochs, const fs::path& checkpoint, const fs::path* resume) {
        ewe::Context ctx;
        Autoencoder ae(ctx, 8, 21);
        ewe::Rmsprop<float> optimizer(ctx, ae.params, 1e-3);
        ewe::TrainProgress start;
        if (resume) {
            const ewe::Checkpoint c = ewe::Checkpoint::read(*resume, "ewe.test_autoencoder", "1");
            start = ewe::read_progress(c);
            c.load_parameters(ae.params);
            c.load_optimizer(optimizer, start.iterations, c.meta_double("optimizer.lr", 0, 1));
        }
        ewe::FitOptions options;
        options.epochs = epochs;
        options.shuffle_seed = 9;
        ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, options);
        ewe::ModelCheckpointOptions saving;
        saving.path = checkpoint;
        trainer.add(std::make_shared<ewe::ModelCheckpoint<float>>(saving, metadata));
        auto recorder = std::make_shared<Recorder>();
        trainer.add(recorder);
        trainer.fit(x.view(), start);
        return std::make_pair(recorder->epochs, values_of(ae.params));
    };
    const auto [whole_logs, whole] = run(3, dir / "whole.safetensors", nullptr);
    run(1, dir / "split.safetensors", nullptr);
    const fs::path first = dir / "split.safetensors";
    const auto [rest_logs, resumed] = run(3, dir / "rest.safetensors", &first);
    CHECK(resumed == whole);
    REQUIRE(rest_logs.size() == 2);
    CHECK(rest_logs[0].epoch == 2);
    CHECK(rest_logs[1].mean["loss"] == whole_logs[2].mean["loss"]);
    const ewe::Checkpoint last = ewe::Checkpoint::read(dir / "rest.safetensors", "ewe.test_autoencoder", "1");
    CHECK(ewe::read_progress(last).epoch == 3);
    CHECK(ewe::read_progress(last).iterations == 9);
    CHECK(last.meta("optimizer") == "RMSprop");
    (void)unused;
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
    ewe::Rmsprop<float> optimizer(ctx, ae.params, 1e-3);
    ewe::Trainer<float> trainer(ctx, *ae.objective, optimizer, ewe::FitOptions{});
    const ewe::Tensor<float> x = bars();
    const std::string m = error_of([&] { trainer.fit(x.view()); });
    CAPTURE(m);
    CHECK(m.find("fit: the loss became NaN at epoch 1, step 1") != std::string::npos);
    CHECK(m.find("first non-finite: the output of layer 'dense_1'") != std::string::npos);
}

TEST_CASE("fit: stop_training from a callback ends after the current step, without an epoch end") {
    ewe::Context ctx;
    Autoencoder ae(ctx, 4, 4);
    ewe::Sgd<float> optimizer(ctx, ae.params, 1e-2);
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
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossConfig{36.0 * 2}, 4);
    ewe::VaeObjective<float> objective(vae, loss);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), 1e-3);
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
    ewe::Adam<float> optimizer(ctx, ae.params, 3e-2);
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
    ewe::Rmsprop<float> optimizer(ctx, ae.params, 1e-3);
    ewe::FitOptions big;
    big.batch_size = 5;
    CHECK(error_of([&] { ewe::Trainer<float>(ctx, *ae.objective, optimizer, big); })
              .find("batch_size 5 must be in [1, 4] (the model's max_batch)") != std::string::npos);
    Autoencoder other(ctx, 4, 1);
    ewe::Rmsprop<float> elsewhere(ctx, other.params, 1e-3);
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
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossConfig{72.0}, 4);
    ewe::VaeObjective<float> objective(vae, loss);
    ewe::Sgd<float> optimizer(ctx, vae.params(), 1e-30);
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
