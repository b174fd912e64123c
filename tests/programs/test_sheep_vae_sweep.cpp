// `sheep_vae sweep` run in-process (sheep_vae_main): a tiny sweep of two latent sizes
// at two widths writes a run folder per configuration and a sweep.csv whose numbers are
// recomputed here from each run's checkpoint and metrics.csv by other code paths;
// --resume skips finished runs and writes the same file; a sweep interrupted by SIGINT
// and resumed ends as an uninterrupted one; bad input names the flag, file or line; a
// --resume with other data or settings, a folder in use and a previous sweep are refused
// without a byte changed (--overwrite starts over); the width multiplier is recorded in
// checkpoints, and one without it loads as width 1.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ewe/anomaly/scores.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/npy.hpp>
#include <ewe/io/run_lock.hpp>
#include <ewe/io/safetensors.hpp>
#include <ewe/models/vae_inference.hpp>
#include <ewe/train/posterior_monitor.hpp>
#include <sheep_vae/sheep_vae.hpp>

#include "sheep_vae_run.hpp"

namespace fs = std::filesystem;

namespace {

using sheep_test::contains;
using sheep_test::run;
using sheep_test::RunResult;
using sheep_test::slurp;

using sheep_test::expect_error;
using sheep_test::folder_bytes;
using sheep_test::small_data;

fs::path temp_dir(const std::string& name) { return sheep_test::temp_dir("sweep", name); }

// n drawings unlike sheep: filled boxes of varying size.
fs::path boxes_file(const fs::path& dir, std::int64_t n) {
    std::vector<std::uint8_t> bytes(std::size_t(n * 784), 0);
    for (std::int64_t i = 0; i < n; ++i)
        for (int y = 4; y < 14 + i % 10; ++y)
            for (int x = 6; x < 16 + i % 8; ++x) bytes[std::size_t(i * 784 + y * 28 + x)] = 255;
    const fs::path p = dir / "boxes.npy";
    ewe::io::write_npy<std::uint8_t>(p, bytes.data(), ewe::Shape{n, 784});
    return p;
}

using Table = std::vector<std::vector<std::string>>;

std::size_t column(const Table& t, const std::string& name) {
    const auto it = std::find(t[0].begin(), t[0].end(), name);
    REQUIRE_MESSAGE(it != t[0].end(), name);
    return std::size_t(it - t[0].begin());
}

double cell(const Table& t, std::size_t row, const std::string& name) {
    return std::atof(t[row][column(t, name)].c_str());
}

bool close(double a, double b, double rel) { return std::fabs(a - b) <= rel * std::max(std::fabs(b), 1e-12); }

const std::vector<std::string> kHeader = {"run",     "latent",   "width",    "parameters",
                                          "epochs",  "seconds",  "loss",     "reconstruction_sse",
                                          "kl",      "active_units", "roc_auc", "precision_at_n"};

// The widths the sweeps below train, small models: 0.25 and 0.5; under the sanitizers
// (EWE_UNDER_SANITIZER), where a width-0.5 step takes long, half as wide again, through
// the same code paths and checks.
#ifdef EWE_UNDER_SANITIZER
const std::vector<std::string> kSweptWidths = {"0.125", "0.25"};
#else
const std::vector<std::string> kSweptWidths = {"0.25", "0.5"};
#endif

// Raises SIGINT once `ready()` holds and a handler other than `before` is installed.
template <class Ready>
std::thread interrupt_when(Ready ready, const struct sigaction& before, std::atomic<bool>& done) {
    return std::thread([ready, before, &done] {
        while (!done.load()) {
            struct sigaction current {};
            ::sigaction(SIGINT, nullptr, &current);
            if (ready() && current.sa_handler != before.sa_handler) {
                std::raise(SIGINT);
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
}

}  // namespace

TEST_CASE("a sweep of 2 latent sizes x 2 widths (small models): run folders, sweep.csv from checkpoints and metrics, --resume") {
    const fs::path dir = temp_dir("main");
    const fs::path data = small_data(dir, 64, "sheep.npy"), planted = boxes_file(dir, 16), out = dir / "sweep";
    const std::vector<std::string> args = {"sweep", "--data", data.string(), "--limit", "64", "--epochs", "1",
                                           "--batch", "16", "--latent", "2,3",
                                           "--width", kSweptWidths[0] + "," + kSweptWidths[1],
                                           "--plant", planted.string() + ":16", "--snapshots", "1", "--quiet",
                                           "--timing-steps", "1", "--threads", "1", "--out", out.string()};
    const RunResult r = run(args);
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.err, "Sweep of 4 configurations"));
    CHECK(contains(r.err, "about "));
    CHECK(contains(r.err, "[4/4] latent3_width" + kSweptWidths[1] + ": done"));

    const Table t = ewe::io::read_csv(out / "sweep.csv");
    REQUIRE(t.size() == 5);
    CHECK(t[0] == kHeader);
    const std::vector<std::string> names = {"latent2_width" + kSweptWidths[0], "latent2_width" + kSweptWidths[1],
                                            "latent3_width" + kSweptWidths[0], "latent3_width" + kSweptWidths[1]};
    const sheep::Bitmaps sheep = sheep::load_bitmaps(data);
    const sheep::Bitmaps boxes = sheep::load_bitmaps(planted);
    ewe::Tensor<float> scored(ewe::Shape{80, 28, 28, 1});
    std::copy_n(sheep.images.data(), 64 * 784, scored.data());
    std::copy_n(boxes.images.data(), 16 * 784, scored.data() + 64 * 784);
    for (std::size_t k = 0; k < names.size(); ++k) {
        const std::size_t row = k + 1;
        const fs::path run_dir = out / names[k];
        INFO("run ", names[k]);
        CHECK(t[row][0] == names[k]);
        CHECK(r.out.find(names[k]) != std::string::npos);  // the printed table
        for (const char* f : {"checkpoint.safetensors", "metrics.csv", "loss.svg", "kl.svg", "latent_epoch001.svg",
                              "logs"})
            CHECK_MESSAGE(fs::exists(run_dir / f), f);
        // From the checkpoint: the shape, the parameters, the epochs.
        ewe::Context ctx;
        const ewe::VaeRunCheckpoint ck = sheep::read_checkpoint(run_dir / "checkpoint.safetensors");
        CHECK(ck.model_options.latent == (k < 2 ? 2 : 3));
        CHECK(ck.model_options.width == std::stod(kSweptWidths[k % 2]));
        CHECK(cell(t, row, "latent") == ck.model_options.latent);
        CHECK(cell(t, row, "width") == ck.model_options.width);
        CHECK(ck.progress.epoch == 1);
        CHECK(cell(t, row, "epochs") == 1);
        ewe::SheepVae<float> vae(ctx, ck.model_options, 16, 0);
        ck.file.load_parameters(vae.params());
        CHECK(cell(t, row, "parameters") == double(vae.params().total_count()));
        // From metrics.csv: the last epoch's loss, its seconds, and the posterior
        // monitor's active units and KL per dimension (all 64 drawings, like the sweep).
        const Table m = ewe::io::read_csv(run_dir / "metrics.csv");
        REQUIRE(m.size() == 2);
        CHECK(close(cell(t, row, "loss"), cell(m, 1, "loss"), 1e-7));
        CHECK(close(cell(t, row, "seconds"), cell(m, 1, "seconds"), 1e-7));
        CHECK(cell(t, row, "active_units") == cell(m, 1, "active_units"));
        double kl = 0;
        for (std::int64_t d = 0; d < ck.model_options.latent; ++d) kl += cell(m, 1, "kl_dim_" + std::to_string(d));
        CHECK(close(cell(t, row, "kl"), kl, 1e-6));
        // The scoring pass of the library (reconstruction_sse), on the sheep and the boxes.
        ewe::Tensor<float> sse(ewe::Shape{80});
        ewe::reconstruction_sse<float>(ctx, vae, scored.view(), sse.view());
        std::vector<double> scores(sse.data(), sse.data() + 80);
        std::vector<std::uint8_t> labels(80, 0);
        std::fill(labels.begin() + 64, labels.end(), 1);
        double mean = 0;
        for (int i = 0; i < 64; ++i) mean += scores[std::size_t(i)] / 64;
        CHECK(close(cell(t, row, "reconstruction_sse"), mean, 1e-5));
        CHECK(close(cell(t, row, "roc_auc"), ewe::anomaly::roc_auc(scores, labels), 1e-6));
        CHECK(close(cell(t, row, "precision_at_n"), ewe::anomaly::precision_at_k(scores, labels, 16), 1e-6));
    }

    // generate, anomalies and explore work on a run of the sweep (the smaller width reloaded).
    const fs::path half = out / names[0] / "checkpoint.safetensors";
    const RunResult g = run({"generate", "--checkpoint", half.string(), "--out", (dir / "g").string()});
    CHECK_MESSAGE(g.rc == 0, g.err);
    const RunResult a = run({"anomalies", "--checkpoint", half.string(), "--data", data.string(), "--out",
                             (dir / "a").string(), "--plant", planted.string() + ":16", "--json"});
    CHECK_MESSAGE(a.rc == 0, a.err);
    CHECK(contains(a.out, "\"roc_auc\": " + std::string(t[1][column(t, "roc_auc")]).substr(0, 5)));

    {  // without --resume an existing run is refused; with it finished runs are skipped, same sweep.csv
        const std::string before = slurp(out / "sweep.csv"), metrics = slurp(out / names[1] / "metrics.csv");
        expect_error(args, "already holds a run; pass --resume");
        std::vector<std::string> again = args;
        again.push_back("--resume");
#if defined(_OPENMP)
        omp_set_num_threads(2);  // as a new process starts: the scoring must still run on --threads 1
#endif
        const RunResult r2 = run(again);
        REQUIRE_MESSAGE(r2.rc == 0, r2.err);
        for (const std::string& name : names) CHECK(contains(r2.err, name + ": finished (1 epochs), skipped"));
        CHECK_FALSE(contains(r2.err, "Timing"));
        CHECK(slurp(out / "sweep.csv") == before);
        CHECK(slurp(out / names[1] / "metrics.csv") == metrics);
    }
    {  // --resume with more epochs continues every run from its checkpoint
        std::vector<std::string> more = args;
        more[std::size_t(std::find(more.begin(), more.end(), "--epochs") - more.begin() + 1)] = "2";
        more.push_back("--resume");
        const RunResult r2 = run(more);
        REQUIRE_MESSAGE(r2.rc == 0, r2.err);
        CHECK(contains(r2.err, "Resuming from"));
        const Table t2 = ewe::io::read_csv(out / "sweep.csv");
        REQUIRE(t2.size() == 5);
        for (std::size_t row = 1; row < 5; ++row) CHECK(cell(t2, row, "epochs") == 2);
        CHECK(ewe::io::read_csv(out / names[2] / "metrics.csv").size() == 3);
    }
    fs::remove_all(dir);
}

TEST_CASE("Ctrl-C during a sweep keeps the finished runs; --resume ends as an uninterrupted sweep") {
    const fs::path dir = temp_dir("sigint");
    const fs::path data = small_data(dir, 48, "sheep.npy");
    const std::string first_run = "latent2_width" + kSweptWidths[0], second_run = "latent3_width" + kSweptWidths[0];
    const auto args = [&](const fs::path& out) {
        return std::vector<std::string>{"sweep", "--data", data.string(), "--epochs", "3", "--batch", "16",
                                        "--latent", "2,3", "--width", kSweptWidths[0], "--snapshots", "", "--quiet",
                                        "--timing-steps", "1", "--out", out.string()};
    };
    const fs::path interrupted = dir / "interrupted", reference = dir / "reference";
    // SIGINT once the second run has saved its first epoch: the first run is finished,
    // the second stops in epoch 2 and continues from its checkpoint.
    struct sigaction before {};
    ::sigaction(SIGINT, nullptr, &before);
    std::atomic<bool> done{false};
    const fs::path second = interrupted / second_run / "checkpoint.safetensors";
    std::thread sender = interrupt_when([second] { return fs::exists(second); }, before, done);
    const RunResult r = run(args(interrupted));
    done.store(true);
    sender.join();
    REQUIRE_MESSAGE(r.rc == 130, r.err);
    CHECK(contains(r.err, "interrupted during " + second_run));
    CHECK(contains(r.err, "--resume continues the sweep"));
    CHECK(sheep::read_checkpoint(interrupted / first_run / "checkpoint.safetensors").progress.epoch == 3);
    CHECK(sheep::read_checkpoint(second).progress.epoch < 3);
    CHECK_FALSE(fs::exists(interrupted / "sweep.csv"));
    struct sigaction after {};
    ::sigaction(SIGINT, nullptr, &after);
    CHECK((after.sa_handler == before.sa_handler));

    std::vector<std::string> resume = args(interrupted);
    resume.push_back("--resume");
    const RunResult r2 = run(resume);
    REQUIRE_MESSAGE(r2.rc == 0, r2.err);
    CHECK(contains(r2.err, first_run + ": finished (3 epochs), skipped"));
    CHECK(contains(r2.err, "Resuming from"));
    const RunResult r3 = run(args(reference));
    REQUIRE_MESSAGE(r3.rc == 0, r3.err);
    // Every column but the seconds: bit for bit on the CPU.
    Table a = ewe::io::read_csv(interrupted / "sweep.csv"), b = ewe::io::read_csv(reference / "sweep.csv");
    REQUIRE(a.size() == 3);
    REQUIRE(b.size() == 3);
    const std::size_t seconds = column(a, "seconds");
    for (std::size_t row = 0; row < 3; ++row) {
        a[row][seconds] = b[row][seconds] = "";
        CHECK(a[row] == b[row]);
    }
    fs::remove_all(dir);
}

TEST_CASE("bad sweep input names the flag, file or line") {
    const fs::path dir = temp_dir("errors");
    const fs::path data = small_data(dir, 8, "sheep.npy");
    const std::string out = (dir / "out").string();
    const auto sweep = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = {"sweep", "--data", data.string(), "--epochs", "1", "--timing-steps", "1",
                                      "--out", out};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    expect_error({"sweep", "--latent", "2"}, "--out is required");
    expect_error(sweep({"--latent", "0"}), "--latent: a latent size must be an integer in [1, 4096], found '0'");
    expect_error(sweep({"--latent", "2.5"}), "--latent: a latent size must be an integer");
    expect_error(sweep({"--latent", ""}), "--latent: expected comma-separated numbers, found ''");
    expect_error(sweep({"--latent", "2,,3"}), "--latent: expected comma-separated numbers");
    expect_error(sweep({"--width", "0"}), "--width: a width must be a number in (0, 16]");
    expect_error(sweep({"--width", "wide"}), "--width: expected comma-separated numbers, found 'wide'");
    expect_error(sweep({"--latent", "2,3,2"}), "--latent/--width: duplicated configuration latent 2 width 0.5");
    expect_error(sweep({"--configs", (dir / "missing.txt").string()}),
                 "--configs: " + (dir / "missing.txt").string() + " does not exist");
    expect_error(sweep({"--configs", data.string(), "--latent", "2"}), "--latent excludes --configs");
    expect_error(sweep({"--plant", "cat.npy"}), "--plant: expected OTHER.npy:N with N > 0, found 'cat.npy'");
    expect_error(sweep({"--plant", (dir / "none.npy").string() + ":5"}), "--plant");
    expect_error({"sweep", "--data", (dir / "none.npy").string(), "--out", out}, "none.npy");
    expect_error(sweep({"--concurrent", "2"}), "--concurrent: configurations train concurrently on CUDA only");
    expect_error(sweep({"--snapshots", "0"}), "--snapshots: expected epoch numbers >= 1");
    const auto file_error = [&](const std::string& text, const std::string& what) {
        const fs::path f = dir / "configs.txt";
        std::ofstream(f) << text;
        expect_error(sweep({"--configs", f.string()}), "--configs " + f.string() + what);
    };
    file_error("", ": no configuration");
    file_error("# only a comment\n\n", ": no configuration");
    file_error("latent=2\nlatent=3 width=half\n", ":2: width = 'half' is not a number");
    file_error("latent=2 depth=3\n", ":1: unknown key 'depth'");
    file_error("width=0.5\n", ":1: no latent=N on the line");
    file_error("latent=0\n", ":1: a latent size must be an integer in [1, 4096], found '0'");
    file_error("latent=2 width=-1\n", ":1: a width must be a number in (0, 16]");
    file_error("latent=2 latent=3\n", ":1: 'latent' is given twice");
    file_error("latent 2\n", ":1: expected key=value");
    file_error("latent=2 name=../x\n", ":1: name '../x' must be letters, digits");
    file_error("latent=2\n# a comment\nlatent=2 width=1\n", ":3: duplicated configuration latent 2 width 1 (also --configs ");
    file_error("latent=2 name=a\nlatent=3 name=a\n", ":2: duplicated run name 'a'");
    // A run folder of another shape, or trained on other data, is not resumed.
    {
        const fs::path f = dir / "configs.txt";
        std::ofstream(f) << "latent=2 width=0.5 name=run  # trained below\n";
        const RunResult r = run(sweep({"--configs", f.string(), "--batch", "8", "--snapshots", "", "--quiet"}));
        REQUIRE_MESSAGE(r.rc == 0, r.err);
        std::ofstream(f) << "latent=3 width=0.5 name=run\n";
        expect_error(sweep({"--configs", f.string(), "--resume"}), "is a run of latent 2 width 0.5, not of --configs " +
                                                                       f.string() + ":1's latent 3 width 0.5");
        std::ofstream(f) << "latent=2 width=0.5 name=run\n";
        expect_error(sweep({"--configs", f.string(), "--resume", "--limit", "4"}),
                     "sheep.npy, 8 drawings), this one's data with hash 0x");
    }
    fs::remove_all(dir);
}

TEST_CASE("the width multiplier: layer sizes, train --width, recorded in checkpoints; none recorded means 1") {
    ewe::SheepVaeOptions half;
    half.width = 0.5;
    CHECK(half.scaled_filters() == std::vector<std::int64_t>{5, 10, 20, 40});
    CHECK(half.scaled_units() == std::vector<std::int64_t>{50, 25, 13});
    ewe::SheepVaeOptions seed;
    CHECK(seed.scaled_filters() == seed.filters);
    CHECK(seed.scaled_units() == seed.units);
    for (double bad : {0.0, -1.0, 17.0, double(NAN)}) {
        ewe::SheepVaeOptions c;
        c.width = bad;
        CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("width must be in (0, 16]"), ewe::Error);
    }

    const fs::path dir = temp_dir("width");
    const fs::path data = small_data(dir, 8, "sheep.npy");
    const RunResult r = run({"train", "--data", data.string(), "--epochs", "1", "--width", "0.5", "--latent", "2",
                             "--out", (dir / "half").string(), "--quiet", "--snapshots", ""});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const fs::path ck = dir / "half" / "checkpoint.safetensors";
    CHECK(ewe::io::read_safetensors(ck).metadata.at("model.width") == "0.5");
    const ewe::VaeRunCheckpoint loaded = sheep::read_checkpoint(ck);
    CHECK(loaded.model_options.width == 0.5);
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, loaded.model_options, 8, 0);
    CHECK_NOTHROW(loaded.file.load_parameters(vae.params()));
    CHECK(vae.params().total_count() == 3230631);
    expect_error({"train", "--width", "0", "--out", (dir / "x").string()}, "--width");

