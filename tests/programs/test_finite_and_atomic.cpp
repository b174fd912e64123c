// Non-finite weights and failed writes (issue 25, classes 3 and 4). save_checkpoint
// refuses NaN or Inf weights and optimizer state, keeping the file already there;
// Checkpoint::load_parameters and load_optimizer refuse a file holding one, naming the
// file and the tensor, and so do sheep_vae's generate, anomalies, explore and train
// --resume; a divergence names the epoch the checkpoint really keeps. Every writer
// (write_png, write_image_sheet, SvgPlot::write, write_csv, CsvLogger through train,
// EventWriter, and the outputs of generate, anomalies and explore) is run against a
// "full disk": RLIMIT_FSIZE makes writes past a size fail with EFBIG, as ENOSPC would;
// the previous file must stay byte for byte, with no temporary left beside it.
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ewe/ewe.hpp>
#include <ewe/train/model_checkpoint.hpp>
#include <sheep_vae/sheep_vae.hpp>

#include "ewe/io/checkpoint.hpp"
#include "ewe/io/csv.hpp"
#include "ewe/io/image_sheet.hpp"
#include "ewe/io/png.hpp"
#include "ewe/io/safetensors.hpp"
#include "ewe/io/svg.hpp"
#include "ewe/io/tensorboard.hpp"
#include "error_of.hpp"
#include "sheep_vae_run.hpp"

namespace fs = std::filesystem;
using sheep_test::contains;
using sheep_test::expect_error;
using sheep_test::small_data;
using sheep_test::run;
using sheep_test::RunResult;
using sheep_test::slurp;

namespace {

fs::path temp_dir(const std::string& name) { return sheep_test::temp_dir("finite", name); }

// While it lives, writes that would make a file larger than `bytes` fail with EFBIG
// (SIGXFSZ ignored), as a full disk fails them with ENOSPC.
class FileSizeLimit {
public:
    explicit FileSizeLimit(rlim_t bytes) {
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &before_) == 0);
        handler_ = std::signal(SIGXFSZ, SIG_IGN);
        rlimit limited = before_;
        limited.rlim_cur = bytes;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
    }
    FileSizeLimit(const FileSizeLimit&) = delete;
    FileSizeLimit& operator=(const FileSizeLimit&) = delete;
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &before_);
        std::signal(SIGXFSZ, handler_);
    }

private:
    rlimit before_{};
    void (*handler_)(int) = nullptr;
};

using ewe_test::error_of;

// Names in `dir` that look like temporaries of the atomic writer.
std::vector<std::string> temporaries(const fs::path& dir) {
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(e.path().filename());
    return found;
}

// Fills `path` with content no writer produces, so that any change shows.
std::string plant_previous(const fs::path& path) {
    std::string old = "previous file: ";
    for (int i = 0; old.size() < 4096; ++i) old += std::to_string(i) + ' ';
    std::ofstream(path, std::ios::binary) << old;
    REQUIRE(slurp(path) == old);
    return old;
}

// Copies the checkpoint `from` to `to` with values 3 and 5 of tensor `tensor` (F32) set
// to NaN and +inf, and the metadata `changes` applied.
void rewrite_checkpoint(const fs::path& from, const fs::path& to, const std::string& tensor,
                        const std::map<std::string, std::string>& changes = {}) {
    const ewe::io::SafetensorsFile f = ewe::io::read_safetensors(from);
    std::vector<std::vector<std::byte>> bytes;
    std::vector<ewe::io::SafetensorsEntry> entries;
    bytes.reserve(f.tensors.size());
    bool found = tensor.empty();
    for (const auto& [name, t] : f.tensors) {
        bytes.emplace_back(f.data.begin() + std::ptrdiff_t(t.begin), f.data.begin() + std::ptrdiff_t(t.end));
        if (name == tensor) {
            REQUIRE(t.dtype == "F32");
            REQUIRE(bytes.back().size() >= 6 * sizeof(float));
            float* v = reinterpret_cast<float*>(bytes.back().data());
            v[3] = std::numeric_limits<float>::quiet_NaN();
            v[5] = std::numeric_limits<float>::infinity();
            found = true;
        }
        entries.push_back({name, t.dtype, t.shape, bytes.back().data(), bytes.back().size()});
    }
    REQUIRE_MESSAGE(found, "no tensor ", tensor, " in ", from);
    std::map<std::string, std::string> metadata = f.metadata;
    for (const auto& [key, value] : changes) metadata[key] = value;
    ewe::io::write_safetensors(to, entries, metadata);
}

