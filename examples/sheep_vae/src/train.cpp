// `sheep_vae train`: the post's training run, ewe::train_vae_run (ewe/train/vae_run.hpp,
// which `sweep` calls for each of its configurations too): RMSprop on 2*28*28*MSE + w*KL
// with the post's KL annealing, in a run folder (ewe::RunFolder: the folder locked while
// training, a run in it refused unless --resume continues it or --overwrite deletes its
// files; progress bar, metrics.csv, TensorBoard events, a checkpoint per epoch, latent
// snapshots, the posterior-collapse monitor); a resumed run must have the same data (by
// content hash) and no other given setting, and takes the others from the checkpoint.
// This file is the flags, the data (--data, $EWE_DATA/sheep.npy or procedural sheep of
// the seed) and the ranks: with --distributed, under `mpirun -np N`, the N ranks train
// data-parallel (ewe/dist/mpi.hpp; --batch is the global batch) and rank 0 alone writes
// the outputs; a build without MPI refuses it.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/train/vae_run.hpp>
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

// `given_settings`: the flags of ewe::vae_run_setting_values given on the command line.
int run_train(const TrainOptions& o, const std::vector<std::string>& given_settings, const Console& io_all) {
    ewe::VaeRunOptions<float> r;
    r.dir = o.out;
    r.model_options.latent = o.latent;
    r.model_options.width = o.width;
    r.model_options.reparam = o.reparam == "post" ? ewe::ReparamVariant::post : ewe::ReparamVariant::standard;
    r.settings = ewe::VaeRunSettings{o.seed,     o.batch, o.lr, o.kl_start, o.kl_steep,
                                     *ewe::cpu_product_precision_named(o.product_precision), 0, "", 0};
    r.given_settings = given_settings;
    r.epochs = o.epochs;
    r.resume = o.resume;
    r.overwrite = o.overwrite;
    r.snapshots = parse_epochs(o.snapshots, "--snapshots");
    r.monitor = o.monitor;
    r.device = parse_device(o.device);
    r.threads = o.threads;
    r.progress_bar = !o.quiet;
    r.images = kQuickDrawImages;
    r.names = kRunNames;
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
    r.log = &io.err;
    r.redraw = io.redraw;
    // Procedural drawings (no --data and no $EWE_DATA/sheep.npy) depend on the seed: a
    // resumed run without --seed draws them with its checkpoint's.
    std::uint64_t data_seed = o.seed;
    const fs::path checkpoint_path = ewe::run_checkpoint_path(r.dir);
    if (!o.data_given && o.resume && fs::exists(checkpoint_path) &&
        std::find(given_settings.begin(), given_settings.end(), "--seed") == given_settings.end())
        data_seed = read_checkpoint(checkpoint_path, "--resume").settings.seed;
    const Bitmaps data = o.data_given ? load_bitmaps(o.data, o.limit) : default_bitmaps(o.limit, data_seed);
    const ewe::VaeRunResult result = ewe::train_vae_run<float>(r, data.images.view(), data.source);
    if (result.stopped) return 130;  // Ctrl-C
    if (result.epochs_trained > 0 && !o.quiet)
        print(io.err, "Wrote %s (checkpoint, metrics.csv, logs/, loss.svg)\n", r.dir.string().c_str());
    return 0;
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
        for (const ewe::RunSetting& s :
             ewe::vae_run_setting_values(ewe::SheepVaeOptions{}, ewe::VaeRunSettings{}, kRunNames))
            if (c->count(s.key) > 0) given.push_back(s.key);
        return run_train(*options, given, io);
    };
}

}  // namespace sheep
