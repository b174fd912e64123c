// `sheep_vae train`: the post's training run through ewe::Trainer (train_run, which
// `sweep` calls for each of its configurations). RMSprop on
// 2*28*28*MSE + w*KL with the post's KL annealing, a per-epoch shuffle drawn from
// Philox(seed, epoch) so that --resume continues a run bit for bit, and the library's
// callbacks: progress bar, metrics.csv, TensorBoard events, a checkpoint per epoch
// (interrupted.safetensors on Ctrl-C), latent-space snapshots and the
// posterior-collapse monitor (active units, KL per latent dimension). With --distributed,
// under `mpirun -np N`, the N ranks train data-parallel (ewe/dist/mpi.hpp; --batch is
// the global batch) and rank 0 alone writes the outputs; a build without MPI refuses it.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/io/csv.hpp>
#include <ewe/io/svg.hpp>
#include <ewe/io/tensorboard.hpp>
#include <ewe/train/kl_annealing.hpp>
#include <ewe/train/latent_snapshots.hpp>
#include <ewe/train/loggers.hpp>
#include <ewe/train/model_checkpoint.hpp>
#include <ewe/train/objective.hpp>
#include <ewe/train/posterior_monitor.hpp>
#include <ewe/train/progress_bar.hpp>
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
    std::string snapshots = "5,10,15,20";
    std::string reparam = "standard";
    std::int64_t monitor = 256;
    bool quiet = false;
    bool distributed = false;
    double distributed_timeout = 600;
};

void write_loss_plot(const fs::path& dir) {
    const ewe::io::CsvTable metrics = ewe::io::CsvTable::read(dir / "metrics.csv");
    const std::vector<double> e = metrics.numbers("epoch"), loss = metrics.numbers("loss"),
                              recon = metrics.numbers("recon"), kl = metrics.numbers("kl"),
                              w = metrics.numbers("kl_weight");
    ewe::io::SvgPlot plot("Training loss per epoch", "epoch", "mean per drawing");
    plot.line(e, loss, ewe::io::palette(0), "loss").line(e, recon, ewe::io::palette(1), "reconstruction");
    plot.write(dir / "loss.svg");
    ewe::io::SvgPlot klp("KL term and its annealed weight", "epoch", "value");
    klp.line(e, kl, ewe::io::palette(2), "KL (mean over latent dims)").line(e, w, ewe::io::palette(4), "KL weight");
    klp.write(dir / "kl.svg");
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

}  // namespace