ewe::SheepVaeOptions tiny_model_options() {
    ewe::SheepVaeOptions c;
    c.image_size = 8;
    c.filters = {2, 3};
    c.units = {6, 5, 4};
    return c;
}

// The first parameter of `params` with at least 8 values.
const ewe::ParameterInfo& big_parameter(const ewe::ParameterStore<float>& params) {
    for (const ewe::ParameterInfo& info : params.info())
        if (info.shape.numel() >= 8) return info;
    FAIL("no parameter with 8 values");
    return params.info().front();
}

const ewe::CheckpointMetadata kTinyFormat = {{"format", "ewe.test_tiny"}, {"format_version", "1"}};

// A run folder trained for one epoch on 24 drawings, batch 8, a quarter of the default
// widths (shared by the tests below).
struct SharedRun {
    fs::path dir, data, run;
    fs::path checkpoint() const { return run / "checkpoint.safetensors"; }
};
const SharedRun& shared_run() {
    static SharedRun r;
    if (!r.dir.empty()) return r;
    r.dir = temp_dir("shared");
    r.data = small_data(r.dir, 24);
    r.run = r.dir / "run";
    const RunResult t = run({"train", "--data", r.data.string(), "--epochs", "1", "--batch", "8", "--width", "0.25",
                             "--out", r.run.string(), "--quiet", "--snapshots", "", "--monitor", "0"});
    REQUIRE_MESSAGE(t.rc == 0, t.err);
    return r;
}

// A parameter tensor of `checkpoint` (not optimizer state) with at least 6 values.
std::string some_parameter(const fs::path& checkpoint) {
    const ewe::io::SafetensorsFile f = ewe::io::read_safetensors(checkpoint);
    std::string last;
    for (const auto& [name, t] : f.tensors)
        if (name.rfind("optimizer/", 0) != 0 && (t.end - t.begin) >= 6 * sizeof(float)) last = name;
    REQUIRE(!last.empty());
    return last;
}

}  // namespace

TEST_CASE("save_checkpoint refuses a NaN or Inf parameter or optimizer state and keeps the file there") {
    const fs::path dir = temp_dir("save");
    const fs::path path = dir / "tiny.safetensors";
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, tiny_model_options(), 2, 1);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    ewe::save_checkpoint<float>(path, vae.params(), &optimizer, kTinyFormat);
    const std::string good = slurp(path);

    const ewe::ParameterInfo& info = big_parameter(vae.params());
    float* p = vae.params().values().data() + info.offset;
    SUBCASE("a NaN parameter") {
        p[2] = std::numeric_limits<float>::quiet_NaN();
        const std::string m = error_of([&] { ewe::save_checkpoint<float>(path, vae.params(), &optimizer, kTinyFormat); });
        CHECK(contains(m, "save_checkpoint: " + path.string() + ": tensor '" + info.name +
                              "' holds 1 non-finite value (first: NaN at index 2)"));
        CHECK_THROWS_AS(ewe::save_checkpoint<float>(path, vae.params(), &optimizer, kTinyFormat),
                        ewe::NonFiniteCheckpoint);
    }
    SUBCASE("infinite optimizer state") {
        auto state = optimizer.state();
        REQUIRE(!state.empty());
        state[0].second.data()[4] = -std::numeric_limits<float>::infinity();
        state[0].second.data()[7] = std::numeric_limits<float>::infinity();
        const std::string m = error_of([&] { ewe::save_checkpoint<float>(path, vae.params(), &optimizer, kTinyFormat); });
        CHECK(contains(m, path.string()));
        CHECK(contains(m, "tensor 'optimizer/" + state[0].first + "' holds 2 non-finite values (first: -inf at index 4)"));
    }
    CHECK(slurp(path) == good);
    CHECK(temporaries(dir).empty());
    fs::remove_all(dir);
}

