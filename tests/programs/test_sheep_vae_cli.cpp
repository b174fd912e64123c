// The sheep_vae program run in-process (sheep_vae_main, library sheep_vae_cli): bad input to
// every subcommand is an error naming the file or flag with a non-zero exit; --resume
// after epoch k equals an uninterrupted run bit for bit on the CPU, and refuses other data
// or settings naming both values; a folder that holds a run, or that another process
// uses, is refused without a byte changed (--overwrite starts over); a short run on the
// real sheep ($EWE_DATA/sheep.npy) produces every artefact of every subcommand.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ewe/io/csv.hpp>
#include <ewe/io/npy.hpp>
#include <ewe/io/run_lock.hpp>
#include <ewe/io/safetensors.hpp>
#include <ewe/models/sheep_vae.hpp>
#include <sheep_vae/sheep_vae.hpp>

#include "sheep_vae_run.hpp"

namespace fs = std::filesystem;

namespace {

using sheep_test::contains;
using sheep_test::run;
using sheep_test::RunResult;
using sheep_test::slurp;
using sheep_test::trained_width;

using sheep_test::expect_error;
using sheep_test::folder_bytes;
using sheep_test::small_data;

fs::path temp_dir(const std::string& name) { return sheep_test::temp_dir("cli", name); }

fs::path real_data() {
    const char* d = std::getenv("EWE_DATA");
    if (!d || !*d) return {};
    const fs::path p = fs::path(d) / "sheep.npy";
    return fs::exists(p) ? p : fs::path();
}

// A checkpoint shared by the tests below (1 epoch on 8 drawings).
fs::path shared_checkpoint() {
    static fs::path ck;
    if (!ck.empty()) return ck;
    const fs::path dir = temp_dir("shared");
    const fs::path data = small_data(dir, 8);
    const RunResult r = run({"train", "--data", data.string(), "--epochs", "1", "--out", (dir / "run").string(),
                             "--width", trained_width, "--quiet", "--snapshots", ""});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    ck = dir / "run" / "checkpoint.safetensors";
    return ck;
}

}  // namespace

TEST_CASE("every subcommand has --help, unknown flags and subcommands fail") {
    for (const char* cmd : {"summary", "bench", "train", "generate", "anomalies", "explore"}) {
        const RunResult r = run({cmd, "--help"});
        CHECK_MESSAGE(r.rc == 0, cmd);
        CHECK(contains(r.out, cmd));
    }
    expect_error({"train", "--no-such-flag"}, "--no-such-flag");
    expect_error({"bench", "--batch", "0"}, "--batch");
    expect_error({"bench", "--device", "tpu"}, "--device");
    expect_error({"bench", "--product-precision", "fp16"}, "--product-precision");
    expect_error({"train", "--product-precision", "fp16"}, "--product-precision");
    expect_error({"frobnicate"}, "frobnicate");
    expect_error({}, "subcommand");
    expect_error({"generate"}, "--checkpoint");
}

TEST_CASE("bench --product-precision bf16 runs where AVX512_BF16 is, and is refused, saying why, where not") {
    const RunResult r = run({"bench", "--steps", "1", "--warmup", "0", "--threads", "1", "--product-precision", "bf16",
                             "--json"});
    if (ewe::cpu_bf16_products_available()) {
        CHECK_MESSAGE(r.rc == 0, r.err);
        CHECK(contains(r.out, "\"product_precision\": \"bf16\""));
    } else {
        CHECK(r.rc != 0);
        CHECK(contains(r.err, "AVX512_BF16"));
    }
}

TEST_CASE("summary prints the parameter counts of the post") {
    const RunResult r = run({"summary"});
    CHECK(r.rc == 0);
    CHECK(contains(r.out, "Total params: 12,857,845"));
    CHECK(contains(r.out, "Total params: 6,511,206"));
}