    // A checkpoint written before model.width existed: the post's widths.
    const RunResult seed_run = run({"train", "--data", data.string(), "--epochs", "1", "--out",
                                    (dir / "seed").string(), "--quiet", "--snapshots", ""});
    REQUIRE_MESSAGE(seed_run.rc == 0, seed_run.err);
    const ewe::io::SafetensorsFile f = ewe::io::read_safetensors(dir / "seed" / "checkpoint.safetensors");
    std::map<std::string, std::string> meta = f.metadata;
    REQUIRE(meta.erase("model.width") == 1);
    std::vector<ewe::io::SafetensorsEntry> entries;
    for (const auto& [name, t] : f.tensors)
        entries.push_back({name, t.dtype, t.shape, f.data.data() + t.begin, t.end - t.begin});
    const fs::path old = dir / "old.safetensors";
    ewe::io::write_safetensors(old, entries, meta);
    const ewe::VaeRunCheckpoint old_ck = sheep::read_checkpoint(old);
    CHECK(old_ck.model_options.width == 1.0);
    ewe::SheepVae<float> old_vae(ctx, old_ck.model_options, 8, 0);
    CHECK_NOTHROW(old_ck.file.load_parameters(old_vae.params()));
    CHECK(old_vae.params().total_count() == 12857845);
    const RunResult g = run({"generate", "--checkpoint", old.string(), "--out", (dir / "g").string()});
    CHECK_MESSAGE(g.rc == 0, g.err);
    // Tampered: a width out of range names the key.
    meta["model.width"] = "0";
    ewe::io::write_safetensors(old, entries, meta);
    CHECK_THROWS_WITH_AS(sheep::read_checkpoint(old), doctest::Contains("model.width = 0 is outside"), ewe::Error);
    fs::remove_all(dir);
}

