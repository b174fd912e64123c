// `sheep_vae sweep`: the post's next step, several model shapes trained from one
// command and compared. Each configuration (latent size x width multiplier, from
// --latent/--width or a --configs file) trains as `train` does (train_run) in its own
// folder OUT/<name>/ on the same data with the same seed; then every finished run is
// scored from its checkpoint and metrics.csv into OUT/sweep.csv (written atomically)
// and a table. On the CPU the runs go one after another, with an estimate of the
// total time from a short timing of each configuration at the start; on CUDA
// --concurrent N trains N at a time on one GPU (a Context, so a stream, per model), and
// the timing runs the configurations both ways to measure the speed-up. Ctrl-C keeps
// every finished epoch; --resume skips finished runs and continues the others, after
// checking the data (content hash) and settings against OUT/sweep_settings.csv and each
// run's checkpoint; --overwrite deletes a previous sweep's files first. OUT and each run
// folder are locked while the sweep uses them.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ewe/anomaly/feature_taps.hpp>
#include <ewe/anomaly/scores.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/fingerprint.hpp>
#include <ewe/io/run_lock.hpp>
#include <ewe/io/files.hpp>
#include <ewe/models/vae_inference.hpp>
#include <ewe/train/interrupt.hpp>
#include <ewe/train/posterior_monitor.hpp>
#include <ewe/train/run_folder.hpp>
#include <ewe/train/run_jobs.hpp>
#include <ewe/train/trainer.hpp>

namespace sheep {

namespace {

struct SweepOptions {
    std::string data;
    bool data_given = false;  // --data was on the command line ('' included, which load_bitmaps refuses)
    std::int64_t limit = 0;
    std::string latents = "2,3,4,8";
    std::string widths = "0.5,1";
    std::string configs_file;
    std::int64_t epochs = 30;
    std::int64_t batch = 8;
    double kl_start = 10, kl_steep = 10;
    double lr = 1e-3;
    std::uint64_t seed = 42;
    std::string reparam = "standard";
    std::string snapshots = "5,10,15,20";
    std::int64_t monitor = 256;
    std::string plant;
    std::string out;
    std::string device = "cpu";
    int threads = 0;
    int concurrent = 1;
    std::int64_t timing_steps = 0;
    bool resume = false;
    bool overwrite = false;
    bool quiet = false;
};

// One configuration of the sweep; `origin` says where it was given ("--latent/--width"
// or FILE:LINE), for errors.
struct SweepRun {
    std::string name;
    std::int64_t latent = 2;
    double width = 1;
    std::string origin;
};

// A width as a folder name: "%g", e.g. latent2_width0.5.
std::string number_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

std::string default_name(std::int64_t latent, double width) {
    return "latent" + std::to_string(latent) + "_width" + number_text(width);
}

bool valid_name(const std::string& name) {
    return !name.empty() && name != "." && name != ".." &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
           });
}

std::int64_t latent_value(double v, const std::string& where, const std::string& text) {
    if (!(v >= 1 && v <= 4096 && v == std::floor(v)))
        fail(where, ": a latent size must be an integer in [1, 4096], found '", text, "'");
    return std::int64_t(v);
}

double width_value(double v, const std::string& where, const std::string& text) {
    if (!(v > 0 && v <= ewe::SheepVaeOptions::kMaxWidth))
        fail(where, ": a width must be a number in (0, ", ewe::format_number(ewe::SheepVaeOptions::kMaxWidth),
             "] (1: the post's model, 0.5: half the filters and units), found '", text, "'");
    return v;
}

// Refuses two configurations with the same shape or the same name.
void check_unique(const std::vector<SweepRun>& runs) {
    for (std::size_t i = 0; i < runs.size(); ++i)
        for (std::size_t j = 0; j < i; ++j) {
            const std::string also = runs[i].origin == runs[j].origin ? "" : " (also " + runs[j].origin + ")";
            if (runs[i].latent == runs[j].latent && runs[i].width == runs[j].width)
                fail(runs[i].origin, ": duplicated configuration latent ", runs[i].latent, " width ",
                     ewe::format_number(runs[i].width), also);
            if (runs[i].name == runs[j].name)
                fail(runs[i].origin, ": duplicated run name '", runs[i].name, "'", also);
        }
}