TEST_CASE("bad data files are errors naming the file") {
    const fs::path dir = temp_dir("bad");
    const std::string out = (dir / "out").string();
    auto train = [&](const fs::path& data) {
        return std::vector<std::string>{"train", "--data", data.string(), "--epochs", "1", "--out", out, "--quiet"};
    };
    expect_error(train(dir / "missing.npy"), "missing.npy");

    std::vector<std::int32_t> ints(2 * 784, 1);
    ewe::io::write_npy<std::int32_t>(dir / "int32.npy", ints.data(), ewe::Shape{2, 784});
    expect_error(train(dir / "int32.npy"), "int32.npy");
    expect_error(train(dir / "int32.npy"), "dtype");

    std::vector<std::uint8_t> bytes(3 * 100, 9);
    ewe::io::write_npy<std::uint8_t>(dir / "shape.npy", bytes.data(), ewe::Shape{3, 100});
    expect_error(train(dir / "shape.npy"), "shape.npy");
    std::vector<std::uint8_t> square(2 * 784, 9);
    ewe::io::write_npy<std::uint8_t>(dir / "square.npy", square.data(), ewe::Shape{2, 28, 28});  // accepted shape
    ewe::io::write_npy<std::uint8_t>(dir / "empty.npy", square.data(), ewe::Shape{0, 784});
    expect_error(train(dir / "empty.npy"), "empty.npy");

    {
        const std::string good = slurp(dir / "square.npy");
        std::ofstream(dir / "truncated.npy", std::ios::binary).write(good.data(), std::streamsize(good.size() - 100));
        std::ofstream(dir / "garbage.npy", std::ios::binary) << "this is not numpy";
    }
    expect_error(train(dir / "truncated.npy"), "truncated.npy");
    expect_error(train(dir / "garbage.npy"), "garbage.npy");

    std::vector<float> floats(2 * 784, 0.5f);
    floats[900] = std::nanf("");
    ewe::io::write_npy<float>(dir / "nan.npy", floats.data(), ewe::Shape{2, 784});
    expect_error(train(dir / "nan.npy"), "nan.npy");
    floats[900] = INFINITY;
    ewe::io::write_npy<float>(dir / "inf.npy", floats.data(), ewe::Shape{2, 784});
    expect_error(train(dir / "inf.npy"), "inf.npy");
    floats[900] = 255.0f;
    ewe::io::write_npy<float>(dir / "range.npy", floats.data(), ewe::Shape{2, 784});
    expect_error(train(dir / "range.npy"), "range.npy");

    // The same checks guard anomalies and explore (data, --plant and --reference).
    const std::string ck = shared_checkpoint().string();
    expect_error({"anomalies", "--checkpoint", ck, "--data", (dir / "nan.npy").string(), "--out", out}, "nan.npy");
    expect_error({"anomalies", "--checkpoint", ck, "--data", (dir / "square.npy").string(), "--plant",
                  (dir / "int32.npy").string() + ":1", "--out", out}, "int32.npy");
    expect_error({"anomalies", "--checkpoint", ck, "--data", (dir / "square.npy").string(), "--plant", "cat.npy",
                  "--out", out}, "--plant");
    expect_error({"anomalies", "--checkpoint", ck, "--data", (dir / "square.npy").string(), "--reference",
                  (dir / "range.npy").string(), "--out", out}, "range.npy");
    expect_error({"anomalies", "--checkpoint", ck, "--data", (dir / "square.npy").string(), "--reference",
                  (dir / "missing.npy").string(), "--out", out}, "--reference");
    expect_error({"explore", "--checkpoint", ck, "--data", (dir / "shape.npy").string(), "--out", out}, "shape.npy");
    fs::remove_all(dir);
}

TEST_CASE("bad checkpoints are errors naming the file") {
    const fs::path dir = temp_dir("badck");
    const fs::path ck = shared_checkpoint();
    const std::string png = (dir / "x.png").string();
    expect_error({"generate", "--checkpoint", (dir / "nope.safetensors").string(), "--out", png}, "nope.safetensors");
    std::ofstream(dir / "junk.safetensors", std::ios::binary) << "junk junk junk junk";
    expect_error({"generate", "--checkpoint", (dir / "junk.safetensors").string(), "--out", png}, "junk.safetensors");
    {
        const std::string whole = slurp(ck);
        std::ofstream(dir / "cut.safetensors", std::ios::binary).write(whole.data(), std::streamsize(whole.size() / 2));
    }
    expect_error({"generate", "--checkpoint", (dir / "cut.safetensors").string(), "--out", png}, "cut.safetensors");
    // Another architecture: the same tensors under options with other dense widths.
    auto file = ewe::io::read_safetensors(ck);
    std::vector<ewe::io::SafetensorsEntry> entries;
    for (const auto& [name, t] : file.tensors)
        entries.push_back({name, t.dtype, t.shape, file.data.data() + t.begin, t.end - t.begin});
    auto meta = file.metadata;
    meta["model.units"] = "100,50,20";
    ewe::io::write_safetensors(dir / "other.safetensors", entries, meta);
    expect_error({"generate", "--checkpoint", (dir / "other.safetensors").string(), "--out", png}, "other.safetensors");
    meta = file.metadata;
    meta.erase("format");
    ewe::io::write_safetensors(dir / "foreign.safetensors", entries, meta);
    expect_error({"generate", "--checkpoint", (dir / "foreign.safetensors").string(), "--out", png}, "foreign.safetensors");
    // Wrong latent dimension for --center, --grid with --center.
    expect_error({"generate", "--checkpoint", ck.string(), "--center", "1,2,3", "--out", png}, "--center");
    expect_error({"generate", "--checkpoint", ck.string(), "--center", "a,b", "--out", png}, "--center");
    expect_error({"generate", "--checkpoint", ck.string(), "--grid", "--center", "0,0", "--out", png}, "--grid");
    expect_error({"anomalies", "--checkpoint", (dir / "other.safetensors").string(), "--data",
                  small_data(dir, 4).string(), "--out", (dir / "a").string()}, "other.safetensors");
    fs::remove_all(dir);
}