TrainOutcome train_run(const TrainRun& r, const Bitmaps& data, std::ostream& log, bool redraw) {
    const fs::path checkpoint_path = r.dir / "checkpoint.safetensors";
    const std::int64_t n = data.count();
    ewe::SheepVaeConfig config = r.config;
    RunSettings run = r.settings;
    run.samples = n;
    run.data = data.source;
    std::optional<SheepCheckpoint> resume_from;
    if (r.resume && fs::exists(checkpoint_path)) {
        resume_from = read_checkpoint(checkpoint_path, "--resume");
        config = resume_from->config;
        run = resume_from->settings;
        if (run.samples != n)
            fail("--resume: ", checkpoint_path.string(), " was trained on ", run.samples, " drawings (", run.data,
                 "), this run has ", n, " (", data.source, "); use the same --data and --limit");
        print(log, "Resuming from %s after epoch %lld (%lld steps); model, seed, batch, lr and KL schedule "
              "come from the checkpoint\n", checkpoint_path.string().c_str(),
              (long long)resume_from->progress.epoch, (long long)resume_from->progress.iterations);
    } else if (r.resume) {
        print(log, "--resume: no %s yet, starting a new run\n", checkpoint_path.string().c_str());
    }
    std::error_code ec;
    fs::create_directories(r.dir, ec);
    if (ec) fail("--out: cannot create ", r.dir.string(), ": ", ec.message());

    ewe::ContextOptions context_options;
    context_options.threads = r.threads;
    ewe::Context ctx(r.device, context_options);
    // A batch larger than the data is one batch of all of it (as in Keras), and each
    // rank's model holds its share of that global batch.
    const std::int64_t ranks = r.communicator ? r.communicator->size() : 1;
    const std::int64_t batch = std::min(run.batch, std::max<std::int64_t>(n, 1));
    const std::int64_t rank_batch = (batch + ranks - 1) / ranks;
    ewe::SheepVae<float> vae = model_for_batch(ctx, config, rank_batch, run.seed, "--batch");
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossConfig{}, rank_batch);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), run.lr);
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
    fit.handle_sigint = r.handle_sigint;
    ewe::Trainer<float> trainer(ctx, objective, optimizer, fit);
    trainer.add(std::make_shared<ewe::KlAnnealing<float>>(ewe::KlAnnealing<float>::linear(run.kl_start, run.kl_steep),
                                                          &log));
    if (r.progress_bar) trainer.add(std::make_shared<ewe::ProgressBar<float>>(log, redraw));
    trainer.add(std::make_shared<ewe::CsvLogger<float>>(r.dir / "metrics.csv"));
    trainer.add(std::make_shared<ewe::TensorBoardLogger<float>>(
        r.dir / "logs", std::map<std::string, std::string>{{"recon", "reconstruction"}}));
    trainer.add(std::make_shared<ewe::LatentSnapshots<float>>(vae, data.images.view(), r.dir, r.snapshots));
    if (r.monitor > 0)
        trainer.add(std::make_shared<ewe::PosteriorMonitor<float>>(vae, data.images.view().leading(std::min(r.monitor, n)),
                                                                   &log));
    ewe::ModelCheckpointOptions saving;
    saving.path = checkpoint_path;
    saving.interrupted_path = r.dir / "interrupted.safetensors";
    trainer.add(std::make_shared<ewe::ModelCheckpoint<float>>(
        saving, [&](const ewe::TrainProgress&) { return run_metadata(config, run); }));
    for (const auto& callback : r.callbacks) trainer.add(callback);

    TrainOutcome outcome;
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
    } catch (const ewe::Error& e) {
        const std::string what = e.what();
        if (what.rfind("fit: the loss became", 0) != 0) throw;
        fail("train: ", what.substr(5), ". ", checkpoint_path.string(),
             " keeps the last good epoch (diverged; try a smaller --lr)");
    }
    outcome.progress = fit_result.progress;
    if (fit_result.interrupted) {
        print(log,
              "\ntrain: interrupted at epoch %lld, step %lld: the current weights are in %s; %s keeps "
              "epoch %lld, and --resume continues from it\n",
              (long long)outcome.progress.epoch + 1, (long long)trainer.interrupted_step(),
              saving.interrupted_path.string().c_str(), checkpoint_path.string().c_str(),
              (long long)outcome.progress.epoch);
        outcome.status = 130;
    } else if (outcome.progress.epoch < r.epochs) {
        outcome.status = 130;  // one of r.callbacks stopped training
    } else if (trainer.is_root()) {
        write_loss_plot(r.dir);
    }
    return outcome;
}

namespace {

int run_train(const TrainOptions& o, const Console& io_all) {
    TrainRun r;
    r.dir = o.out;
    r.config.latent = o.latent;
    r.config.width = o.width;
    r.config.reparam = o.reparam == "post" ? ewe::ReparamVariant::post : ewe::ReparamVariant::standard;
    r.settings = RunSettings{o.seed, o.batch, o.lr, o.kl_start, o.kl_steep, 0, ""};
    r.epochs = o.epochs;
    r.resume = o.resume;
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
    const Bitmaps data = o.data_given ? load_bitmaps(o.data, o.limit) : default_bitmaps(o.limit, o.seed);
    const TrainOutcome outcome = train_run(r, data, io.err, io.redraw);
    if (outcome.status == 0 && !o.quiet)
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
        ->capture_default_str()->check(number_in(0, ewe::SheepVaeConfig::kMaxWidth, true));
    c->add_option("--kl-start", o.kl_start, "KL weight is 0 through this epoch")->capture_default_str()->check(non_negative());
    c->add_option("--kl-steep", o.kl_steep, "then rises linearly to 1 over this many epochs")->capture_default_str()->check(non_negative());
    c->add_option("--lr", o.lr, "RMSprop learning rate")->capture_default_str()->check(positive());
    c->add_option("--seed", o.seed, "Seed of weights, shuffles, dropout and sampling")->capture_default_str();
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    c->add_option("--threads", o.threads, "CPU threads (0: OpenMP's default, e.g. OMP_NUM_THREADS)")->check(number_in(0, 4096));
    c->add_option("--out", o.out, "Output folder")->capture_default_str();
    c->add_flag("--resume", o.resume, "Continue from OUT/checkpoint.safetensors (model, optimizer, position)");
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
    return [options, io] { return run_train(*options, io); };
}

}  // namespace sheep
