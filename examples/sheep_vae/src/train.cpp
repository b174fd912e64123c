// `sheep_vae train`: the post's training run through ewe::Trainer (train_run, which
// `sweep` calls for each of its configurations). RMSprop on
// 2*28*28*MSE + w*KL with the post's KL annealing, a per-epoch shuffle drawn from
// Philox(seed, epoch) so that --resume continues a run bit for bit, and the library's
// run-folder callbacks (ewe::add_run_callbacks, ewe/train/run_folder.hpp): progress bar,
// metrics.csv, TensorBoard events, a checkpoint per epoch (interrupted.safetensors on
// Ctrl-C), latent-space snapshots and the posterior-collapse monitor (active units, KL
// per latent dimension). The output folder is locked while training (ewe::io::RunLock);
// a folder that holds a run (ewe::run_files) is refused unless --resume continues it
// (the same data, by content hash, and no other setting) or --overwrite deletes its run
// files first. With --distributed,
// under `mpirun -np N`, the N ranks train data-parallel (ewe/dist/mpi.hpp; --batch is
// the global batch) and rank 0 alone writes the outputs; a build without MPI refuses it.
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
#include <ewe/io/run_lock.hpp>
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

// What to try after a divergence; a resumed run took its learning rate from the checkpoint.
std::string divergence_hint(const ewe::TrainProgress& start) {
    return start.epoch > 0 ? " (diverged at the checkpoint's learning rate; a new run with a smaller --lr may not)"
                           : " (diverged; try a smaller --lr)";
}

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

// What `checkpoint` holds after training diverged: every save and every resume checked
// its weights finite, so the epoch it holds is the last good one the run kept.
std::string kept_checkpoint(const fs::path& checkpoint) {
    if (!fs::exists(checkpoint)) return "no checkpoint was saved before that (" + checkpoint.string() + " does not exist)";
    const std::int64_t epoch = ewe::checkpoint_epoch(checkpoint);
    return epoch >= 0 ? checkpoint.string() + " keeps epoch " + std::to_string(epoch) + ", the last good one"
                      : checkpoint.string() + " cannot be read back";
}

}  // namespace

std::unique_ptr<ewe::io::RunLock> lock_run_folder(const fs::path& dir) {
    try {
        return std::make_unique<ewe::io::RunLock>(dir);
    } catch (const ewe::io::RunFolderBusy& e) {
        fail("--out: ", dir.string(), " is in use by ",
             e.holder_pid() > 0 ? "process " + std::to_string(e.holder_pid()) : std::string("another process"),
             " (a train or sweep writing there); wait for it to end, or choose another --out");
    }
}

