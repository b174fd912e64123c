// Sweeps (ewe/train/sweep.hpp) without a model: the grid and the configurations file give
// the points in order with their default names and refuse bad lines naming the file and
// line; a SweepFolder refuses a previous sweep, continues it only with the recorded
// settings (naming both values), overwrites only the sweep's files, and trains jobs in turn
// or several at a time, stopping all of them on a stop request or Ctrl-C (exit status 130);
// add_sweep_section quotes sweep.csv with the best run marked and charted.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/io/csv.hpp>
#include <ewe/io/html_report.hpp>
#include <ewe/train/run_report.hpp>
#include <ewe/train/sweep.hpp>

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("ewe_test_sweep_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ewe::Error& e) {
        return e.what();
    }
    return "(no error)";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Two parameters: an integer "depth" (required) and a positive "scale" (default 1).
const std::vector<ewe::SweepParameter> kParameters = {
    {"depth", "N", "3",
     [](double v, const std::string& where, const std::string& text) {
         if (v != std::floor(v) || v < 1) ewe::fail(where, ": depth must be a positive integer, found '", text, "'");
         return v;
     },
     std::nullopt},
    {"scale", "S", "0.5",
     [](double v, const std::string& where, const std::string& text) {
         if (!(v > 0)) ewe::fail(where, ": scale must be positive, found '", text, "'");
         return v;
     },
     1.0}};

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

TEST_CASE("sweep_grid: every value with every other, the last parameter fastest, named key+value") {
    const std::vector<ewe::SweepPoint> points = ewe::sweep_grid(kParameters, {{2, 3}, {0.5, 1, 2}}, {"--depth", "--scale"});
    REQUIRE(points.size() == 6);
    const std::vector<std::string> names = {"depth2_scale0.5", "depth2_scale1", "depth2_scale2",
                                            "depth3_scale0.5", "depth3_scale1", "depth3_scale2"};
    for (std::size_t i = 0; i < points.size(); ++i) {
        CHECK(points[i].name == names[i]);
        CHECK(points[i].values == std::vector<double>{i < 3 ? 2.0 : 3.0, std::vector<double>{0.5, 1, 2}[i % 3]});
        CHECK(points[i].origin == "--depth/--scale");
    }
    CHECK(message_of([] { ewe::sweep_grid(kParameters, {{2.5}, {1}}, {"--depth", "--scale"}); }) ==
          "--depth: depth must be a positive integer, found '2.5'");
    CHECK(message_of([] { ewe::sweep_grid(kParameters, {{2, 3, 2}, {1}}, {"--depth", "--scale"}); }) ==
          "--depth/--scale: duplicated configuration depth 2 scale 1");
    CHECK(ewe::valid_sweep_point_name("run-1.b_2"));
    for (const char* bad : {"", ".", "..", "a/b", "a b"}) CHECK_FALSE(ewe::valid_sweep_point_name(bad));
}

TEST_CASE("read_sweep_points: one point per line, defaults and names; bad lines name the file and the line") {
    const fs::path dir = temp_dir("points");
    const fs::path f = dir / "configs.txt";
    std::ofstream(f) << "# depth and scale\n\ndepth=2  # scale 1\ndepth=4 scale=0.25 name=deep\n";
    const std::vector<ewe::SweepPoint> points = ewe::read_sweep_points(f, kParameters, "--configs");
    REQUIRE(points.size() == 2);
    CHECK(points[0].name == "depth2_scale1");
    CHECK(points[0].values == std::vector<double>{2, 1});
    CHECK(points[0].origin == "--configs " + f.string() + ":3");
    CHECK(points[1].name == "deep");
    CHECK(points[1].values == std::vector<double>{4, 0.25});

    const auto error = [&](const std::string& text) {
        std::ofstream(f) << text;
        return message_of([&] { ewe::read_sweep_points(f, kParameters, "--configs"); });
    };
    const std::string at = "--configs " + f.string();
    CHECK(error("") == at + ": no configuration (expected lines like 'depth=3 scale=0.5')");
    CHECK(error("depth=2\ndepth=3 scale=big\n") == at + ":2: scale = 'big' is not a number");
    CHECK(error("depth=2 width=3\n") == at + ":1: unknown key 'width' (expected depth, scale or name)");
    CHECK(error("depth 2\n") == at + ":1: expected key=value (depth=N scale=S name=NAME), found 'depth'");
    CHECK(error("depth=\n") == at + ":1: expected key=value (depth=N scale=S name=NAME), found 'depth='");
    CHECK(error("scale=2\n") == at + ":1: no depth=N on the line");
    CHECK(error("depth=2 depth=3\n") == at + ":1: 'depth' is given twice");
    CHECK(error("depth=0\n") == at + ":1: depth must be a positive integer, found '0'");
    CHECK(error("depth=2 name=../up\n") ==
          at + ":1: name '../up' must be letters, digits, '_', '-' or '.' (it names a folder)");
    CHECK(error("depth=2\ndepth=2 scale=1\n") == at + ":2: duplicated configuration depth 2 scale 1 (also " + at + ":1)");
    CHECK(error("depth=2 name=a\ndepth=3 name=a\n") == at + ":2: duplicated run name 'a' (also " + at + ":1)");
    CHECK(contains(message_of([&] { ewe::read_sweep_points(dir / "none.txt", kParameters, "--configs"); }),
                   "--configs: " + (dir / "none.txt").string() + " does not exist"));
    fs::remove_all(dir);
}

