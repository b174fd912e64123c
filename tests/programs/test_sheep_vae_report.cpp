// `sheep_vae report` run in-process (sheep_vae_main, library sheep_vae_cli) on a tiny run
// of procedural sheep: a report from --run alone has every section, the missing ones as a
// line naming the command that produces them; a bad --run or --out is an error naming the
// flag; a given folder missing some files still gives a report; the sweep section renders
// a hand-made sweep.csv (tests/report/sweep_fixture) with any columns, escaped, and its
// roc_auc bar chart. The page in a real browser: tests/report/run.sh.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/io/npy.hpp>
#include <sheep_vae/sheep_vae.hpp>

#include "sheep_vae_run.hpp"

namespace fs = std::filesystem;

namespace {

using sheep_test::contains;
using sheep_test::run;
using sheep_test::RunResult;
using sheep_test::slurp;

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
}

// One epoch on 8 procedural sheep with snapshots after epoch 1, made once.
const fs::path& tiny_run() {
    static fs::path dir;
    if (!dir.empty()) return dir;
    const fs::path root = fs::temp_directory_path() / ("ewe_test_report_" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
    const auto bytes = ewe::procedural_sheep(8, 5);
    ewe::io::write_npy<std::uint8_t>(root / "sheep.npy", bytes.data(), ewe::Shape{8, 784});
    const RunResult r = run({"train", "--data", (root / "sheep.npy").string(), "--epochs", "1", "--snapshots", "1",
                             "--out", (root / "run").string(), "--quiet"});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    dir = root / "run";
    return dir;
}

}  // namespace

TEST_CASE("a report from --run alone: the model and training sections, a line for each missing input") {
    const fs::path run_dir = tiny_run();
    const fs::path html = run_dir.parent_path() / "only_run.html";
    const RunResult r = run({"report", "--run", run_dir.string(), "--out", html.string()});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const std::string page = slurp(html);
    CHECK(count(page, "<section") == 8);
    CHECK(contains(page, "12,857,845"));  // the summary's total, from the rebuilt model
    CHECK(contains(page, "conv2d_transpose_3 (Conv2DTranspose)"));
    CHECK(contains(page, "trained for 1 epochs (1 steps) on 8 drawings"));
    CHECK(contains(page, "latent_epoch001.svg"));
    CHECK(contains(page, "No --explore folder given (sheep_vae explore --checkpoint"));
    CHECK(count(page, "No --explore folder given") == 2);  // k-means and DBSCAN
    CHECK(contains(page, "No --anomalies folder given (sheep_vae anomalies --checkpoint"));
    CHECK(contains(page, "No --generate PNG given (sheep_vae generate --checkpoint"));
    CHECK(contains(page, "No --sweep folder given (sheep_vae sweep"));
    CHECK(count(page, "class=\"missing\"") == 5);
    CHECK(!contains(page, "<script"));
    CHECK(contains(r.err, "Wrote " + html.string()));
}

TEST_CASE("given folders with missing files: the sections say which file and which command") {
    const fs::path run_dir = tiny_run();
    const fs::path empty = run_dir.parent_path() / "empty";
    fs::create_directories(empty);
    const fs::path html = run_dir.parent_path() / "empty.html";
    const RunResult r = run({"report", "--run", run_dir.string(), "--explore", empty.string(), "--anomalies",
                             empty.string(), "--generate", (empty / "grid.png").string(), "--sweep", empty.string(),
                             "--out", html.string()});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const std::string page = slurp(html);
    CHECK(contains(page, "No " + (empty / "kmeans_elbow.svg").string() + " (written by sheep_vae explore)"));
    CHECK(contains(page, "No " + (empty / "dbscan_search.csv").string() + " (written by sheep_vae explore)"));
    CHECK(contains(page, "No " + (empty / "scores.csv").string() + " (written by sheep_vae anomalies)"));
    CHECK(contains(page, "No file " + (empty / "grid.png").string()));
    CHECK(contains(page, "No " + (empty / "sweep.csv").string()));
    CHECK(count(page, "<section") == 8);
}

TEST_CASE("bad --run, --out and --generate are errors naming the flag and the file") {
    const fs::path run_dir = tiny_run();
    const fs::path root = run_dir.parent_path();
    RunResult r = run({"report", "--run", (root / "nope").string(), "--out", (root / "x.html").string()});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--run: " + (root / "nope").string() + " does not exist (expected a folder)"));
    fs::create_directories(root / "no_metrics");
    r = run({"report", "--run", (root / "no_metrics").string(), "--out", (root / "x.html").string()});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "has no metrics.csv"));
    std::ofstream(root / "no_metrics" / "metrics.csv") << "epoch,step,loss\n";
    r = run({"report", "--run", (root / "no_metrics").string(), "--out", (root / "x.html").string()});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "has no checkpoint.safetensors"));
    r = run({"report", "--run", run_dir.string(), "--out", (root / "no_folder" / "x.html").string()});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--out: "));
    CHECK(contains(r.err, "does not exist"));
    r = run({"report", "--run", run_dir.string(), "--out", run_dir.string()});  // a folder, not a file
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--out: "));
    std::ofstream(root / "fake.png") << "this is not a PNG file at all";
    r = run({"report", "--run", run_dir.string(), "--generate", (root / "fake.png").string(), "--out",
             (root / "x.html").string()});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--generate " + (root / "fake.png").string() + ": not a PNG file"));
    CHECK(!fs::exists(root / "x.html"));
    r = run({"report", "--run", run_dir.string()});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, "--out"));
    r = run({"report", "--help"});
    CHECK(r.rc == 0);
    for (const char* flag : {"--run", "--out", "--explore", "--anomalies", "--generate", "--sweep"}) CHECK(contains(r.out, flag));
}

TEST_CASE("the sweep section: sweep.csv as a table (any columns, escaped) and a roc_auc bar chart by run") {
    const fs::path run_dir = tiny_run();
    const fs::path html = run_dir.parent_path() / "sweep.html";
    const RunResult r = run({"report", "--run", run_dir.string(), "--sweep", EWE_TEST_SWEEP_FIXTURE, "--out", html.string()});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const std::string page = slurp(html);
    CHECK(contains(page, "6 configurations"));
    CHECK(contains(page, "The highest anomaly ROC AUC, 0.8630, is latent4_w1&#39;s."));
    CHECK(contains(page, "<th>reconstruction_sse</th>"));
    CHECK(contains(page, "<th>note</th>"));
    CHECK(contains(page, "<td>&lt;b&gt;not bold&lt;/b&gt; &amp; escaped</td>"));
    CHECK(contains(page, "<td>half the units, &quot;collapsed&quot;</td>"));
    CHECK(contains(page, "<tr class=\"marked\"><td>latent4_w1</td>"));
    CHECK(contains(page, "Anomaly ROC AUC by run"));
    CHECK(count(page, "<svg") == 1);  // the bar chart, inline
    CHECK(contains(page, ">latent8_w2</text>"));
    CHECK(contains(page, ">n/a</text>"));  // the interrupted run has no roc_auc
    CHECK(!contains(page, "<b>not bold"));
    fs::remove_all(run_dir.parent_path());
}
