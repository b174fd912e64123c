// `sheep_vae sweep`: the post's next step, several model shapes trained from one
// command and compared. Each configuration (latent size x width multiplier, from
// --latent/--width or a --configs file: ewe::sweep_grid, ewe::read_sweep_points) trains as
// `train` does (ewe::train_vae_run) in its own folder OUT/<name>/ on the same data with
// the same seed; then every finished run is scored from its checkpoint and metrics.csv into
// OUT/sweep.csv and a table. On the CPU the runs go one after another, with an estimate of
// the total time from a short timing of each configuration at the start; on CUDA
// --concurrent N trains N at a time on one GPU (a Context, so a stream, per model), and
// the timing runs the configurations both ways to measure the speed-up. The sweep folder
// (ewe::SweepFolder, ewe/train/sweep.hpp) is locked, refused, resumed (--resume: the same
// data and settings, each run checked against its checkpoint) or overwritten, and routes
// Ctrl-C, which keeps every finished epoch.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <ewe/anomaly/vae_evaluation.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/fingerprint.hpp>
#include <ewe/io/run_lock.hpp>
#include <ewe/train/run_jobs.hpp>
#include <ewe/train/step_timing.hpp>
#include <ewe/train/sweep.hpp>
#include <ewe/train/trainer.hpp>

namespace sheep {

namespace {

struct SweepOptions {
    std::string data;
    bool data_given = false;  // --data was on the command line ('' included, which load_bitmaps refuses)
    std::int64_t limit = 0, epochs = 30, batch = 8, monitor = 256, timing_steps = 0;
    std::string latents = "2,3,4,8", widths = "0.5,1", configs_file, reparam = "standard", snapshots = "5,10,15,20";
    double kl_start = 10, kl_steep = 10, lr = 1e-3;
    std::uint64_t seed = 42;
    std::string plant, out, device = "cpu";
    int threads = 0, concurrent = 1;
    bool resume = false, overwrite = false, quiet = false;
};

// The swept parameters: the latent size and the width multiplier.
const std::vector<ewe::SweepParameter> kParameters = {
    {"latent", "N", "2",
     [](double v, const std::string& where, const std::string& text) {
         if (!(v >= 1 && v <= 4096 && v == std::floor(v)))
             fail(where, ": a latent size must be an integer in [1, 4096], found '", text, "'");
         return v;
     },
     std::nullopt},
    {"width", "W", "0.5",
     [](double v, const std::string& where, const std::string& text) {
         if (!(v > 0 && v <= ewe::SheepVaeOptions::kMaxWidth))
             fail(where, ": a width must be a number in (0, ", ewe::format_number(ewe::SheepVaeOptions::kMaxWidth),
                  "] (1: the post's model, 0.5: half the filters and units), found '", text, "'");
         return v;
     },
     1.0}};

ewe::SheepVaeOptions model_at(ewe::SheepVaeOptions options, const ewe::SweepPoint& point) {
    options.latent = std::int64_t(point.values[0]);
    options.width = point.values[1];
    return options;
}

// Seconds per training step of each configuration (ewe::time_steps_in_trainer on a fresh
// model); `workers` > 1 times them concurrently.
struct Timing {
    std::vector<double> step_seconds;
    double wall_seconds = 0;
};

Timing time_configurations(const std::vector<ewe::SweepPoint>& points, const ewe::SheepVaeOptions& base,
                           const ewe::VaeRunSettings& run, const Bitmaps& data, ewe::Device device, int threads,
                           std::int64_t steps, int workers) {
    Timing t;
    t.step_seconds.assign(points.size(), 0.0);
    const auto t0 = std::chrono::steady_clock::now();
    ewe::run_jobs(points.size(), workers, [&](std::size_t i) {
        ewe::Context ctx(device, ewe::ContextOptions{.threads = threads});
        ewe::SheepVae<float> vae =
            ewe::sheep_vae_for_batch<float>(ctx, model_at(base, points[i]), run.batch, run.seed, "--batch", kRunNames);
        ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, run.batch);
        ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = run.lr});
        ewe::VaeObjective<float> objective(vae, loss);
        t.step_seconds[i] =
            ewe::time_steps_in_trainer<float>(ctx, objective, optimizer, data.images.view(), run.batch, steps);
    });
    t.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return t;
}