TEST_CASE("SweepFolder: a previous sweep is refused, resumed with the recorded settings only, or overwritten") {
    const fs::path dir = temp_dir("folder");
    using Rule = ewe::RunSetting::Rule;
    const auto settings = [](const std::string& seed, const std::string& hash, const std::string& epochs) {
        return std::vector<ewe::RunSetting>{{"data", "data " + hash, Rule::note, "", ""},
                                              {"data_hash", hash, Rule::same, "data", "--data"},
                                              {"--seed", seed, Rule::same, "", ""},
                                              {"--epochs", epochs, Rule::at_least, "", ""}};
    };
    std::ostringstream log;
    ewe::SweepFolderOptions options{.log = &log, .folder_name = "--out", .resume_name = "--resume",
                                    .overwrite_name = "--overwrite"};
    {
        ewe::SweepFolder folder(dir, {"a", "b"}, settings("1", "h1", "2"), options);
        CHECK_THROWS_AS(ewe::io::RunLock{dir}, ewe::io::RunFolderBusy);  // locked while it lives
        folder.record_settings();
        fs::create_directories(folder.run_dir("a"));
        std::ofstream(folder.run_dir("a") / "metrics.csv") << "epoch\n1\n";
        folder.write_results({{"run", "x"}, {"a", "1"}});
    }
    CHECK(ewe::io::read_csv(dir / "sweep.csv") == std::vector<std::vector<std::string>>{{"run", "x"}, {"a", "1"}});
    CHECK(slurp(dir / "sweep_settings.csv") == "setting,value\ndata,data h1\ndata_hash,h1\n--seed,1\n--epochs,2\n");
    std::ofstream(dir / "notes.txt") << "kept";
    const auto refused = [&](std::vector<ewe::RunSetting> s, const ewe::SweepFolderOptions& o) {
        try {
            ewe::SweepFolder folder(dir, {"a", "b"}, std::move(s), o);
        } catch (const ewe::SweepRefused& e) {
            return std::string(e.what());
        }
        return std::string("(not refused)");
    };
    CHECK(refused(settings("1", "h1", "2"), options) ==
          "--out: " + dir.string() + " already holds a run; pass --resume to continue the sweep (finished runs are "
          "kept), or --overwrite to delete its files and start over (found: sweep.csv, sweep_settings.csv, a/ "
          "(metrics.csv); other files are kept)");
    ewe::SweepFolderOptions resume = options;
    resume.resume = true;
    const std::string who = "--resume: " + (dir / "sweep_settings.csv").string();
    CHECK(refused(settings("7", "h1", "2"), resume) ==
          who + ": the sweep was run with --seed 1, this one asks for --seed 7; use the same --seed to continue it, or "
                "another --out");
    CHECK(refused(settings("1", "h2", "2"), resume) ==
          who + ": the sweep was run on data h1, this one's data h2; use the same --data to continue it, or another --out");
    CHECK(refused(settings("1", "h1", "1"), resume) ==
          who + ": the sweep was run with --epochs 2, this one asks for --epochs 1, which would leave runs of both "
                "lengths in sweep.csv; pass --epochs 2 or more");
    CHECK(refused(settings("1", "h1", "3"), resume) == "(not refused)");  // the epochs may grow
    CHECK(refused({{"--lr", "0.1", Rule::same, "", ""}}, resume) == who + " has no '--lr' row (expected setting,value rows as sweep writes them)");
    CHECK(slurp(dir / "sweep_settings.csv") == "setting,value\ndata,data h1\ndata_hash,h1\n--seed,1\n--epochs,2\n");

    ewe::SweepFolderOptions overwrite = options;
    overwrite.overwrite = true;
    { ewe::SweepFolder folder(dir, {"a", "b"}, settings("7", "h1", "1"), overwrite); }
    CHECK(contains(log.str(), "--overwrite: deleted the previous sweep in " + dir.string() +
                                  " (sweep.csv, sweep_settings.csv, a/ (metrics.csv))"));
    for (const char* gone : {"sweep.csv", "sweep_settings.csv", "a/metrics.csv"}) CHECK_FALSE(fs::exists(dir / gone));
    CHECK(slurp(dir / "notes.txt") == "kept");
    fs::remove_all(dir);
}