// --latent A,B,... x --width U,V,...: every latent size at every width.
std::vector<SweepRun> runs_from_flags(const std::string& latents, const std::string& widths) {
    std::vector<std::int64_t> l;
    for (double v : parse_numbers(latents, "--latent")) l.push_back(latent_value(v, "--latent", number_text(v)));
    std::vector<double> w;
    for (double v : parse_numbers(widths, "--width")) w.push_back(width_value(v, "--width", ewe::format_number(v)));
    std::vector<SweepRun> runs;
    for (std::int64_t latent : l)
        for (double width : w) runs.push_back({default_name(latent, width), latent, width, "--latent/--width"});
    check_unique(runs);
    return runs;
}

// The --configs file: one configuration per line, `latent=N [width=W] [name=NAME]`
// (width 1 and name latentN_widthW by default); blank lines and text after '#' are
// ignored. The file must be a regular text file of at most 1 MiB (never a FIFO or a
// device, which could block or read without end).
std::vector<SweepRun> runs_from_file(const fs::path& path) {
    std::istringstream in(ewe::io::read_text_file(path, "--configs", std::uintmax_t(1) << 20));
    std::vector<SweepRun> runs;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const std::string where = "--configs " + path.string() + ":" + std::to_string(number);
        line = line.substr(0, line.find('#'));
        std::istringstream fields(line);
        std::string field;
        SweepRun c;
        c.origin = where;
        bool has_latent = false, has_name = false, has_width = false, any = false;
        while (fields >> field) {
            any = true;
            const std::size_t eq = field.find('=');
            const std::string key = field.substr(0, eq), value = eq == std::string::npos ? "" : field.substr(eq + 1);
            if (eq == std::string::npos || value.empty())
                fail(where, ": expected key=value (latent=N width=W name=NAME), found '", field, "'");
            if (key != "latent" && key != "width" && key != "name")
                fail(where, ": unknown key '", key, "' (expected latent, width or name)");
            bool& seen = key == "latent" ? has_latent : key == "width" ? has_width : has_name;
            if (seen) fail(where, ": '", key, "' is given twice");
            seen = true;
            if (key == "name") {
                if (!valid_name(value))
                    fail(where, ": name '", value, "' must be letters, digits, '_', '-' or '.' (it names a folder)");
                c.name = value;
                continue;
            }
            char* end = nullptr;
            const double v = std::strtod(value.c_str(), &end);
            if (end == value.c_str() || *end != '\0' || !std::isfinite(v))
                fail(where, ": ", key, " = '", value, "' is not a number");
            if (key == "latent") c.latent = latent_value(v, where, value);
            else c.width = width_value(v, where, value);
        }
        if (!any) continue;
        if (!has_latent) fail(where, ": no latent=N on the line");
        if (!has_name) c.name = default_name(c.latent, c.width);
        runs.push_back(c);
    }
    if (runs.empty())
        fail("--configs ", path.string(), ": no configuration (expected lines like 'latent=2 width=0.5')");
    check_unique(runs);
    return runs;
}