TEST_CASE("load_parameters and load_optimizer refuse a non-finite tensor, naming the file and the tensor") {
    const fs::path dir = temp_dir("load");
    const fs::path good = dir / "good.safetensors", bad = dir / "bad.safetensors";
    ewe::Context ctx;
    ewe::SheepVae<float> saved(ctx, tiny_model_options(), 2, 1);
    ewe::Rmsprop<float> saved_optimizer(ctx, saved.params(), {.lr = 1e-3});
    ewe::save_checkpoint<float>(good, saved.params(), &saved_optimizer, kTinyFormat);

    ewe::SheepVae<float> loaded(ctx, tiny_model_options(), 2, 7);  // other weights than `saved`
    ewe::Rmsprop<float> optimizer(ctx, loaded.params(), {.lr = 1e-3});
    const std::vector<float> before(loaded.params().values().data(),
                                    loaded.params().values().data() + loaded.params().values().numel());
    SUBCASE("a parameter") {
        const std::string name = big_parameter(loaded.params()).name;
        rewrite_checkpoint(good, bad, name);
        const ewe::Checkpoint c = ewe::Checkpoint::read(bad, "ewe.test_tiny", "1", "--weights");
        const std::string m = error_of([&] { c.load_parameters(loaded.params()); });
        CHECK(m == "--weights " + bad.string() + ": tensor '" + name +
                       "' holds 2 non-finite values (first: NaN at index 3); the file cannot be used");
        CHECK_THROWS_AS(c.load_parameters(loaded.params()), ewe::NonFiniteCheckpoint);
        // Nothing was copied into the model.
        CHECK(std::equal(before.begin(), before.end(), loaded.params().values().data()));
    }
    SUBCASE("optimizer state") {
        const std::string name = "optimizer/" + optimizer.state()[0].first;
        rewrite_checkpoint(good, bad, name);
        const ewe::Checkpoint c = ewe::Checkpoint::read(bad, "ewe.test_tiny", "1");
        CHECK_NOTHROW(c.load_parameters(loaded.params()));
        const std::string m = error_of([&] { c.load_optimizer(optimizer, 1, 1e-3); });
        CHECK(m == "checkpoint " + bad.string() + ": tensor '" + name +
                       "' holds 2 non-finite values (first: NaN at index 3); the file cannot be used");
    }
    fs::remove_all(dir);
}

// Sets one weight to NaN at the end of epoch `epoch` (runs before the callbacks added after it).
class PoisonWeights final : public ewe::Callback<float> {
public:
    explicit PoisonWeights(std::int64_t epoch) : epoch_(epoch) {}
    void on_epoch_end(ewe::Trainer<float>& trainer, const ewe::EpochLogs& logs) override {
        if (logs.epoch == epoch_) trainer.objective().params().values().data()[5] = std::nanf("");
    }

private:
    std::int64_t epoch_;
};

TEST_CASE("ModelCheckpoint never saves non-finite weights over the last good checkpoint") {
    const fs::path dir = temp_dir("model_checkpoint");
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, tiny_model_options(), 4, 1);
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, 4);
    ewe::VaeObjective<float> objective(vae, loss);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    ewe::FitOptions options;
    options.epochs = 4;
    options.batch_size = 4;
    options.handle_sigint = false;
    ewe::Trainer<float> trainer(ctx, objective, optimizer, options);
    trainer.add(std::make_shared<PoisonWeights>(2));
    ewe::ModelCheckpointOptions saving;
    saving.path = dir / "checkpoint.safetensors";
    trainer.add(std::make_shared<ewe::ModelCheckpoint<float>>(
        saving, [](const ewe::TrainProgress&) { return kTinyFormat; }));
    ewe::Tensor<float> images(ewe::Shape{8, 8, 8, 1});
    for (std::int64_t i = 0; i < images.numel(); ++i) images.data()[i] = float((i * 13) % 17) / 16.0f;

    const std::string m = error_of([&] { trainer.fit(images.view()); });
    CHECK(contains(m, "save_checkpoint: " + saving.path.string() + ": tensor '"));
    CHECK(contains(m, "holds 1 non-finite value (first: NaN at index"));
    CHECK(contains(m, "not saved (a file already there is kept)"));
    // The file still holds epoch 1, and it loads.
    const ewe::Checkpoint kept = ewe::Checkpoint::read(saving.path, "ewe.test_tiny", "1");
    CHECK(ewe::read_progress(kept).epoch == 1);
    ewe::SheepVae<float> fresh(ctx, tiny_model_options(), 4, 2);
    CHECK_NOTHROW(kept.load_parameters(fresh.params()));
    CHECK(temporaries(dir).empty());
    fs::remove_all(dir);
}

