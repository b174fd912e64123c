// `sheep_vae train`: the post's training run through ewe::Trainer (train_run, which
// `sweep` calls for each of its configurations). RMSprop on 2*28*28*MSE + w*KL with the
// post's KL annealing, in a run folder (ewe::RunFolder, ewe/train/run_folder.hpp: the
// folder locked while training, a run in it refused unless --resume continues it or
// --overwrite deletes its files; progress bar, metrics.csv, TensorBoard events, a
// checkpoint per epoch, latent snapshots, the posterior-collapse monitor). This file
// adds the program's side: a resumed run must have the same data (by content hash) and
// no other given setting (check_resume), and takes the others from the checkpoint. With
// --distributed, under `mpirun -np N`, the N ranks train data-parallel (ewe/dist/mpi.hpp;
// --batch is the global batch) and rank 0 alone writes the outputs; a build without MPI
// refuses it.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/io/fingerprint.hpp>
#include <ewe/train/objective.hpp>
#include <ewe/train/run_folder.hpp>
#include <ewe/train/trainer.hpp>
#if EWE_WITH_MPI
#include <ewe/dist/mpi.hpp>
#endif

namespace sheep {

namespace {

struct TrainOptions {
    std::string data;
    bool data_given = false;  // --data was on the command line ('' included, which load_bitmaps refuses)
    std::int64_t limit = 0;
    std::int64_t epochs = 30;
    std::int64_t batch = 8;
    std::int64_t latent = 2;
    double width = 1;
    double kl_start = 10, kl_steep = 10;
    double lr = 1e-3;
    std::uint64_t seed = 42;
    std::string device = "cpu";
    int threads = 0;
    std::string product_precision = "fp32";
    std::string out = "sheep_vae_run";
    bool resume = false;
    bool overwrite = false;
    std::string snapshots = "5,10,15,20";
    std::string reparam = "standard";
    std::int64_t monitor = 256;
    bool quiet = false;
    bool distributed = false;
    double distributed_timeout = 600;
};

// MPI for --distributed: the session and the communicator over all ranks.
struct Distributed {
#if EWE_WITH_MPI
    explicit Distributed(double timeout) : communicator(ewe::MpiOptions{timeout}) {}
    ewe::MpiSession session;
    ewe::MpiCommunicator communicator;
#else
    explicit Distributed(double) {
        fail("--distributed: this sheep_vae was built without MPI (install libopenmpi-dev and openmpi-bin, then "
             "configure ewe again: EWE_WITH_MPI turns on when an MPI is found)");
    }
#endif
};

}  // namespace

TrainOutcome train_run(const TrainRun& r, const Bitmaps& data, std::ostream& log, bool redraw) {
    const std::int64_t n = data.count();
    ewe::SheepVaeOptions model_options = r.model_options;
    RunSettings run = r.settings;
    run.samples = n;
    run.data = data.source;
    run.data_hash = ewe::io::content_hash<float>(data.images.view());
    ewe::RunFolderOptions folder_options;
    folder_options.resume = r.resume;
    folder_options.overwrite = r.overwrite;
    folder_options.epochs = r.epochs;
    folder_options.log = &log;
    folder_options.communicator = r.communicator;
    // A resumed run continues the same data with the checkpoint's model and settings.
    ewe::RunFolder folder(r.dir, folder_options, [&](const fs::path& path) {
        SheepCheckpoint c = read_checkpoint(path, "--resume");
        check_resume(c, path, model_options, run, r.given_settings);
        model_options = c.model_options;
        c.settings.samples = run.samples;
        c.settings.data = run.data;
        c.settings.data_hash = run.data_hash;
        run = c.settings;
        return std::move(c.file);
    });
    TrainOutcome outcome;
    outcome.progress = folder.start();
    if (folder.finished()) return outcome;
    if (folder.checkpoint()) {
        std::string taken;
        for (const ewe::RunSetting& s : run_setting_values(model_options, run))
            if (std::find(r.given_settings.begin(), r.given_settings.end(), s.key) == r.given_settings.end())
                taken += (taken.empty() ? "" : ", ") + s.key + " " + s.value;
        print(log, "Resuming from %s after epoch %lld (%lld steps) on the same %s%s%s\n",
              folder.checkpoint()->path().c_str(), (long long)folder.start().epoch,
              (long long)folder.start().iterations, data_text(run).c_str(), taken.empty() ? "" : "; from the checkpoint: ",
              taken.c_str());
    }
    ewe::ContextOptions context_options;
    context_options.threads = r.threads;
    context_options.cpu_product_precision = r.product_precision;
    ewe::Context ctx(r.device, context_options);
    // A batch larger than the data is one batch of all of it (as in Keras), and each
    // rank's model holds its share of that global batch.
    const std::int64_t ranks = r.communicator ? r.communicator->size() : 1;
    const std::int64_t batch = std::min(run.batch, std::max<std::int64_t>(n, 1));
    const std::int64_t rank_batch = (batch + ranks - 1) / ranks;
    ewe::SheepVae<float> vae = model_for_batch(ctx, model_options, rank_batch, run.seed, "--batch");
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, rank_batch);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = run.lr});
    ewe::VaeObjective<float> objective(vae, loss);
    ewe::FitOptions fit;
    fit.epochs = r.epochs;
    fit.batch_size = batch;
    fit.shuffle_seed = run.seed;
    fit.communicator = r.communicator;
    fit.stop = r.stop;
    fit.handle_sigint = r.handle_sigint;
    ewe::Trainer<float> trainer(ctx, objective, optimizer, fit);
    ewe::RunCallbacksOptions<float> standard;
    standard.kl_schedule = ewe::KlAnnealing<float>::linear(run.kl_start, run.kl_steep);
    standard.snapshots = r.snapshots;
    standard.monitor = r.monitor;
    standard.log = &log;
    standard.progress_bar = r.progress_bar;
    standard.redraw = redraw;
    standard.metadata = [&](const ewe::TrainProgress&) { return run_metadata(model_options, run); };
    standard.callbacks = r.callbacks;
    outcome.parameters = vae.params().total_count();
    if (r.progress_bar)
        print(log, "Training on %lld drawings (%s), batch %lld%s, epochs %lld..%lld, %s, seed %llu, %lld parameters\n",
              (long long)n, data.source.c_str(), (long long)batch,
              ranks > 1 ? (" over " + std::to_string(ranks) + " ranks").c_str() : "", (long long)folder.start().epoch + 1,
              (long long)r.epochs, ewe::to_string(r.device), (unsigned long long)run.seed,
              (long long)outcome.parameters);
    const ewe::FitResult fit_result = folder.train<float>(trainer, vae, data.images.view(), standard);
    outcome.progress = fit_result.progress;
    outcome.epochs_trained = outcome.progress.epoch - folder.start().epoch;
    if (outcome.progress.epoch < r.epochs) outcome.status = 130;  // Ctrl-C or one of r.callbacks stopped training
    return outcome;
}