// Counts a run's finished epochs into `epochs_done`, for the progress lines of concurrent runs.
class CountEpochs final : public ewe::Callback<float> {
public:
    explicit CountEpochs(std::atomic<std::int64_t>& epochs_done) : epochs_done_(epochs_done) {}
    void on_epoch_end(ewe::Trainer<float>&, const ewe::EpochLogs& logs) override { epochs_done_.store(logs.epoch); }

private:
    std::atomic<std::int64_t>& epochs_done_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string duration_text(double seconds) {
    char buf[64];
    if (seconds < 90) std::snprintf(buf, sizeof buf, "%.0f s", seconds);
    else if (seconds < 5400) std::snprintf(buf, sizeof buf, "%.1f min", seconds / 60);
    else std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
    return buf;
}

// Seconds per training step of each configuration: a fresh model trains `steps` steps
// to warm up (on CUDA: the eager step and the graph capture), then `steps` timed ones,
// on the first drawings; nothing is written. `workers` > 1 times them concurrently.
struct Timing {
    std::vector<double> step_seconds;
    double wall_seconds = 0;
};

Timing time_configurations(const std::vector<SweepRun>& runs, const ewe::SheepVaeOptions& base,
                           const RunSettings& run, const Bitmaps& data, ewe::Device device, int threads,
                           std::int64_t steps, int workers) {
    const std::int64_t rows = 2 * steps * run.batch, n = data.count();
    ewe::Tensor<float> images(ewe::Shape{rows, kSide, kSide, 1});
    for (std::int64_t i = 0; i < rows; ++i) std::copy_n(data.row(i % n), kPixels, images.data() + i * kPixels);
    struct Clock final : ewe::Callback<float> {
        std::int64_t steps;
        double warm = 0, end = 0;
        explicit Clock(std::int64_t s) : steps(s) {}
        void on_batch_end(ewe::Trainer<float>&, const ewe::BatchLogs& logs) override {
            const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
            (logs.step == steps ? warm : end) = now;
        }
    };
    Timing t;
    t.step_seconds.assign(runs.size(), 0.0);
    const auto t0 = std::chrono::steady_clock::now();
    ewe::run_jobs(runs.size(), workers, [&](std::size_t i) {
        ewe::SheepVaeOptions model_options = base;
        model_options.latent = runs[i].latent;
        model_options.width = runs[i].width;
        ewe::ContextOptions context_options;
        context_options.threads = threads;
        ewe::Context ctx(device, context_options);
        ewe::SheepVae<float> vae = model_for_batch(ctx, model_options, run.batch, run.seed, "--batch");
        ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, run.batch);
        ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = run.lr});
        ewe::VaeObjective<float> objective(vae, loss);
        ewe::FitOptions fit;
        fit.batch_size = run.batch;
        fit.shuffle = false;
        fit.metrics_every = steps;  // two reads (device syncs): after the warm-up and at the end
        fit.handle_sigint = false;
        ewe::Trainer<float> trainer(ctx, objective, optimizer, fit);
        const auto clock = std::make_shared<Clock>(steps);
        trainer.add(clock);
        trainer.fit(images.view());
        t.step_seconds[i] = (clock->end - clock->warm) / double(steps);
    });
    t.wall_seconds = seconds_since(t0);
    return t;
}

// The last row of a run's metrics.csv by column name, and the sum of its seconds.
struct FinalMetrics {
    double loss = 0, seconds = 0;
};

FinalMetrics final_metrics(const fs::path& path) {
    if (!fs::exists(path)) fail("sweep: ", path.string(), " is missing (the run folder is incomplete)");
    const ewe::io::CsvTable table = ewe::io::CsvTable::read(path);
    if (table.rows.empty()) fail("sweep: ", path.string(), " has no epoch rows");
    FinalMetrics m;
    for (double s : table.numbers("seconds")) m.seconds += s;
    m.loss = table.numbers("loss").back();
    return m;
}

// One row of sweep.csv: a finished run scored from its checkpoint and metrics.csv.
struct SweepRow {
    std::string run;
    std::int64_t latent = 0, parameters = 0, epochs = 0, active_units = 0;
    double width = 1, seconds = 0, loss = 0, reconstruction_sse = 0, kl = 0;
    double roc_auc = NAN, precision_at_n = NAN;
};

// `scored` holds the training drawings and then the `planted` ones.
// The thread count is --threads, as in training (the scores do not depend on it).
SweepRow score_run(const SweepRun& c, const fs::path& dir, const Bitmaps& scored, std::int64_t planted,
                   ewe::Device device, int threads) {
    LoadedModel m = load_model(dir / "checkpoint.safetensors", device, 128, threads);
    SweepRow row;
    row.run = c.name;
    row.latent = m.checkpoint.model_options.latent;
    row.width = m.checkpoint.model_options.width;
    row.parameters = m.vae->params().total_count();
    row.epochs = m.checkpoint.progress.epoch;
    const FinalMetrics metrics = final_metrics(dir / "metrics.csv");
    row.seconds = metrics.seconds;
    row.loss = metrics.loss;
    const std::int64_t n = scored.count(), normal = n - planted;
    const ewe::anomaly::TappedPass all = ewe::anomaly::tapped_pass<float>(*m.ctx, *m.vae, scored.images.view(), {});
    ewe::VaeEncoding<float> training;
    training.latent = all.latent;
    training.mean.assign(all.mean.begin(), all.mean.begin() + normal * all.latent);
    training.log_var.assign(all.log_var.begin(), all.log_var.begin() + normal * all.latent);
    const ewe::PosteriorStatistics posterior = ewe::posterior_statistics(training);
    for (double kl : posterior.kl_per_dimension) row.kl += kl;
    row.active_units = posterior.active_units;
    for (std::int64_t i = 0; i < normal; ++i) row.reconstruction_sse += all.sse[std::size_t(i)];
    row.reconstruction_sse /= double(normal);
    if (planted > 0) {
        std::vector<std::uint8_t> labels(std::size_t(n), 0);
        std::fill(labels.begin() + normal, labels.end(), 1);
        row.roc_auc = ewe::anomaly::roc_auc(all.sse, labels);
        row.precision_at_n = ewe::anomaly::precision_at_k(all.sse, labels, planted);
    }
    return row;
}