TEST_CASE("sweep --resume refuses other data or settings naming both values; a previous sweep or a folder in use is refused; --overwrite starts over") {
    const fs::path dir = temp_dir("continue");
    const fs::path data = small_data(dir, 8, "sheep.npy"), boxes = boxes_file(dir, 8), out = dir / "sweep";
    const std::vector<std::string> base = {"sweep", "--data", data.string(), "--epochs", "2", "--batch", "8",
                                           "--latent", "2", "--width", "0.25", "--timing-steps", "1", "--snapshots", "",
                                           "--quiet", "--threads", "1", "--out", out.string()};
    const auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = base;
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    const RunResult first = run(base);
    REQUIRE_MESSAGE(first.rc == 0, first.err);
    CHECK(fs::exists(out / "sweep_settings.csv"));
    const auto before = folder_bytes(out);
    const std::string settings = (out / "sweep_settings.csv").string();
    expect_error(with({"--resume", "--seed", "7"}), settings + ": the sweep was run with --seed 42, this one asks for --seed 7");
    expect_error(with({"--resume", "--lr", "0.01"}), "the sweep was run with --lr 0.001, this one asks for --lr 0.01");
    expect_error(with({"--resume", "--kl-start", "3"}), "the sweep was run with --kl-start 10, this one asks for --kl-start 3");
    expect_error(with({"--resume", "--reparam", "post"}), "the sweep was run with --reparam standard, this one asks for --reparam post");
    expect_error(with({"--resume", "--limit", "6"}), "sheep.npy, 8 drawings), this one's data with hash 0x");
    {
        std::vector<std::string> a = with({"--resume"});
        a[2] = boxes.string();  // other drawings, the same count
        const RunResult r = run(a);
        INFO(r.err);
        CHECK(r.rc != 0);
        CHECK(contains(r.err, "the sweep was run on data with hash 0x"));
        CHECK(contains(r.err, "boxes.npy, 8 drawings)"));
    }
    {
        std::vector<std::string> a = with({"--resume"});
        a[4] = "1";  // fewer epochs than the sweep's runs have
        expect_error(a, "the sweep was run with --epochs 2, this one asks for --epochs 1");
    }
    CHECK(folder_bytes(out) == before);
    {  // while another process uses OUT
        const ewe::io::RunLock held(out);
        expect_error(with({"--resume"}), "--out: " + out.string() + " is in use by process " + std::to_string(::getpid()));
    }
    CHECK(folder_bytes(out) == before);
    {  // the same drawings under another name are the same data: finished runs are skipped
        fs::copy_file(data, dir / "same_sheep.npy");
        std::vector<std::string> a = with({"--resume"});
        a[2] = (dir / "same_sheep.npy").string();
        const RunResult r = run(a);
        REQUIRE_MESSAGE(r.rc == 0, r.err);
        CHECK(contains(r.err, "latent2_width0.25: finished (2 epochs), skipped"));
    }

    // sweep.csv alone (the run folder deleted) is still a previous sweep.
    fs::remove_all(out / "latent2_width0.25");
    const auto without_run = folder_bytes(out);
    expect_error(base, "already holds a run; pass --resume to continue the sweep (finished runs are kept), or --overwrite");
    expect_error(base, "(found: sweep.csv, sweep_settings.csv;");
    CHECK(folder_bytes(out) == without_run);

    std::ofstream(out / "notes.txt") << "the user's own file";
    std::vector<std::string> overwrite = with({"--overwrite", "--seed", "7"});
    overwrite[4] = "1";
    const RunResult again = run(overwrite);
    REQUIRE_MESSAGE(again.rc == 0, again.err);
    CHECK(contains(again.err, "deleted the previous sweep"));
    CHECK(slurp(out / "notes.txt") == "the user's own file");
    CHECK(contains(slurp(out / "sweep_settings.csv"), "--seed,7\n"));
    CHECK(ewe::io::read_safetensors(out / "latent2_width0.25" / "checkpoint.safetensors").meta("rng.seed") == "7");
    fs::remove_all(dir);
}