namespace {

// `given_settings`: the flags of run_setting_values given on the command line.
int run_train(const TrainOptions& o, const std::vector<std::string>& given_settings, const Console& io_all) {
    TrainRun r;
    r.dir = o.out;
    r.model_options.latent = o.latent;
    r.model_options.width = o.width;
    r.model_options.reparam = o.reparam == "post" ? ewe::ReparamVariant::post : ewe::ReparamVariant::standard;
    r.settings = RunSettings{o.seed, o.batch, o.lr, o.kl_start, o.kl_steep, 0, ""};
    r.given_settings = given_settings;
    r.epochs = o.epochs;
    r.resume = o.resume;
    r.overwrite = o.overwrite;
    r.snapshots = parse_epochs(o.snapshots, "--snapshots");
    r.monitor = o.monitor;
    r.device = parse_device(o.device);
    r.threads = o.threads;
    r.product_precision = product_precision_named(o.product_precision);
    r.progress_bar = !o.quiet;
    std::optional<Distributed> distributed;
    if (o.distributed) {
        if (r.device != ewe::Device::cpu)
            fail("--distributed: sheep_vae trains data-parallel on the CPU (MPI); across GPUs, a program uses "
                 "ewe::NcclCommunicator (ewe/dist/nccl.cuh)");
        distributed.emplace(o.distributed_timeout);
#if EWE_WITH_MPI
        r.communicator = &distributed->communicator;
#endif
    }
    // Ranks other than 0 stay silent: rank 0 reports for all.
    std::ostringstream silent;
    const bool root = r.communicator == nullptr || r.communicator->rank() == 0;
    const Console io = root ? io_all : Console{silent, silent, false};
    // Procedural drawings (no --data and no $EWE_DATA/sheep.npy) depend on the seed: a
    // resumed run without --seed draws them with its checkpoint's.
    std::uint64_t data_seed = o.seed;
    const fs::path checkpoint_path = r.dir / "checkpoint.safetensors";
    if (!o.data_given && o.resume && fs::exists(checkpoint_path) &&
        std::find(given_settings.begin(), given_settings.end(), "--seed") == given_settings.end())
        data_seed = read_checkpoint(checkpoint_path, "--resume").settings.seed;
    const Bitmaps data = o.data_given ? load_bitmaps(o.data, o.limit) : default_bitmaps(o.limit, data_seed);
    const TrainOutcome outcome = train_run(r, data, io.err, io.redraw);
    if (outcome.status == 0 && outcome.epochs_trained > 0 && !o.quiet)
        print(io.err, "Wrote %s (checkpoint, metrics.csv, logs/, loss.svg)\n", r.dir.string().c_str());
    return outcome.status;
}

}  // namespace