const std::vector<std::string> kColumns = {"run",     "latent",   "width",    "parameters",
                                           "epochs",  "seconds",  "loss",     "reconstruction_sse",
                                           "kl",      "active_units", "roc_auc", "precision_at_n"};

std::vector<std::string> row_fields(const SweepRow& r, bool table) {
    const auto num = [&](double v, const char* format) {
        if (std::isnan(v)) return std::string();
        if (!table) return ewe::io::csv_number(v);
        char buf[48];
        std::snprintf(buf, sizeof buf, format, v);
        return std::string(buf);
    };
    return {r.run, std::to_string(r.latent), number_text(r.width), std::to_string(r.parameters),
            std::to_string(r.epochs), num(r.seconds, "%.1f"), num(r.loss, "%.3f"), num(r.reconstruction_sse, "%.3f"),
            num(r.kl, "%.4f"), std::to_string(r.active_units), num(r.roc_auc, "%.4f"), num(r.precision_at_n, "%.3f")};
}

void write_sweep_csv(const fs::path& path, const std::vector<SweepRow>& rows) {
    std::vector<std::vector<std::string>> lines{kColumns};
    for (const SweepRow& r : rows) lines.push_back(row_fields(r, false));
    ewe::io::write_csv(path, lines);
}

// The settings a sweep's runs share and a --resume must not change, as OUT/
// sweep_settings.csv records them: the data (its description, then the content hash and
// drawing count that are compared: the same file under another path is the same data),
// the run settings but the shape (--latent and --width differ between runs) and --epochs
// (which a resume may raise).
std::vector<Setting> sweep_setting_values(const ewe::SheepVaeOptions& base, const RunSettings& settings,
                                          std::int64_t epochs) {
    std::vector<Setting> values{{"data", data_text(settings)},
                                {"data_hash", ewe::io::hash_text(settings.data_hash)},
                                {"drawings", std::to_string(settings.samples)}};
    for (const Setting& s : run_setting_values(base, settings))
        if (s.flag != "--latent" && s.flag != "--width") values.push_back(s);
    values.push_back({"--epochs", std::to_string(epochs)});
    return values;
}

void write_sweep_settings(const fs::path& path, const std::vector<Setting>& values) {
    std::vector<std::vector<std::string>> lines{{"setting", "value"}};
    for (const Setting& s : values) lines.push_back({s.flag, s.value});
    ewe::io::write_csv(path, lines);
}

// Refuses to continue the sweep of `path` (OUT/sweep_settings.csv) with other data or
// settings, naming both values; --epochs may only grow.
void check_sweep_settings(const fs::path& path, const std::vector<Setting>& now) {
    const ewe::io::CsvTable table = ewe::io::CsvTable::read(path);
    const std::size_t setting = table.column("setting"), value = table.column("value");
    const auto recorded = [&](const std::string& key) {
        const auto row = std::find_if(table.rows.begin(), table.rows.end(),
                                      [&](const std::vector<std::string>& r) { return r[setting] == key; });
        if (row == table.rows.end())
            fail("--resume: ", path.string(), " has no '", key, "' row (expected setting,value rows as sweep writes "
                 "them)");
        return (*row)[value];
    };
    for (const Setting& s : now) {
        const std::string before = recorded(s.flag);
        if (before == s.value || s.flag == "data") continue;
        if (s.flag == "data_hash" || s.flag == "drawings")
            fail("--resume: ", path.string(), ": the sweep was run on ", recorded("data"), ", this one's ", now[0].value,
                 "; use the same --data and --limit to continue it, or another --out");
        if (s.flag == "--epochs") {
            if (std::atoll(before.c_str()) <= std::atoll(s.value.c_str())) continue;
            fail("--resume: ", path.string(), ": the sweep was run with --epochs ", before, ", this one asks for "
                 "--epochs ", s.value, ", which would leave runs of both lengths in sweep.csv; pass --epochs ", before,
                 " or more");
        }
        fail("--resume: ", path.string(), ": the sweep was run with ", s.flag, " ", before, ", this one asks for ",
             s.flag, " ", s.value, "; use the same ", s.flag, " to continue it, or another --out");
    }
}