TEST_CASE("generate, anomalies, explore and train --resume refuse a checkpoint holding a NaN, naming file and tensor") {
    const SharedRun& shared = shared_run();
    const fs::path dir = temp_dir("commands");
    const std::string tensor = some_parameter(shared.checkpoint());
    const fs::path bad = dir / "nan.safetensors";
    rewrite_checkpoint(shared.checkpoint(), bad, tensor);
    const std::string named = bad.string() + ": tensor '" + tensor + "' holds 2 non-finite values (first: NaN at index 3)";

    expect_error({"generate", "--checkpoint", bad.string(), "--out", (dir / "g.png").string()}, named);
    CHECK(!fs::exists(dir / "g.png"));
    expect_error({"anomalies", "--checkpoint", bad.string(), "--data", shared.data.string(), "--out",
                  (dir / "a").string()},
                 named);
    CHECK(!fs::exists(dir / "a" / "scores.csv"));
    expect_error({"explore", "--checkpoint", bad.string(), "--data", shared.data.string(), "--out",
                  (dir / "e").string()},
                 named);
    CHECK(!fs::exists(dir / "e" / "latent_scatter.svg"));

    // --resume: the run folder's checkpoint holds the NaN; it is refused and left as it is.
    const fs::path resumed = dir / "resumed";
    fs::create_directories(resumed);
    rewrite_checkpoint(shared.checkpoint(), resumed / "checkpoint.safetensors", tensor);
    const std::string before = slurp(resumed / "checkpoint.safetensors");
    expect_error({"train", "--data", shared.data.string(), "--epochs", "2", "--out", resumed.string(), "--resume",
                  "--quiet", "--snapshots", "", "--monitor", "0"},
                 "--resume " + (resumed / "checkpoint.safetensors").string() + ": tensor '" + tensor + "' holds 2");
    CHECK(slurp(resumed / "checkpoint.safetensors") == before);
    fs::remove_all(dir);
}

TEST_CASE("a run that diverges after a good epoch names the epoch its checkpoint keeps") {
    const SharedRun& shared = shared_run();
    const fs::path dir = temp_dir("diverge");
    // Epoch 1 trained well; resuming takes the learning rate from the file, here 1e6.
    rewrite_checkpoint(shared.checkpoint(), dir / "checkpoint.safetensors", "", {{"optimizer.lr", "1000000"}});
    const RunResult r = run({"train", "--data", shared.data.string(), "--epochs", "8", "--out", dir.string(),
                             "--resume", "--quiet", "--snapshots", "", "--monitor", "0"});
    INFO("stderr: ", r.err);
    REQUIRE(r.rc != 0);
    CHECK((contains(r.err, "the loss became") || contains(r.err, "the weights became non-finite")));
    // What the message says is what the file holds, and the file loads.
    const ewe::VaeRunCheckpoint kept = sheep::read_checkpoint(dir / "checkpoint.safetensors");
    CHECK(kept.progress.epoch >= 1);
    CHECK(contains(r.err, (dir / "checkpoint.safetensors").string() + " keeps epoch " +
                              std::to_string(kept.progress.epoch) + ", the last good one"));
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, kept.model_options, 1, kept.settings.seed);
    CHECK_NOTHROW(kept.file.load_parameters(vae.params()));
    fs::remove_all(dir);
}

TEST_CASE("library writers on a full disk fail naming the file and leave the previous file byte for byte") {
    const fs::path dir = temp_dir("writers");
    std::vector<float> image(28 * 28);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = float((i * 37) % 101) / 100.0f;
    std::vector<std::uint8_t> pixels(64 * 64);  // noise: the PNG stays larger than the limit
    std::uint32_t state = 1;
    for (std::uint8_t& p : pixels) p = std::uint8_t((state = state * 1664525u + 1013904223u) >> 24);
    std::vector<double> x(200), y(200);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = double(i), y[i] = std::sin(0.1 * double(i));
    std::vector<std::vector<std::string>> rows(1, {"a", "b"});
    for (int i = 0; i < 200; ++i) rows.push_back({std::to_string(i), ewe::io::csv_number(1.0 / (i + 1))});

    struct Writer {
        const char* name;
        fs::path path;
        std::function<void()> write;
    };
    const std::vector<Writer> writers = {
        {"write_png", dir / "p.png", [&] { ewe::io::write_png(dir / "p.png", 64, 64, 1, pixels.data()); }},
        {"write_png", dir / "sheet.png",
         [&] { ewe::io::write_image_sheet(dir / "sheet.png", std::vector<const float*>(16, image.data()), 28, 28, 4); }},
        {"SvgPlot::write", dir / "plot.svg",
         [&] { ewe::io::SvgPlot("t", "x", "y").line(x, y, ewe::io::palette(0), "sin").write(dir / "plot.svg"); }},
        {"write_csv", dir / "t.csv", [&] { ewe::io::write_csv(dir / "t.csv", rows); }},
    };
    for (const Writer& w : writers) {
        CAPTURE(w.path);
        const std::string old = plant_previous(w.path);
        {
            const FileSizeLimit full(1024);
            const std::string m = error_of(w.write);
            CHECK(contains(m, std::string(w.name) + ": could not write " + w.path.string()));
        }
        CHECK(slurp(w.path) == old);
        CHECK(temporaries(dir).empty());
        w.write();  // with room again, the new file replaces the old
        CHECK(slurp(w.path) != old);
        CHECK(fs::file_size(w.path) > 1024);
    }
    CHECK(ewe::io::read_csv(dir / "t.csv") == rows);
    fs::remove_all(dir);
}