Command add_train_command(CLI::App& app, const Console& io) {
    const auto options = std::make_shared<TrainOptions>();
    TrainOptions& o = *options;
    CLI::App* c = app.add_subcommand("train", "Train the sheep VAE on Quick, Draw! bitmaps");
    c->add_option("--data", o.data, "Bitmaps .npy: uint8 (N, 784) or (N, 28, 28), or float32 in [0, 1] "
                  "(default: $EWE_DATA/sheep.npy, else procedural sheep)")
        ->each([&o](const std::string&) { o.data_given = true; });
    c->add_option("--limit", o.limit, "Use only the first N drawings (0: all)")->capture_default_str()->check(non_negative());
    c->add_option("--epochs", o.epochs, "Epochs to train in total")->capture_default_str()->check(number_in(1, 1000000));
    c->add_option("--batch", o.batch, "Batch size")->capture_default_str()->check(number_in(1, 1 << 20));
    c->add_option("--latent", o.latent, "Latent dimensions")->capture_default_str()->check(number_in(1, 4096));
    c->add_option("--width", o.width, "Width multiplier of every layer (1: the post's model; 0.5: half the filters and units)")
        ->capture_default_str()->check(number_in(0, ewe::SheepVaeOptions::kMaxWidth, true));
    c->add_option("--kl-start", o.kl_start, "KL weight is 0 through this epoch")->capture_default_str()->check(non_negative());
    c->add_option("--kl-steep", o.kl_steep, "then rises linearly to 1 over this many epochs")->capture_default_str()->check(non_negative());
    c->add_option("--lr", o.lr, "RMSprop learning rate")->capture_default_str()->check(positive());
    c->add_option("--seed", o.seed, "Seed of weights, shuffles, dropout and sampling")->capture_default_str();
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    c->add_option("--threads", o.threads, "CPU threads (0: OpenMP's default, e.g. OMP_NUM_THREADS)")->check(number_in(0, 4096));
    c->add_option("--product-precision", o.product_precision, kProductPrecisionHelp)->capture_default_str()->check(product_precision_names());
    c->add_option("--out", o.out, "Output folder")->capture_default_str();
    CLI::Option* resume = c->add_flag("--resume", o.resume, "Continue the run in OUT from its checkpoint.safetensors "
                                      "(model, optimizer, position) on the same data; a setting given must equal the "
                                      "checkpoint's, one left out is taken from it");
    c->add_flag("--overwrite", o.overwrite, "OUT holds a run: delete its files (checkpoints, metrics.csv, logs/, "
                "snapshots, plots; nothing else) and start a new one")
        ->excludes(resume);
    c->add_option("--snapshots", o.snapshots, "Epochs after which to save the latent space (comma-separated; '' for none)")
        ->capture_default_str();
    c->add_option("--reparam", o.reparam, "standard: z = mu + exp(logvar/2)*eps; post: z = mu + exp(logvar)*eps")
        ->capture_default_str()->check(CLI::IsMember({"standard", "post"}));
    c->add_option("--monitor", o.monitor, "Posterior-collapse monitor on the first N drawings: active units and KL "
                  "per latent dimension each epoch, in metrics.csv and TensorBoard (0: off)")
        ->capture_default_str()->check(non_negative());
    c->add_flag("--quiet", o.quiet, "No progress bar");
    c->add_flag("--distributed", o.distributed, "Data-parallel over MPI, one rank per process: mpirun -np N sheep_vae "
                "train --distributed ... (--batch is the global batch; rank 0 writes the outputs; CPU only)");
    c->add_option("--distributed-timeout", o.distributed_timeout, "Seconds a rank waits for the others in a "
                  "collective before it fails (a rank died or hangs)")
        ->capture_default_str()->check(positive());
    return [options, io, c] {
        std::vector<std::string> given;
        for (const ewe::RunSetting& s : run_setting_values(ewe::SheepVaeOptions{}, RunSettings{}))
            if (c->count(s.key) > 0) given.push_back(s.key);
        return run_train(*options, given, io);
    };
}

}  // namespace sheep