void print_table(std::ostream& out, const std::vector<SweepRow>& rows) {
    std::vector<std::vector<std::string>> cells{kColumns};
    for (const SweepRow& r : rows) cells.push_back(row_fields(r, true));
    std::vector<std::size_t> widths(kColumns.size(), 0);
    for (const auto& row : cells)
        for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    for (const auto& row : cells) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            const std::string pad(widths[i] - row[i].size(), ' ');
            out << (i ? "  " : "") << (i == 0 ? row[i] + pad : pad + row[i]);
        }
        out << '\n';
    }
}

int run_sweep(const SweepOptions& o, const Console& io) {
    const ewe::Device device = parse_device(o.device);
    if (o.concurrent > 1 && device != ewe::Device::cuda)
        fail("--concurrent: configurations train concurrently on CUDA only (--device cuda); on the CPU they run "
             "one after another");
    const std::vector<SweepRun> runs =
        o.configs_file.empty() ? runs_from_flags(o.latents, o.widths) : runs_from_file(o.configs_file);
    const std::vector<std::int64_t> snapshots = parse_epochs(o.snapshots, "--snapshots");
    const fs::path out = o.out;
    const Bitmaps data = o.data_given ? load_bitmaps(o.data, o.limit) : default_bitmaps(o.limit, o.seed);
    Bitmaps scored{ewe::Tensor<float>::copy_of(data.images.view(), ewe::Device::cpu), data.source};
    const Planted planted = o.plant.empty() ? Planted{} : plant_drawings(scored, o.plant, "--plant", io.err);

    ewe::SheepVaeOptions base;
    base.reparam = o.reparam == "post" ? ewe::ReparamVariant::post : ewe::ReparamVariant::standard;
    const RunSettings settings{o.seed,         o.batch,     o.lr, o.kl_start, o.kl_steep, data.count(), data.source,
                               ewe::io::content_hash<float>(data.images.view())};
    const std::vector<Setting> shared_settings = sweep_setting_values(base, settings, o.epochs);
    std::vector<std::string> every_setting;
    for (const Setting& s : run_setting_values(base, settings)) every_setting.push_back(s.flag);

    // OUT is this sweep's until it ends; what a previous sweep left there is continued
    // (--resume), deleted (--overwrite) or refused.
    const auto lock = lock_run_folder(out);
    const fs::path settings_path = out / "sweep_settings.csv";
    std::vector<fs::path> sweep_files;
    for (const char* name : {"sweep.csv", "sweep_settings.csv"})
        if (fs::exists(out / name)) sweep_files.push_back(out / name);
    if (!o.resume) {
        std::string found;
        for (const fs::path& f : sweep_files) found += (found.empty() ? "" : ", ") + f.filename().string();
        for (const SweepRun& c : runs) {
            const std::vector<fs::path> files = ewe::run_files(out / c.name);
            if (!files.empty())
                found += (found.empty() ? "" : ", ") + c.name + "/ (" + ewe::run_files_text(out / c.name, files) + ")";
        }
        if (!found.empty() && !o.overwrite)
            fail("--out: ", out.string(), " already holds a run; pass --resume to continue the sweep (finished runs "
                 "are kept), or --overwrite to delete its files and start over (found: ", found, "; other files are "
                 "kept)");
        if (!found.empty()) {
            for (const fs::path& f : sweep_files) {
                std::error_code ec;
                fs::remove(f, ec);
                if (ec) fail("--overwrite: cannot delete ", f.string(), ": ", ec.message());
            }
            for (const SweepRun& c : runs) {
                const fs::path dir = out / c.name;
                const auto run_lock = lock_run_folder(dir);
                ewe::delete_run_files(dir, ewe::run_files(dir), "--overwrite");
                std::error_code ignore;
                fs::remove(dir / "train.log", ignore);
            }
            print(io.err, "--overwrite: deleted the previous sweep in %s (%s)\n", out.string().c_str(), found.c_str());
        }
    } else if (fs::exists(settings_path)) {
        check_sweep_settings(settings_path, shared_settings);
    }

    // Which runs are finished, which continue, which start.
    std::vector<std::size_t> pending;
    std::vector<std::int64_t> done_epochs(runs.size(), 0);
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const fs::path checkpoint = out / runs[i].name / "checkpoint.safetensors";
        if (!fs::exists(checkpoint)) {
            pending.push_back(i);
            continue;
        }
        const SheepCheckpoint c = read_checkpoint(checkpoint, "--resume");
        if (c.model_options.latent != runs[i].latent || c.model_options.width != runs[i].width)
            fail("--resume: ", checkpoint.string(), " is a run of latent ", c.model_options.latent, " width ",
                 number_text(c.model_options.width), ", not of ", runs[i].origin, "'s latent ", runs[i].latent,
                 " width ", number_text(runs[i].width));
        ewe::SheepVaeOptions model_options = base;
        model_options.latent = runs[i].latent;
        model_options.width = runs[i].width;
        check_resume(c, checkpoint, model_options, settings, every_setting);
        done_epochs[i] = c.progress.epoch;
        if (c.progress.epoch < o.epochs) pending.push_back(i);
        else print(io.err, "%s: finished (%lld epochs), skipped\n", runs[i].name.c_str(), (long long)c.progress.epoch);
    }
    write_sweep_settings(settings_path, shared_settings);

    const int workers = device == ewe::Device::cuda ? std::max(1, o.concurrent) : 1;
    const std::int64_t steps_per_epoch = (data.count() + o.batch - 1) / o.batch;
    std::vector<double> estimate(runs.size(), 0.0);  // seconds, one after another
    double speedup = 1, timed_sequential = 0, timed_concurrent = 0;
    std::vector<SweepRun> pending_runs;
    for (std::size_t i : pending) pending_runs.push_back(runs[i]);
    if (!pending.empty()) {
        const std::int64_t steps = o.timing_steps > 0 ? o.timing_steps : device == ewe::Device::cuda ? 25 : 3;
        print(io.err, "Timing %zu configuration%s (%lld steps each after %lld of warm-up)...\n", pending.size(),
              pending.size() == 1 ? "" : "s", (long long)steps, (long long)steps);
        const Timing sequential = time_configurations(pending_runs, base, settings, data, device, o.threads, steps, 1);
        timed_sequential = sequential.wall_seconds;
        double total = 0;
        for (std::size_t k = 0; k < pending.size(); ++k) {
            const std::size_t i = pending[k];
            estimate[i] = sequential.step_seconds[k] * double(steps_per_epoch * (o.epochs - done_epochs[i]));
            total += estimate[i];
        }
        if (workers > 1) {
            const Timing together =
                time_configurations(pending_runs, base, settings, data, device, o.threads, steps, workers);
            timed_concurrent = together.wall_seconds;
            speedup = timed_sequential / std::max(timed_concurrent, 1e-9);
            print(io.err, "Timing: one after another %.2f s, %d at a time %.2f s: speed-up %.2fx\n", timed_sequential,
                  workers, timed_concurrent, speedup);
        }
        print(io.err, "Sweep of %zu configurations (%zu to train, %lld epochs of %lld steps each) on %s: about %s%s\n",
              runs.size(), pending.size(), (long long)o.epochs, (long long)steps_per_epoch, ewe::to_string(device),
              duration_text(total / speedup).c_str(),
              workers > 1 ? (" (" + duration_text(total) + " one after another)").c_str() : "");
    }

    const auto train_start = std::chrono::steady_clock::now();
    const auto make_run = [&](std::size_t i) {
        TrainRun r;
        r.dir = out / runs[i].name;
        r.model_options = base;
        r.model_options.latent = runs[i].latent;
        r.model_options.width = runs[i].width;
        r.settings = settings;
        r.given_settings = every_setting;
        r.epochs = o.epochs;
        r.resume = o.resume;
        // A folder without a checkpoint holds at most what a run that finished no epoch
        // left (the checks above refused anything else): it starts over.
        r.overwrite = !fs::exists(r.dir / "checkpoint.safetensors");
        r.snapshots = snapshots;
        r.monitor = o.monitor;
        r.device = device;
        r.threads = o.threads;
        return r;
    };
    if (workers <= 1) {
        double estimated_done = 0, actual_done = 0, remaining = 0;
        for (std::size_t i : pending) remaining += estimate[i];
        for (std::size_t k = 0; k < pending.size(); ++k) {
            const std::size_t i = pending[k];
            print(io.err, "[%zu/%zu] %s: latent %lld, width %s, epochs %lld..%lld (about %s; %s left in the sweep)\n",
                  k + 1, pending.size(), runs[i].name.c_str(), (long long)runs[i].latent,
                  number_text(runs[i].width).c_str(), (long long)done_epochs[i] + 1, (long long)o.epochs,
                  duration_text(estimate[i]).c_str(), duration_text(remaining).c_str());
            TrainRun r = make_run(i);
            r.progress_bar = !o.quiet;
            const auto t0 = std::chrono::steady_clock::now();
            const TrainOutcome outcome = train_run(r, data, io.err, io.redraw);
            if (outcome.status != 0) {
                print(io.err, "sweep: interrupted during %s; finished runs are kept in %s and --resume continues the "
                      "sweep\n", runs[i].name.c_str(), out.string().c_str());
                return outcome.status;
            }
            estimated_done += estimate[i];
            actual_done += seconds_since(t0);
            remaining = 0;
            for (std::size_t j = k + 1; j < pending.size(); ++j) remaining += estimate[pending[j]];
            remaining *= estimated_done > 0 ? actual_done / estimated_done : 1.0;
            print(io.err, "[%zu/%zu] %s: done in %s%s\n", k + 1, pending.size(), runs[i].name.c_str(),
                  duration_text(seconds_since(t0)).c_str(),
                  k + 1 < pending.size() ? (", about " + duration_text(remaining) + " left").c_str() : "");
        }
    } else if (!pending.empty()) {
        // Several models at once on one GPU, each with its own Context (stream), its log
        // in OUT/<name>/train.log; Ctrl-C stops every one after its current step.
        const ewe::StopToken stop;
        const ewe::InterruptGuard sigint(stop);
        std::vector<std::atomic<std::int64_t>> epochs_done(runs.size());
        for (std::size_t i = 0; i < runs.size(); ++i) epochs_done[i].store(done_epochs[i]);
        std::atomic<bool> finished{false};
        std::thread reporter([&] {
            auto last = std::chrono::steady_clock::now();
            while (!finished.load()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                if (seconds_since(last) < 10 || finished.load()) continue;
                last = std::chrono::steady_clock::now();
                std::ostringstream line;
                line << "sweep: " << duration_text(seconds_since(train_start)) << ":";
                for (std::size_t i : pending)
                    line << " " << runs[i].name << " " << epochs_done[i].load() << "/" << o.epochs;
                print(io.err, "%s\n", line.str().c_str());
            }
        });
        print(io.err, "Training %zu configurations, %d at a time on one GPU (logs in %s/<run>/train.log)\n",
              pending.size(), workers, out.string().c_str());
        try {
            ewe::run_jobs(pending.size(), workers, [&](std::size_t k) {
                const std::size_t i = pending[k];
                if (stop.stop_requested()) return;
                TrainRun r = make_run(i);
                r.progress_bar = false;
                r.stop = stop;
                r.handle_sigint = false;
                r.callbacks.push_back(std::make_shared<CountEpochs>(epochs_done[i]));
                fs::create_directories(r.dir);
                std::ofstream log(r.dir / "train.log", std::ios::app);
                train_run(r, data, log, false);
            }, [&stop] { stop.request_stop(); });
        } catch (...) {
            finished.store(true);
            reporter.join();
            throw;
        }
        finished.store(true);
        reporter.join();
        if (stop.stop_requested()) {
            print(io.err, "sweep: interrupted; every finished epoch is kept in %s and --resume continues the sweep\n",
                  out.string().c_str());
            return 130;
        }
    }
    const double train_seconds = seconds_since(train_start);

    std::vector<SweepRow> rows;
    for (const SweepRun& c : runs) rows.push_back(score_run(c, out / c.name, scored, planted.count, device, o.threads));
    write_sweep_csv(out / "sweep.csv", rows);
    print_table(io.out, rows);
    if (planted.count > 0)
        print(io.out, "roc_auc and precision_at_n: reconstruction SSE of the %lld drawings with %lld of %s planted "
              "among them\n", (long long)scored.count(), (long long)planted.count, planted.file.c_str());
    if (workers > 1 && !pending.empty()) {
        double sequential = 0;
        for (std::size_t i : pending) sequential += estimate[i];
        print(io.out, "concurrent: %d at a time on one GPU: timing %.2f s one after another vs %.2f s together "
              "(speed-up %.2fx); the sweep trained in %.1f s, %.1f s one after another by the timing (%.2fx)\n",
              workers, timed_sequential, timed_concurrent, speedup, train_seconds, sequential,
              sequential / std::max(train_seconds, 1e-9));
    }
    print(io.out, "wrote %s\n", (out / "sweep.csv").string().c_str());
    return 0;
}

}  // namespace