TEST_CASE("the run's checkpoint reader refuses edited run settings and other image sizes, naming the key") {
    const fs::path dir = temp_dir("runck");
    const ewe::io::SafetensorsFile file = ewe::io::read_safetensors(shared_checkpoint());
    std::vector<ewe::io::SafetensorsEntry> entries;
    for (const auto& [name, t] : file.tensors)
        entries.push_back({name, t.dtype, t.shape, file.data.data() + t.begin, t.end - t.begin});
    const auto error_of_edit = [&](const std::string& key, const std::string& value) {
        auto meta = file.metadata;
        meta[key] = value;
        const fs::path edited = dir / "edited.safetensors";
        ewe::io::write_safetensors(edited, entries, meta);
        try {
            (void)sheep::read_checkpoint(edited);
        } catch (const ewe::Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    const std::string edited = (dir / "edited.safetensors").string();
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"train.batch", "1000000000000"}, {"optimizer.lr", "-1"}, {"rng.seed", "-3"}}) {
        CAPTURE(key);
        const std::string m = error_of_edit(key, value);
        CHECK(contains(m, edited));
        CHECK(contains(m, key));
    }
    const std::string m = error_of_edit("model.image_size", "32");
    CHECK(contains(m, edited));
    CHECK(contains(m, "the checkpoint is for 32x32x1 images"));
    fs::remove_all(dir);
}

TEST_CASE("--resume after epoch 1 equals an uninterrupted run bit for bit") {
    const fs::path dir = temp_dir("resume");
    const fs::path data = small_data(dir, 10);
    const std::vector<std::string> common = {"--data", data.string(), "--batch", "4", "--kl-start", "1", "--kl-steep",
                                             "1", "--seed", "5", "--width", trained_width, "--quiet", "--snapshots", ""};
    auto train = [&](const std::string& out, const std::string& epochs, bool resume) {
        std::vector<std::string> a = {"train", "--out", (dir / out).string(), "--epochs", epochs};
        a.insert(a.end(), common.begin(), common.end());
        if (resume) a.push_back("--resume");
        const RunResult r = run(a);
        REQUIRE_MESSAGE(r.rc == 0, r.err);
    };
    train("whole", "2", false);
    train("split", "1", false);
    train("split", "2", true);
    const std::string a = slurp(dir / "whole" / "checkpoint.safetensors");
    const std::string b = slurp(dir / "split" / "checkpoint.safetensors");
    {  // the weights and RMSprop's mean squares, 4 bytes each (103 MB at width 1)
        ewe::SheepVaeOptions trained;
        trained.width = std::stod(trained_width);
        ewe::Context ctx;
        CHECK(a.size() > 8 * std::size_t(ewe::SheepVae<float>(ctx, trained, 4, 0).params().total_count()));
    }
    CHECK(a == b);
    const auto ma = ewe::io::read_csv(dir / "whole" / "metrics.csv");
    const auto mb = ewe::io::read_csv(dir / "split" / "metrics.csv");
    REQUIRE(ma.size() == 3);
    REQUIRE(mb.size() == 3);
    for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t c = 0; c < 6; ++c) CHECK(ma[r][c] == mb[r][c]);
    // Resuming on other data is refused.
    const fs::path other = dir / "other.npy";
    {
        const auto bytes = ewe::procedural_sheep(6, 1);
        ewe::io::write_npy<std::uint8_t>(other, bytes.data(), ewe::Shape{6, 784});
    }
    expect_error({"train", "--out", (dir / "split").string(), "--epochs", "3", "--data", other.string(), "--resume",
                  "--quiet"}, "--resume");
    fs::remove_all(dir);
}