// Calls `epoch_done` after each epoch, for the progress lines of concurrent runs.
struct ReportEpochs final : ewe::Callback<float> {
    std::function<void(std::int64_t)> epoch_done;
    explicit ReportEpochs(std::function<void(std::int64_t)> f) : epoch_done(std::move(f)) {}
    void on_epoch_end(ewe::Trainer<float>&, const ewe::EpochLogs& logs) override { epoch_done(logs.epoch); }
};

const std::vector<std::string> kColumns = {"run",    "latent",  "width", "parameters",   "epochs",  "seconds",
                                           "loss",   "reconstruction_sse", "kl", "active_units", "roc_auc",
                                           "precision_at_n"};

// A finished run scored from its checkpoint and metrics.csv: its row of sweep.csv (CSV
// numbers) and of the printed table (fixed decimals). `scored` holds the
// training drawings and then the `planted` ones. The thread count is --threads, as in
// training (the scores do not depend on it).
std::array<std::vector<std::string>, 2> score_run(const fs::path& dir, const std::string& name, const Bitmaps& scored,
                                                  std::int64_t planted, ewe::Device device, int threads) {
    ewe::TrainedVae<float> m = load_model(dir / "checkpoint.safetensors", device, threads);
    const fs::path metrics_path = dir / "metrics.csv";
    if (!fs::exists(metrics_path)) fail("sweep: ", metrics_path.string(), " is missing (the run folder is incomplete)");
    const ewe::io::CsvTable metrics = ewe::io::CsvTable::read(metrics_path);
    if (metrics.rows.empty()) fail("sweep: ", metrics_path.string(), " has no epoch rows");
    double seconds = 0;
    for (double s : metrics.numbers("seconds")) seconds += s;
    const ewe::anomaly::VaeEvaluation e = ewe::anomaly::evaluate_vae<float>(*m.ctx, *m.vae, scored.images.view(), planted);
    char width[32];
    std::snprintf(width, sizeof width, "%g", m.checkpoint.model_options.width);
    std::array<std::vector<std::string>, 2> rows;
    for (const bool table : {false, true}) {
        const auto number = [&](double v, const char* format) {
            char buf[48];
            std::snprintf(buf, sizeof buf, format, v);
            return std::isnan(v) ? std::string() : table ? std::string(buf) : ewe::io::csv_number(v);
        };
        rows[table] = {name, std::to_string(m.checkpoint.model_options.latent),
                       width, std::to_string(m.vae->params().total_count()),
                       std::to_string(m.checkpoint.progress.epoch), number(seconds, "%.1f"),
                       number(metrics.numbers("loss").back(), "%.3f"), number(e.mean_sse, "%.3f"),
                       number(e.kl, "%.4f"), std::to_string(e.active_units), number(e.roc_auc, "%.4f"),
                       number(e.precision_at_planted, "%.3f")};
    }
    return rows;
}