Command add_sweep_command(CLI::App& app, const Console& io) {
    const auto options = std::make_shared<SweepOptions>();
    SweepOptions& o = *options;
    CLI::App* c = app.add_subcommand("sweep", "Train several model shapes (latent size x width) and compare them");
    c->add_option("--out", o.out, "Sweep folder: one run folder per configuration and sweep.csv")->required();
    c->add_option("--data", o.data, "Bitmaps .npy (default: $EWE_DATA/sheep.npy, else procedural sheep)")
        ->each([&o](const std::string&) { o.data_given = true; });
    c->add_option("--limit", o.limit, "Use only the first N drawings (0: all)")->capture_default_str()->check(non_negative());
    CLI::Option* latent = c->add_option("--latent", o.latents, "Latent sizes, comma-separated")->capture_default_str();
    CLI::Option* width = c->add_option("--width", o.widths, "Width multipliers, comma-separated (1: the post's model)")
                             ->capture_default_str();
    c->add_option("--configs", o.configs_file, "File of configurations instead of --latent x --width: one per line, "
                  "'latent=N [width=W] [name=NAME]', '#' starts a comment")
        ->excludes(latent)->excludes(width);
    c->add_option("--epochs", o.epochs, "Epochs per configuration")->capture_default_str()->check(number_in(1, 1000000));
    c->add_option("--batch", o.batch, "Batch size")->capture_default_str()->check(number_in(1, 1 << 20));
    c->add_option("--kl-start", o.kl_start, "KL weight is 0 through this epoch")->capture_default_str()->check(non_negative());
    c->add_option("--kl-steep", o.kl_steep, "then rises linearly to 1 over this many epochs")->capture_default_str()->check(non_negative());
    c->add_option("--lr", o.lr, "RMSprop learning rate")->capture_default_str()->check(positive());
    c->add_option("--seed", o.seed, "Seed of every run (weights, shuffles, dropout, sampling)")->capture_default_str();
    c->add_option("--reparam", o.reparam, "standard or post (see train --help)")
        ->capture_default_str()->check(CLI::IsMember({"standard", "post"}));
    c->add_option("--snapshots", o.snapshots, "Epochs after which each run saves its latent space ('' for none)")
        ->capture_default_str();
    c->add_option("--monitor", o.monitor, "Posterior-collapse monitor of each run on the first N drawings (0: off)")
        ->capture_default_str()->check(non_negative());
    c->add_option("--plant", o.plant, "OTHER.npy:N: score the training drawings with the first N of another class "
                  "planted among them (roc_auc, precision_at_n)");
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    c->add_option("--threads", o.threads, "CPU threads (0: OpenMP's default)")->check(number_in(0, 4096));
    c->add_option("--concurrent", o.concurrent, "CUDA: train this many configurations at a time on the GPU")
        ->capture_default_str()->check(number_in(1, 64));
    c->add_option("--timing-steps", o.timing_steps, "Steps timed per configuration for the estimate (0: 3 on the "
                  "CPU, 25 on CUDA)")->capture_default_str()->check(number_in(0, 100000));
    CLI::Option* resume = c->add_flag("--resume", o.resume, "Skip finished runs, continue interrupted ones from their "
                                      "checkpoints (the same data and settings; --epochs may grow)");
    c->add_flag("--overwrite", o.overwrite, "OUT holds a sweep: delete its files (sweep.csv, sweep_settings.csv and "
                "each configuration's run files; nothing else) and start over")
        ->excludes(resume);
    c->add_flag("--quiet", o.quiet, "No progress bars");
    return [options, io] { return run_sweep(*options, io); };
}

}  // namespace sheep