TEST_CASE("end to end on the real sheep: train, generate, anomalies, explore") {
    const fs::path real = real_data();
    if (real.empty()) {
        MESSAGE("EWE_DATA does not name a folder with sheep.npy; skipping the real-data run");
        return;
    }
    const fs::path dir = temp_dir("e2e");
    const fs::path run_dir = dir / "run";
    RunResult r = run({"train", "--limit", "16", "--epochs", "2", "--kl-start", "1", "--kl-steep", "1", "--snapshots",
                       "1,2", "--width", trained_width, "--out", run_dir.string()});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.err, "sheep.npy"));  // no --data: $EWE_DATA/sheep.npy
    CHECK(contains(r.err, "KL weight: 0"));
    CHECK(contains(r.err, "KL weight: 1"));
    CHECK(contains(r.err, "2/2 ["));  // the progress bar
    for (const char* f : {"checkpoint.safetensors", "metrics.csv", "latent_epoch001.npy", "latent_epoch001.svg",
                          "latent_epoch002.npy", "latent_epoch002.svg", "loss.svg", "kl.svg"})
        CHECK_MESSAGE(fs::exists(run_dir / f), f);
    bool events = false;
    for (const auto& e : fs::directory_iterator(run_dir / "logs"))
        events |= e.path().filename().string().rfind("events.out.tfevents.", 0) == 0 && fs::file_size(e.path()) > 100;
    CHECK(events);
    const auto metrics = ewe::io::read_csv(run_dir / "metrics.csv");
    REQUIRE(metrics.size() == 3);
    CHECK(metrics[0] == std::vector<std::string>{"epoch", "step", "loss", "recon", "kl", "kl_weight", "active_units",
                                                 "kl_dim_0", "kl_dim_1", "seconds"});
    CHECK(metrics[2][1] == "4");
    CHECK(std::stod(metrics[2][5]) == 1.0);
    CHECK(std::stod(metrics[2][6]) >= 0.0);  // active units of 2 (the posterior-collapse monitor)
    CHECK(std::stod(metrics[2][6]) <= 2.0);
    CHECK(contains(r.err, "active_units: "));
    const auto latent = ewe::io::read_npy(run_dir / "latent_epoch002.npy");
    CHECK(latent.shape == ewe::Shape{16, 2});
    const auto ck = ewe::io::read_safetensors(run_dir / "checkpoint.safetensors");
    CHECK(ck.meta("epoch") == "2");
    CHECK(ck.meta("optimizer.iterations") == "4");
    CHECK(ck.has("optimizer/mean_square"));
    CHECK(ck.has("dense/kernel"));

    const std::string ckp = (run_dir / "checkpoint.safetensors").string();
    r = run({"generate", "--checkpoint", ckp, "--grid", "--grid-size", "4", "--out", (dir / "grid.png").string()});
    CHECK_MESSAGE(r.rc == 0, r.err);
    r = run({"generate", "--checkpoint", ckp, "--center", "0.5,-1", "--sd", "0.3", "--count", "6", "--out",
             (dir / "near.png").string()});
    CHECK_MESSAGE(r.rc == 0, r.err);
    CHECK(slurp(dir / "grid.png").substr(1, 3) == "PNG");
    CHECK(fs::exists(dir / "near.png"));

    const fs::path cat = real.parent_path() / "cat.npy";
    std::vector<std::string> anomaly = {"anomalies", "--checkpoint", ckp, "--data", real.string(), "--limit", "20",
                                        "--out", (dir / "anomalies").string(), "--samples", "8", "--json"};
    if (fs::exists(cat)) anomaly.insert(anomaly.end(), {"--plant", cat.string() + ":6"});
    r = run(anomaly);
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.out, "\"samples\": "));
    CHECK(contains(r.out, "\"score\": \"sse\""));
    if (fs::exists(cat)) {
        CHECK(contains(r.out, "\"roc_auc\": "));
        CHECK(contains(r.out, "\"precision_at_n\": "));
        CHECK(contains(r.out, "\"roc_auc_ink_adjusted_sse\": "));
        CHECK(contains(r.out, "\"roc_auc_neg_elbo\": "));
        CHECK(contains(r.out, "\"roc_auc_iw_nll\": "));
        CHECK(contains(r.out, "\"roc_auc_complexity_adjusted_nll\": "));
    }
    CHECK(contains(r.out, "\"iw_samples\": 8"));
    for (const char* f : {"scores.npy", "scores.csv", "histogram_sse.svg", "histogram_ink_adjusted_sse.svg",
                          "histogram_neg_elbo.svg", "histogram_iw_nll.svg", "histogram_complexity_adjusted_nll.svg",
                          "histogram_knn_pooled.svg", "histogram_knn_dense.svg", "histogram_mahalanobis_gram.svg", "histogram_ensemble.svg",
                          "above_cutoff.png"})
        CHECK_MESSAGE(fs::exists(dir / "anomalies" / f), f);
    {
        // Columns sse, ink_adjusted_sse, neg_elbo, iw_nll, complexity_adjusted_nll, then
        // knn_pooled, knn_dense, mahalanobis_gram, ensemble: the ink-adjusted scores
        // (ink_adjusted_sse and the two k-NN distances, all fitted on these drawings, the
        // k-NN ones leave-one-out) are least-squares residuals with an intercept, so they sum to 0; neg ELBO >= 2 sse (KL >= 0); iw_nll includes the
        // decoder's constant: -log p(x|z) >= (784 / 2) log(2 pi / 4) for every z, and the
        // sheep's 2 SSE (> 50) dwarfs log p(z) / q(z|x); the complexity-adjusted one adds
        // 784 log 255 and subtracts a deflate length of at most 784 * 9 / 8 + 7 < 900 bytes.
        const auto scores = ewe::io::read_npy(dir / "anomalies" / "scores.npy");
        REQUIRE(scores.shape[1] == 9);
        const ewe::Tensor<float> v = ewe::io::npy_to_tensor<float>(scores, "scores.npy");
        double residual_sum[3] = {0, 0, 0}, residual_abs[3] = {0, 0, 0};
        for (std::int64_t i = 0; i < scores.shape[0]; ++i) {
            const float* row = &v[9 * i];
            CHECK(row[0] > 0);
            for (int r = 0; r < 3; ++r) {
                const float residual = row[r == 0 ? 1 : 4 + r];
                residual_sum[r] += residual;
                residual_abs[r] += std::abs(residual);
            }
            CHECK(row[2] >= 2 * row[0] * (1 - 1e-6));
            CHECK(std::isfinite(row[3]));
            CHECK(row[3] > 392 * std::log(2 * 3.141592653589793 / 4));
            const double adjustment = row[4] - row[3];
            CHECK(adjustment > 784 * std::log(255.0) - 8 * std::log(2.0) * 900);
            CHECK(adjustment < 784 * std::log(255.0));
            CHECK(row[7] > 0);  // a squared Mahalanobis distance
            CHECK(row[8] >= 0);  // a mean of percentiles
            CHECK(row[8] <= 1);
        }
        for (int r = 0; r < 3; ++r) {
            CHECK(residual_abs[r] > 0);
            CHECK(std::abs(residual_sum[r]) <= 1e-5 * residual_abs[r]);
        }
    }
    anomaly.push_back("--score");
    anomaly.push_back("ink_adjusted_sse");
    r = run(anomaly);
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.out, "\"score\": \"ink_adjusted_sse\""));
    CHECK(contains(r.out, "\"ink_fit_slope\": "));
    // With --reference the line comes from those drawings: fitted on the sheep alone it
    // differs from the fit on sheep + planted cats above, and the scores with it.
    if (fs::exists(cat)) {
        const auto slope = [](const std::string& json) {
            const std::size_t at = json.find("\"ink_fit_slope\": ");
            return at == std::string::npos ? std::nan("") : std::stod(json.substr(at + 17));
        };
        const double mixed_slope = slope(r.out);
        const ewe::io::NpyArray sheep = ewe::io::read_npy(real);
        const fs::path reference = dir / "reference.npy";
        ewe::io::write_npy<std::uint8_t>(reference, reinterpret_cast<const std::uint8_t*>(sheep.bytes.data()),
                                         ewe::Shape{40, 784});
        std::vector<std::string> with_reference = anomaly;
        with_reference.insert(with_reference.end(), {"--reference", reference.string()});
        r = run(with_reference);
        REQUIRE_MESSAGE(r.rc == 0, r.err);
        CHECK(std::isfinite(slope(r.out)));
        CHECK(slope(r.out) != mixed_slope);
        // The reference set saved once and loaded again scores every drawing the same.
        const fs::path saved = dir / "reference_set.safetensors";
        with_reference.insert(with_reference.end(), {"--save-reference", saved.string()});
        r = run(with_reference);
        REQUIRE_MESSAGE(r.rc == 0, r.err);
        const std::string fitted = slurp(dir / "anomalies" / "scores.csv");
        std::vector<std::string> loaded = anomaly;
        loaded.insert(loaded.end(), {"--reference", saved.string()});
        r = run(loaded);
        REQUIRE_MESSAGE(r.rc == 0, r.err);
        CHECK(contains(r.out, "\"reference_size\": 40"));
        CHECK(slurp(dir / "anomalies" / "scores.csv") == fitted);
        // --k or --pool other than the saved set's is refused, naming both values; the same value is accepted.
        std::vector<std::string> other_k = loaded;
        other_k.insert(other_k.end(), {"--k", "7"});
        r = run(other_k);
        CHECK(r.rc != 0);
        CHECK(contains(r.err, "--k 7: the reference set " + saved.string() + " was fitted with k = 5"));
        std::vector<std::string> other_pool = loaded;
        other_pool.insert(other_pool.end(), {"--pool", "2"});
        r = run(other_pool);
        CHECK(r.rc != 0);
        CHECK(contains(r.err, "--pool 2: the reference set " + saved.string() + " was fitted with pool = 7"));
        std::vector<std::string> same_k = loaded;
        same_k.insert(same_k.end(), {"--k", "5", "--pool", "7"});
        r = run(same_k);
        CHECK_MESSAGE(r.rc == 0, r.err);
        loaded.back() = ckp;  // a model checkpoint is not a reference set
        r = run(loaded);
        CHECK(r.rc != 0);
        CHECK(contains(r.err, "not a reference set"));
    }
    r = run({"anomalies", "--checkpoint", ckp, "--data", real.string(), "--score", "ssim"});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--score"));
    r = run({"anomalies", "--checkpoint", ckp, "--data", real.string(), "--score", "iw_nll"});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--samples"));
    r = run({"anomalies", "--checkpoint", ckp, "--data", real.string(), "--samples", "-1"});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--samples"));
    // Without --samples the likelihood scores (K decoder passes a drawing) are left out:
    // sse, ink_adjusted_sse, neg_elbo, knn_pooled, knn_dense, mahalanobis_gram, ensemble.
    r = run({"anomalies", "--checkpoint", ckp, "--data", real.string(), "--limit", "20", "--score", "ensemble", "--out",
             (dir / "anomalies_plain").string()});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.out, "cutoff ensemble"));
    CHECK(ewe::io::read_npy(dir / "anomalies_plain" / "scores.npy").shape[1] == 7);
    CHECK_FALSE(fs::exists(dir / "anomalies_plain" / "histogram_iw_nll.svg"));

    r = run({"explore", "--checkpoint", ckp, "--data", real.string(), "--limit", "40", "--k-max", "6", "--mosaic-k",
             "12", "--trials", "12", "--min-pts-max", "15", "--out", (dir / "explore").string()});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.out, "chosen: eps"));
    for (const char* f : {"latent.npy", "latent_scatter.svg", "kmeans_elbow.svg", "kmeans_elbow.csv",
                          "kmeans_12_centres.png", "knn_distance.svg", "dbscan_search.csv", "dbscan_clusters.svg",
                          "dbscan_labels.npy"})
        CHECK_MESSAGE(fs::exists(dir / "explore" / f), f);
    CHECK(ewe::io::read_csv(dir / "explore" / "dbscan_search.csv").size() == 13);
    fs::remove_all(dir);
}