int run_sweep(const SweepOptions& o, const Console& io) {
    const ewe::Device device = parse_device(o.device);
    if (o.concurrent > 1 && device != ewe::Device::cuda)
        fail("--concurrent: configurations train concurrently on CUDA only (--device cuda); on the CPU they run "
             "one after another");
    // The flags are parsed into named vectors first: a parse error thrown while a braced
    // list of temporaries is being built trips GCC 12's AddressSanitizer
    // (stack-use-after-scope in the unwinding), though the code is valid.
    const std::vector<ewe::SweepPoint> runs = [&] {
        if (!o.configs_file.empty()) return ewe::read_sweep_points(o.configs_file, kParameters, "--configs");
        const std::vector<double> latents = parse_numbers(o.latents, "--latent");
        const std::vector<double> widths = parse_numbers(o.widths, "--width");
        return ewe::sweep_grid(kParameters, {latents, widths}, {"--latent", "--width"});
    }();
    const std::vector<std::int64_t> snapshots = parse_epochs(o.snapshots, "--snapshots");
    const Bitmaps data = o.data_given ? load_bitmaps(o.data, o.limit) : default_bitmaps(o.limit, o.seed);
    Bitmaps scored{ewe::Tensor<float>::copy_of(data.images.view(), ewe::Device::cpu), data.source};
    const Planted planted = o.plant.empty() ? Planted{} : plant_drawings(scored, o.plant, "--plant", io.err);

    ewe::SheepVaeOptions base;
    base.reparam = o.reparam == "post" ? ewe::ReparamVariant::post : ewe::ReparamVariant::standard;
    const ewe::VaeRunSettings settings{o.seed,       o.batch,     o.lr, o.kl_start, o.kl_steep,
                                       ewe::CpuProductPrecision::fp32,  data.count(),
                                       data.source, ewe::io::content_hash<float>(data.images.view())};
    // What the runs share and a --resume must not change: the data (its description, then
    // the content hash and drawing count that are compared: the same file under another
    // path is the same data), the run settings but the shape and the products' precision
    // (always fp32 here; each run's checkpoint records it, and the check below compares
    // it), and --epochs, which may grow.
    using Rule = ewe::RunSetting::Rule;
    std::vector<ewe::RunSetting> shared{
        {"data", ewe::vae_run_data_text(settings, kRunNames.rows), Rule::note, "", ""},
        {"data_hash", ewe::io::hash_text(settings.data_hash), Rule::same, "data", kRunNames.data},
        {"drawings", std::to_string(settings.samples), Rule::same, "data", kRunNames.data}};
    std::vector<std::string> every_setting, names;
    for (const ewe::RunSetting& s : ewe::vae_run_setting_values(base, settings, kRunNames)) {
        every_setting.push_back(s.key);
        if (s.key != kRunNames.latent && s.key != kRunNames.width && s.key != kRunNames.product_precision)
            shared.push_back(s);
    }
    shared.push_back({"--epochs", std::to_string(o.epochs), Rule::at_least, "", ""});
    for (const ewe::SweepPoint& p : runs) names.push_back(p.name);
    ewe::SweepFolder folder(o.out, names, shared,
                            {.resume = o.resume, .overwrite = o.overwrite, .log = &io.err, .redraw = io.redraw,
                             .folder_name = "--out", .resume_name = "--resume", .overwrite_name = "--overwrite",
                             .lock = [](const fs::path& dir) { return ewe::io::lock_run_folder(dir, "--out"); }});

    // Which runs are finished, which continue, which start.
    std::vector<ewe::SweepPoint> pending_points;
    std::vector<ewe::SweepJob> jobs;
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const fs::path checkpoint = folder.run_dir(runs[i].name) / "checkpoint.safetensors";
        std::int64_t done = 0;
        if (fs::exists(checkpoint)) {
            const ewe::VaeRunCheckpoint c = read_checkpoint(checkpoint, "--resume");
            if (c.model_options.latent != std::int64_t(runs[i].values[0]) || c.model_options.width != runs[i].values[1])
                fail("--resume: ", checkpoint.string(), " is a run of latent ", c.model_options.latent, " width ",
                     ewe::format_number(c.model_options.width), ", not of ", runs[i].origin, "'s latent ",
                     ewe::format_number(runs[i].values[0]), " width ", ewe::format_number(runs[i].values[1]));
            ewe::check_vae_run_resume(c, checkpoint, model_at(base, runs[i]), settings, every_setting, kRunNames);
            done = c.progress.epoch;
            if (done >= o.epochs) {
                print(io.err, "%s: finished (%lld epochs), skipped\n", runs[i].name.c_str(), (long long)done);
                continue;
            }
        }
        pending_points.push_back(runs[i]);
        char description[96];
        std::snprintf(description, sizeof description, "latent %g, width %g", runs[i].values[0], runs[i].values[1]);
        jobs.push_back({runs[i].name, description, done, 0});
    }
    folder.record_settings();

    const int workers = device == ewe::Device::cuda ? std::max(1, o.concurrent) : 1;
    const std::int64_t steps_per_epoch = (data.count() + o.batch - 1) / o.batch;
    double speedup = 1, timed_sequential = 0, timed_concurrent = 0, sequential_estimate = 0;
    if (!jobs.empty()) {
        const std::int64_t steps = o.timing_steps > 0 ? o.timing_steps : device == ewe::Device::cuda ? 25 : 3;
        print(io.err, "Timing %zu configuration%s (%lld steps each after %lld of warm-up)...\n", jobs.size(),
              jobs.size() == 1 ? "" : "s", (long long)steps, (long long)steps);
        const Timing sequential = time_configurations(pending_points, base, settings, data, device, o.threads, steps, 1);
        timed_sequential = sequential.wall_seconds;
        for (std::size_t k = 0; k < jobs.size(); ++k) {
            jobs[k].estimated_seconds =
                sequential.step_seconds[k] * double(steps_per_epoch * (o.epochs - jobs[k].epochs_done));
            sequential_estimate += jobs[k].estimated_seconds;
        }
        if (workers > 1) {
            timed_concurrent =
                time_configurations(pending_points, base, settings, data, device, o.threads, steps, workers).wall_seconds;
            speedup = timed_sequential / std::max(timed_concurrent, 1e-9);
            print(io.err, "Timing: one after another %.2f s, %d at a time %.2f s: speed-up %.2fx\n", timed_sequential,
                  workers, timed_concurrent, speedup);
        }
        print(io.err, "Sweep of %zu configurations (%zu to train, %lld epochs of %lld steps each) on %s: about %s%s\n",
              runs.size(), jobs.size(), (long long)o.epochs, (long long)steps_per_epoch, ewe::to_string(device),
              ewe::duration_text(sequential_estimate / speedup).c_str(),
              workers > 1 ? (" (" + ewe::duration_text(sequential_estimate) + " one after another)").c_str() : "");
    }

    const auto train_start = std::chrono::steady_clock::now();
    const int status = folder.train(jobs, o.epochs, workers, "one GPU", [&](std::size_t k, const ewe::SweepJobContext& job) {
        ewe::VaeRunOptions<float> r;
        r.dir = folder.run_dir(jobs[k].name);
        r.model_options = model_at(base, pending_points[k]);
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
        r.log = &job.log;
        r.progress_bar = !o.quiet && !job.concurrent;
        r.redraw = job.redraw;
        r.stop = job.stop;
        r.handle_sigint = false;
        r.images = kQuickDrawImages;
        r.names = kRunNames;
        if (job.epoch_done) r.callbacks.push_back(std::make_shared<ReportEpochs>(job.epoch_done));
        return !ewe::train_vae_run<float>(r, data.images.view(), data.source).stopped;
    });
    if (status != 0) return status;
    const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();

    std::vector<std::vector<std::string>> csv{kColumns}, table{kColumns};
    for (const ewe::SweepPoint& p : runs) {
        auto rows = score_run(folder.run_dir(p.name), p.name, scored, planted.count, device, o.threads);
        csv.push_back(std::move(rows[0]));
        table.push_back(std::move(rows[1]));
    }
    folder.write_results(csv);
    ewe::write_text_table(io.out, table);
    if (planted.count > 0)
        print(io.out, "roc_auc and precision_at_n: reconstruction SSE of the %lld drawings with %lld of %s planted "
              "among them\n", (long long)scored.count(), (long long)planted.count, planted.file.c_str());
    if (workers > 1 && !jobs.empty())
        print(io.out, "concurrent: %d at a time on one GPU: timing %.2f s one after another vs %.2f s together "
              "(speed-up %.2fx); the sweep trained in %.1f s, %.1f s one after another by the timing (%.2fx)\n",
              workers, timed_sequential, timed_concurrent, speedup, train_seconds, sequential_estimate,
              sequential_estimate / std::max(train_seconds, 1e-9));
    print(io.out, "wrote %s\n", (folder.dir() / "sweep.csv").string().c_str());
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