TEST_CASE("EventWriter on a full disk cuts off the partial record: the file keeps its whole records") {
    const fs::path dir = temp_dir("events");
    ewe::io::EventWriter w(dir, 1700000000.0);
    w.add_scalar("epoch/loss", 1.5, 1, 1700000001.0);
    w.add_scalar("epoch/loss", 1.25, 2, 1700000002.0);
    const std::string before = slurp(w.path());
    {
        const FileSizeLimit full(before.size() + 20);
        const std::string m = error_of([&] { w.add_scalar("epoch/" + std::string(100, 'x'), 1.0, 3, 1700000003.0); });
        CHECK(contains(m, "EventWriter: could not write " + w.path().string()));
        CHECK(contains(m, "the file keeps its 3 whole records"));
    }
    CHECK(slurp(w.path()) == before);
    // Writing goes on after the failure, appending whole records after the kept ones.
    w.add_scalar("epoch/loss", 1.125, 3, 1700000003.0);
    const std::string after = slurp(w.path());
    REQUIRE(after.size() > before.size());
    CHECK(after.compare(0, before.size(), before) == 0);
    // The appended record is whole: its length field says how long it is.
    std::uint64_t length = 0;
    std::memcpy(&length, after.data() + before.size(), 8);
    CHECK(after.size() == before.size() + 8 + 4 + length + 4);
    fs::remove_all(dir);
}

TEST_CASE("generate, anomalies and explore on a full disk fail naming the file and keep the previous outputs") {
    const SharedRun& shared = shared_run();
    const fs::path dir = temp_dir("outputs");
    const std::string ck = shared.checkpoint().string();
    struct Command {
        std::vector<std::string> args;
        fs::path output;
    };
    const std::vector<Command> commands = {
        {{"generate", "--checkpoint", ck, "--count", "36", "--out", (dir / "g.png").string()}, dir / "g.png"},
        {{"anomalies", "--checkpoint", ck, "--data", shared.data.string(), "--out", (dir / "a").string()},
         dir / "a" / "scores.csv"},
        {{"explore", "--checkpoint", ck, "--data", shared.data.string(), "--k-max", "3", "--mosaic-k", "2",
          "--knn-k", "2", "--trials", "3", "--out", (dir / "e").string()},
         dir / "e" / "latent_scatter.svg"},
    };
    for (const Command& c : commands) {
        CAPTURE(c.output);
        fs::create_directories(c.output.parent_path());
        const std::string old = plant_previous(c.output);
        {
            const FileSizeLimit full(1024);
            expect_error(c.args, "could not write " + c.output.string());
        }
        CHECK(slurp(c.output) == old);
        CHECK(temporaries(c.output.parent_path()).empty());
    }
    fs::remove_all(dir);
}

TEST_CASE("train on a full disk: metrics.csv keeps its whole rows") {
    const SharedRun& shared = shared_run();
    const fs::path dir = temp_dir("metrics");
    fs::copy(shared.run, dir, fs::copy_options::recursive);
    const std::string before = slurp(dir / "metrics.csv");
    REQUIRE(ewe::io::read_csv(dir / "metrics.csv").size() == 2);
    {
        // Room for the rows it had, not for the next epoch's row.
        const FileSizeLimit full(before.size() + 10);
        expect_error({"train", "--data", shared.data.string(), "--epochs", "2", "--out", dir.string(), "--resume",
                      "--quiet", "--snapshots", "", "--monitor", "0"},
                     "could not write " + (dir / "metrics.csv").string());
    }
    CHECK(slurp(dir / "metrics.csv") == before);
    CHECK(temporaries(dir).empty());
    fs::remove_all(dir);
}