TEST_CASE("SweepFolder::train: jobs in turn or two at a time; a stop or Ctrl-C ends the sweep with 130") {
    const fs::path dir = temp_dir("train");
    std::ostringstream log;
    ewe::SweepFolderOptions options{.log = &log};
    ewe::SweepFolder folder(dir, {"a", "b", "c"}, {}, options);
    const std::vector<ewe::SweepJob> jobs = {{"a", "first", 0, 1}, {"b", "second", 1, 2}, {"c", "third", 0, 3}};
    {
        ewe::SweepFolder in_turn(dir / "in_turn", {"a", "b", "c"}, {}, options);
        std::vector<std::size_t> order;
        CHECK(in_turn.train(jobs, 3, 1, "", [&](std::size_t k, const ewe::SweepJobContext& job) {
            CHECK_FALSE(job.concurrent);
            CHECK(&job.log == &log);
            order.push_back(k);
            return true;
        }) == 0);
        CHECK(order == std::vector<std::size_t>{0, 1, 2});
        CHECK(contains(log.str(), "[1/3] a: first, epochs 1..3 (about 1 s; 6 s left in the sweep)\n"));
        CHECK(contains(log.str(), "[2/3] b: second, epochs 2..3 (about 2 s; "));
        CHECK(contains(log.str(), "[3/3] c: done in "));
        // A job that does not train through ends the sweep at once.
        order.clear();
        CHECK(in_turn.train(jobs, 3, 1, "", [&](std::size_t k, const ewe::SweepJobContext&) {
            order.push_back(k);
            return k != 1;
        }) == 130);
        CHECK(order == std::vector<std::size_t>{0, 1});
        CHECK(contains(log.str(), "sweep: interrupted during b; finished runs are kept in " + (dir / "in_turn").string() +
                                      " and resume continues the sweep\n"));
    }
    {  // Ctrl-C requests the stop of the job's token; the handler is restored afterwards.
        const auto before = std::signal(SIGINT, SIG_DFL);
        std::signal(SIGINT, before);
        ewe::SweepFolder in_turn(dir / "sigint", {"a", "b", "c"}, {}, options);
        CHECK(in_turn.train(jobs, 3, 1, "", [&](std::size_t, const ewe::SweepJobContext& job) {
            std::raise(SIGINT);
            return !job.stop.stop_requested();
        }) == 130);
        const auto after = std::signal(SIGINT, SIG_DFL);
        std::signal(SIGINT, after);
        CHECK((after == before));
    }
    {  // Two at a time: every job once, its messages in DIR/<run>/train.log, its epochs counted.
        std::mutex mutex;
        std::multiset<std::size_t> ran;
        CHECK(folder.train(jobs, 3, 2, "one device", [&](std::size_t k, const ewe::SweepJobContext& job) {
            CHECK(job.concurrent);
            job.log << "job " << k << "\n";
            job.epoch_done(3);
            const std::lock_guard<std::mutex> lock(mutex);
            ran.insert(k);
            return true;
        }) == 0);
        CHECK(ran == std::multiset<std::size_t>{0, 1, 2});
        CHECK(slurp(dir / "b" / "train.log") == "job 1\n");
        // A stop request ends the others early; the sweep says how to continue.
        std::atomic<int> started{0};
        CHECK(folder.train(jobs, 3, 2, "one device", [&](std::size_t, const ewe::SweepJobContext& job) {
            ++started;
            job.stop.request_stop();
            return false;
        }) == 130);
        CHECK(started.load() <= 2);
    }
    std::ostringstream table;
    ewe::write_text_table(table, {{"run", "loss"}, {"a", "1.5"}, {"long_name", "10.25"}});
    CHECK(table.str() == "run         loss\na            1.5\nlong_name  10.25\n");
    CHECK(ewe::duration_text(5) == "5 s");
    CHECK(ewe::duration_text(150) == "2.5 min");
    CHECK(ewe::duration_text(7200) == "2.0 h");
    fs::remove_all(dir);
}

TEST_CASE("add_sweep_section: the table of sweep.csv, the highest score marked and charted; a note without it") {
    const fs::path dir = temp_dir("report");
    ewe::io::HtmlReport empty("t");
    ewe::add_sweep_section(empty, "Sweep", dir, "auc", "anomaly ROC AUC", "my_sweep writes it");
    CHECK(contains(empty.str(), "No " + (dir / "sweep.csv").string() + " (my_sweep writes it)."));
    ewe::io::write_csv(dir / "sweep.csv", {{"run", "auc", "note"}, {"a", "0.5", "x<y"}, {"b", "0.75", ""}, {"c", "", ""}});
    ewe::io::HtmlReport page("t");
    ewe::add_sweep_section(page, "Sweep", dir, "auc", "anomaly ROC AUC", "my_sweep writes it");
    const std::string html = page.str();
    CHECK(contains(html, "3 configurations trained with the same seed and data, one row each (sweep.csv). The highest "
                         "anomaly ROC AUC, 0.7500, is b&#39;s."));
    CHECK(contains(html, "<tr class=\"marked\"><td>b</td>"));
    CHECK(contains(html, "<td>x&lt;y</td>"));
    CHECK(contains(html, "Anomaly ROC AUC by run"));
    CHECK(contains(html, ">n/a</text>"));  // c has no score
    CHECK(contains(html, "auc of each run (sweep.csv)"));
    ewe::io::HtmlReport without("t");  // no such column: the table alone
    ewe::add_sweep_section(without, "Sweep", dir, "loss", "loss", "my_sweep writes it");
    CHECK_FALSE(contains(without.str(), "<svg"));
    CHECK_FALSE(contains(without.str(), "marked\"><td>"));
    fs::remove_all(dir);
}