TEST_CASE("training faults: divergence names the step and the first non-finite layer; SIGINT saves and exits") {
    const fs::path dir = temp_dir("faults");
    const fs::path data = small_data(dir, 40);
    SUBCASE("a learning rate of 1e30 diverges: the error names the epoch, step and where") {
        const RunResult r = run({"train", "--data", data.string(), "--out", (dir / "nan").string(), "--epochs", "2",
                                 "--batch", "4", "--lr", "1e30", "--width", trained_width, "--quiet", "--snapshots", ""});
        CHECK(r.rc != 0);
        CHECK(contains(r.err, "the loss became"));
        CHECK(contains(r.err, "step "));
        CHECK(contains(r.err, "first non-finite: "));
        // What the checkpoint holds is read from it, not assumed (1e30 diverges in the first epoch).
        const fs::path ck = dir / "nan" / "checkpoint.safetensors";
        CHECK_FALSE(fs::exists(ck));
        CHECK(contains(r.err, "no checkpoint was saved before that"));  // epoch 1 never finished
    }
    SUBCASE("SIGINT finishes the step, saves the weights and exits with 130") {
        // Deliver a real SIGINT once the training loop has installed its own handler in
        // place of the one before it (doctest's).
        struct sigaction before {};
        ::sigaction(SIGINT, nullptr, &before);
        std::atomic<bool> done{false};
        std::thread sender([&] {
            while (!done.load()) {
                struct sigaction current {};
                ::sigaction(SIGINT, nullptr, &current);
                if (current.sa_handler != before.sa_handler) {
                    std::raise(SIGINT);
                    return;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        });
        const RunResult r = run({"train", "--data", data.string(), "--out", (dir / "int").string(), "--epochs", "50",
                                 "--batch", "4", "--width", trained_width, "--quiet", "--snapshots", ""});
        done.store(true);
        sender.join();
        CHECK(r.rc == 130);
        CHECK(contains(r.err, "interrupted at epoch"));
        CHECK(fs::exists(dir / "int" / "interrupted.safetensors"));
        // The message says what the checkpoint really holds, read from the file.
        const fs::path ck = dir / "int" / "checkpoint.safetensors";
        if (fs::exists(ck))
            CHECK(contains(r.err, ck.string() + " holds epoch " + ewe::io::read_safetensors(ck).meta("epoch") +
                                      ", and --resume continues from it"));
        else
            CHECK(contains(r.err, "no " + ck.string() + " was written (no epoch finished)"));
        CHECK_NOTHROW(sheep::read_checkpoint(dir / "int" / "interrupted.safetensors"));
        struct sigaction after {};
        ::sigaction(SIGINT, nullptr, &after);
        CHECK((after.sa_handler == before.sa_handler));  // the previous handler is back when training ends
    }
    fs::remove_all(dir);
}

TEST_CASE("train into a folder that holds a run is refused and changes nothing; --overwrite deletes only the run's files") {
    const fs::path dir = temp_dir("rerun");
    const fs::path data = small_data(dir, 8), out = dir / "run";
    const auto train = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = {"train", "--data", data.string(), "--out", out.string(), "--width", "0.25",
                                      "--batch", "4", "--quiet"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    RunResult r = run(train({"--epochs", "1", "--snapshots", "1"}));
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    std::ofstream(out / "notes.txt") << "the user's own file";
    const auto before = folder_bytes(out);
    for (const char* f : {"checkpoint.safetensors", "metrics.csv", "latent_epoch001.npy", "latent_epoch001.svg"})
        CHECK_MESSAGE(before.count(f) == 1, f);

    r = run(train({"--epochs", "3"}));  // a rerun without --resume
    INFO(r.err);
    CHECK(r.rc != 0);
    CHECK(contains(r.err, out.string() + " already holds a run; pass --resume to continue it, or --overwrite"));
    CHECK(contains(r.err, "checkpoint.safetensors after epoch 1"));
    CHECK(contains(r.err, "metrics.csv"));
    CHECK(contains(r.err, "2 latent_epoch* files"));
    CHECK(contains(r.err, "logs/ with 1 event file"));
    CHECK(folder_bytes(out) == before);
    expect_error(train({"--epochs", "3", "--resume", "--overwrite"}), "excludes");
    CHECK(folder_bytes(out) == before);

    r = run(train({"--epochs", "1", "--seed", "9", "--snapshots", "", "--overwrite"}));
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.err, "deleted the files of the previous run"));
    const auto after = folder_bytes(out);
    CHECK(after.at("notes.txt") == "the user's own file");
    CHECK(after.count("latent_epoch001.npy") == 0);  // the old run's snapshots are gone
    std::size_t events = 0;
    for (const auto& [name, bytes] : after) events += name.rfind("logs/events.out.tfevents.", 0) == 0;
    CHECK(events == 1);
    CHECK(ewe::io::read_csv(out / "metrics.csv").size() == 2);
    CHECK(ewe::io::read_safetensors(out / "checkpoint.safetensors").meta("rng.seed") == "9");

    // Files of a run but no checkpoint (it stopped in its first epoch): --resume has
    // nothing to continue and says so, changing nothing.
    fs::remove(out / "checkpoint.safetensors");
    const auto partial = folder_bytes(out);
    r = run(train({"--epochs", "1", "--resume"}));
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--resume: " + out.string() + " holds files of a run (metrics.csv, loss.svg, kl.svg, logs/ with 1 event file)"));
    CHECK(contains(r.err, "but no checkpoint.safetensors to continue from"));
    CHECK(contains(r.err, "pass --overwrite instead of --resume"));
    CHECK(folder_bytes(out) == partial);
    fs::remove_all(dir);
}

TEST_CASE("a run folder that another train or sweep uses is refused at once, naming the folder and the pid") {
    const fs::path dir = temp_dir("locked");
    const fs::path data = small_data(dir, 4), out = dir / "run";
    const ewe::io::RunLock held(out);  // its own open file description: as another process
    const RunResult r = run({"train", "--data", data.string(), "--out", out.string(), "--epochs", "1", "--quiet"});
    INFO(r.err);
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--out: " + out.string() + " is in use by process " + std::to_string(::getpid())));
    CHECK_FALSE(fs::exists(out / "metrics.csv"));
    fs::remove_all(dir);
}

TEST_CASE("--resume refuses other data and any other given setting, naming both values; --epochs at or below the epochs done trains nothing") {
    const fs::path dir = temp_dir("mismatch");
    const fs::path data = small_data(dir, 8), out = dir / "run", other = dir / "other.npy";
    {
        const auto bytes = ewe::procedural_sheep(8, 11);
        ewe::io::write_npy<std::uint8_t>(other, bytes.data(), ewe::Shape{8, 784});
    }
    const RunResult first = run({"train", "--data", data.string(), "--out", out.string(), "--epochs", "1", "--seed", "5",
                                 "--batch", "4", "--latent", "2", "--width", "0.25", "--lr", "0.001", "--kl-start", "1",
                                 "--kl-steep", "1", "--quiet", "--snapshots", ""});
    REQUIRE_MESSAGE(first.rc == 0, first.err);
    const auto before = folder_bytes(out);
    const auto resume = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = {"train", "--out", out.string(), "--epochs", "2", "--resume", "--snapshots", ""};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    {  // other drawings, the same count: only the content hash tells
        const RunResult r = run(resume({"--data", other.string(), "--quiet"}));
        INFO(r.err);
        CHECK(r.rc != 0);
        CHECK(contains(r.err, "--resume: " + (out / "checkpoint.safetensors").string() + " was trained on data with hash 0x"));
        CHECK(contains(r.err, "small.npy, 8 drawings), this run's data with hash 0x"));
        CHECK(contains(r.err, "other.npy, 8 drawings)"));
    }
    expect_error(resume({"--data", data.string(), "--limit", "6", "--quiet"}), "small.npy, 6 drawings)");
    const std::vector<std::vector<std::string>> settings = {
        {"--seed", "5", "7"},         {"--batch", "4", "2"},         {"--lr", "0.001", "0.01"},
        {"--kl-start", "1", "2"},     {"--kl-steep", "1", "3"},      {"--latent", "2", "3"},
        {"--width", "0.25", "0.5"},   {"--reparam", "standard", "post"}, {"--product-precision", "fp32", "bf16"}};
    for (const auto& s : settings)
        expect_error(resume({"--data", data.string(), "--quiet", s[0], s[2]}),
                     "was trained with " + s[0] + " " + s[1] + ", this run asks for " + s[0] + " " + s[2]);
    CHECK(folder_bytes(out) == before);

    // The same values given, or left out (taken from the checkpoint), continue the run;
    // the same drawings under another file name are the same data.
    fs::copy_file(data, dir / "copy.npy");
    RunResult r = run(resume({"--data", (dir / "copy.npy").string(), "--quiet", "--seed", "5", "--lr", "0.001"}));
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.err, "Resuming from"));
    CHECK(contains(r.err, "from the checkpoint: --latent 2, --width 0.25, --reparam standard, --batch 4, --kl-start 1, "
                          "--kl-steep 1, --product-precision fp32"));
    CHECK(ewe::io::read_safetensors(out / "checkpoint.safetensors").meta("epoch") == "2");

    // --epochs at the epochs done: nothing to train, said so, nothing written, exit 0.
    const auto done = folder_bytes(out);
    r = run(resume({"--data", data.string()}));
    CHECK_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.err, "already holds epoch 2 of --epochs 2: nothing left to train, nothing written"));
    CHECK_FALSE(contains(r.err, "Wrote"));
    CHECK(folder_bytes(out) == done);
    // Below them: refused (--epochs is the total, not a number to add).
    std::vector<std::string> fewer = resume({"--data", data.string()});
    fewer[4] = "1";
    expect_error(fewer, "--epochs 1 is the total to reach, not a number to add: pass --epochs 3 or more");
    CHECK(folder_bytes(out) == done);
    fs::remove_all(dir);
}