TrainOutcome train_run(const TrainRun& r, const Bitmaps& data, std::ostream& log, bool redraw) {
    const fs::path checkpoint_path = ewe::run_checkpoint_path(r.dir);
    const std::int64_t n = data.count();
    ewe::SheepVaeOptions model_options = r.model_options;
    RunSettings run = r.settings;
    run.samples = n;
    run.data = data.source;
    run.data_hash = ewe::io::content_hash<float>(data.images.view());
    // Rank 0 alone writes the run's files, so it alone locks the folder.
    const bool root = r.communicator == nullptr || r.communicator->rank() == 0;
    std::unique_ptr<ewe::io::RunLock> lock;
    if (root) lock = lock_run_folder(r.dir);
    std::error_code ec;
    fs::create_directories(r.dir, ec);
    if (ec) fail("--out: cannot create ", r.dir.string(), ": ", ec.message());

    TrainOutcome outcome;
    std::optional<SheepCheckpoint> resume_from;
    const std::vector<fs::path> previous = ewe::run_files(r.dir);
    if (r.resume && fs::exists(checkpoint_path)) {
        resume_from = read_checkpoint(checkpoint_path, "--resume");
        check_resume(*resume_from, checkpoint_path, model_options, run, r.given_settings);
        model_options = resume_from->model_options;
        const RunSettings data_settings = run;
        run = resume_from->settings;
        run.samples = data_settings.samples;
        run.data = data_settings.data;
        run.data_hash = data_settings.data_hash;
        const std::int64_t done = resume_from->progress.epoch;
        if (done > r.epochs)
            fail("--epochs: ", checkpoint_path.string(), " already holds epoch ", done, "; --epochs ", r.epochs,
                 " is the total to reach, not a number to add: pass --epochs ", done + 1, " or more to continue");
        if (done == r.epochs) {
            print(log, "train: %s already holds epoch %lld of --epochs %lld: nothing left to train, nothing written "
                  "(pass a larger --epochs to continue)\n", checkpoint_path.string().c_str(), (long long)done,
                  (long long)r.epochs);
            outcome.progress = resume_from->progress;
            return outcome;
        }
        std::string taken;
        for (const Setting& s : run_setting_values(model_options, run))
            if (std::find(r.given_settings.begin(), r.given_settings.end(), s.flag) == r.given_settings.end())
                taken += (taken.empty() ? "" : ", ") + s.flag + " " + s.value;
        print(log, "Resuming from %s after epoch %lld (%lld steps) on the same %s%s%s\n",
              checkpoint_path.string().c_str(), (long long)done, (long long)resume_from->progress.iterations,
              data_text(run).c_str(), taken.empty() ? "" : "; from the checkpoint: ", taken.c_str());
    } else if (!previous.empty() && !r.overwrite) {
        if (r.resume)
            fail("--resume: ", r.dir.string(), " holds files of a run (", ewe::run_files_text(r.dir, previous),
                 ") but no checkpoint.safetensors to continue from (it stopped before its first epoch ended); pass "
                 "--overwrite instead of --resume to delete them and start over");
        fail("--out: ", r.dir.string(), " already holds a run; pass --resume to continue it, or --overwrite to delete "
             "its files and start over (found: ", ewe::run_files_text(r.dir, previous), "; other files are kept)");
    } else if (!previous.empty()) {
        const std::string deleted = ewe::run_files_text(r.dir, previous);
        if (root) ewe::delete_run_files(r.dir, previous, "--overwrite");
        print(log, "%s: deleted the files of the previous run (%s); other files are kept\n", r.dir.string().c_str(),
              deleted.c_str());
    } else if (r.resume) {
        print(log, "--resume: no %s yet, starting a new run\n", checkpoint_path.string().c_str());
    }
    // Every rank has looked at the folder before rank 0 writes into it.
    if (r.communicator) r.communicator->barrier();

    ewe::ContextOptions context_options;
    context_options.threads = r.threads;
    ewe::Context ctx(r.device, context_options);
    // A batch larger than the data is one batch of all of it (as in Keras), and each
    // rank's model holds its share of that global batch.
    const std::int64_t ranks = r.communicator ? r.communicator->size() : 1;
    const std::int64_t batch = std::min(run.batch, std::max<std::int64_t>(n, 1));
    const std::int64_t rank_batch = (batch + ranks - 1) / ranks;
    ewe::SheepVae<float> vae = model_for_batch(ctx, model_options, rank_batch, run.seed, "--batch");
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, rank_batch);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = run.lr});
    const ewe::TrainProgress start = resume_from ? resume_from->progress : ewe::TrainProgress{};
    if (resume_from) {
        resume_from->file.load_parameters(vae.params());
        resume_from->file.load_optimizer(optimizer, start.iterations, run.lr);
    }
    resume_from.reset();

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
    ewe::add_run_callbacks<float>(trainer, vae, data.images.view(), r.dir, standard);
    for (const auto& callback : r.callbacks) trainer.add(callback);

    ewe::FitResult fit_result;
    outcome.parameters = vae.params().total_count();
    if (r.progress_bar)
        print(log, "Training on %lld drawings (%s), batch %lld%s, epochs %lld..%lld, %s, seed %llu, %lld parameters\n",
              (long long)n, data.source.c_str(), (long long)batch,
              ranks > 1 ? (" over " + std::to_string(ranks) + " ranks").c_str() : "", (long long)start.epoch + 1,
              (long long)r.epochs, ewe::to_string(r.device), (unsigned long long)run.seed,
              (long long)outcome.parameters);
    try {
        fit_result = trainer.fit(data.images.view(), start);
    } catch (const ewe::LossDiverged& e) {
        fail("train: ", e.reason(), ". ", kept_checkpoint(checkpoint_path), divergence_hint(start));
    } catch (const ewe::NonFiniteCheckpoint& e) {
        fail("train: the weights became non-finite: ", e.what(), ". ", kept_checkpoint(checkpoint_path),
             divergence_hint(start));
    }
    outcome.progress = fit_result.progress;
    outcome.epochs_trained = outcome.progress.epoch - start.epoch;
    if (fit_result.interrupted) {
        // What is on disk, read back from the files rather than assumed.
        const std::int64_t kept = ewe::checkpoint_epoch(checkpoint_path);
        const fs::path interrupted_path = ewe::run_interrupted_path(r.dir);
        print(log, "\ntrain: interrupted at epoch %lld, step %lld: %s; %s\n", (long long)outcome.progress.epoch + 1,
              (long long)trainer.interrupted_step(),
              fs::exists(interrupted_path) ? ("the weights of that moment are in " + interrupted_path.string()).c_str()
                                           : ("no " + interrupted_path.string() + " was written").c_str(),
              kept >= 0 ? (ewe::checkpoint_state(checkpoint_path) + ", and --resume continues from it").c_str()
                        : (ewe::checkpoint_state(checkpoint_path) + " (no epoch finished): --overwrite starts the run "
                           "over").c_str());
        outcome.status = 130;
    } else if (outcome.progress.epoch < r.epochs) {
        outcome.status = 130;  // one of r.callbacks stopped training
    } else if (trainer.is_root()) {
        ewe::write_loss_plots(r.dir);
    }
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
        for (const Setting& s : run_setting_values(ewe::SheepVaeOptions{}, RunSettings{}))
            if (c->count(s.flag) > 0) given.push_back(s.flag);
        return run_train(*options, given, io);
    };
}

}  // namespace sheep
