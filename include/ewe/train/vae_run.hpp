// A VAE's training run in a folder, as `sheep_vae train` makes it, for any program that
// trains a SheepVae (ewe/models/sheep_vae.hpp: the architecture, for any image size and
// channel count) on images: RMSprop on VaeLoss with linear KL annealing, in a RunFolder
// (ewe/train/run_folder.hpp: locked, resumed, replaced or refused; the standard callbacks;
// a diverging loss told with the epoch the checkpoint keeps). VaeRunSettings are what
// the run computes besides its model (seed, batch, learning rate, KL schedule, the
// products' precision) and which
// data it trains on (by content hash); every checkpoint records them with the model
// (vae_run_metadata) and read_vae_run_checkpoint reads them back. A resumed run must
// have the same data and every setting the user gave equal to the checkpoint's
// (check_vae_run_resume); the others are taken from the checkpoint. train_vae_run
// trains; load_trained_vae rebuilds a trained model for inference. Messages and the keys
// of the settings use VaeRunNames: the library's own names unless a program passes its
// flags.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/io/checkpoint.hpp"
#include "ewe/io/fingerprint.hpp"
#include "ewe/loss/vae_loss.hpp"
#include "ewe/models/memory_refusal.hpp"
#include "ewe/models/sheep_vae.hpp"
#include "ewe/models/sheep_vae_checkpoint.hpp"
#include "ewe/optim/optimizers.hpp"
#include "ewe/train/interrupt.hpp"
#include "ewe/train/kl_annealing.hpp"
#include "ewe/train/objective.hpp"
#include "ewe/train/run_folder.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

// What a run computes besides its model, and the data it trains on; recorded in its
// checkpoints so that a resumed run continues it.
struct VaeRunSettings {
    std::uint64_t seed = 0;
    std::int64_t batch = 8;
    double lr = 1e-3;
    double kl_start = 10, kl_steep = 10;  // the KL weight is 0 through kl_start, then rises to 1 over kl_steep epochs
    // The CPU products' inputs (ContextOptions::cpu_product_precision); a checkpoint
    // without it (older) was trained in fp32.
    CpuProductPrecision product_precision = CpuProductPrecision::fp32;
    std::int64_t samples = 0;
    std::string data;             // the data's name (a file name)
    std::uint64_t data_hash = 0;  // io::content_hash of the images; 0: not recorded (an older checkpoint)
};

// The metadata of a training checkpoint: the model's (sheep_vae_metadata) and the run's.
inline CheckpointMetadata vae_run_metadata(const SheepVaeOptions& model_options, const VaeRunSettings& s) {
    CheckpointMetadata m = sheep_vae_metadata(model_options);
    m["loss"] = "2*28*28*MSE + kl_weight*KL (KL averaged over latent dimensions)";
    m["rng.seed"] = std::to_string(s.seed);
    m["train.batch"] = std::to_string(s.batch);
    m["train.kl_start"] = metadata_number(s.kl_start);
    m["train.kl_steep"] = metadata_number(s.kl_steep);
    m["train.product_precision"] = to_string(s.product_precision);
    m["train.samples"] = std::to_string(s.samples);
    m["train.data"] = s.data;
    if (s.data_hash != 0) m["train.data_hash"] = io::hash_text(s.data_hash);
    return m;
}

// A checkpoint of a run: the file, and the model, settings and position it records.
struct VaeRunCheckpoint {
    Checkpoint file;
    SheepVaeOptions model_options;
    VaeRunSettings settings;
    TrainProgress progress;
};

// The images a program handles (image_size 0: any), named in its refusal of a checkpoint
// for others ("Quick, Draw! bitmaps").
struct ExpectedImages {
    std::int64_t image_size = 0, channels = 0;
    std::string what;
};

// Reads a checkpoint written by train_vae_run, refusing (ewe::Error naming `flag` and the
// file) other formats, versions, architectures, images other than `expected` and damaged files.
inline VaeRunCheckpoint read_vae_run_checkpoint(const std::filesystem::path& path, const std::string& flag,
                                                const ExpectedImages& expected = {}) {
    VaeRunCheckpoint c{Checkpoint::read(path, kSheepVaeFormat, kSheepVaeFormatVersion, flag), {}, {}, {}};
    c.model_options = sheep_vae_options(c.file);
    const SheepVaeOptions& m = c.model_options;
    if (expected.image_size > 0 && (m.image_size != expected.image_size || m.channels != expected.channels))
        fail(flag, ": ", path.string(), ": the checkpoint is for ", m.image_size, "x", m.image_size, "x", m.channels,
             " images; this program handles ", expected.image_size, "x", expected.image_size, "x", expected.channels,
             " ", expected.what);
    c.progress = read_progress(c.file);
    c.settings.seed = c.file.meta_uint64("rng.seed");
    c.settings.batch = c.file.meta_int("train.batch", 1, 1 << 20);
    c.settings.lr = c.file.meta_double("optimizer.lr", 1e-30, 1e6);
    c.settings.kl_start = c.file.meta_double("train.kl_start", 0.0, 1e9);
    c.settings.kl_steep = c.file.meta_double("train.kl_steep", 0.0, 1e9);
    if (c.file.file().metadata.count("train.product_precision")) {
        const std::string& precision = c.file.meta("train.product_precision");
        const std::optional<CpuProductPrecision> named = cpu_product_precision_named(precision);
        if (!named)
            fail(flag, " ", path.string(), ": metadata train.product_precision = '", precision,
                 "' (expected fp32 or bf16)");
        c.settings.product_precision = *named;
    }
    c.settings.samples = c.file.meta_int("train.samples", 0, std::int64_t(1) << 62);
    c.settings.data = c.file.meta("train.data");
    if (c.file.file().metadata.count("train.data_hash"))
        c.settings.data_hash = io::parse_hash_text(c.file.meta("train.data_hash"),
                                                   flag + " " + path.string() + ": metadata train.data_hash");
    return c;
}

// "data with hash 0x... (sheep.npy, 1000 drawings)", `rows` naming the samples.
inline std::string vae_run_data_text(const VaeRunSettings& s, const std::string& rows) {
    return "data with hash " + io::hash_text(s.data_hash) + " (" + s.data + ", " + std::to_string(s.samples) + " " +
           rows + ")";
}

// The words of a run's messages and the keys of its settings. The defaults are the
// library's names (of VaeRunOptions' and VaeRunSettings' fields); a program passes its
// own, e.g. its flags (sheep_vae: "--resume", "--data and --limit", "drawings", "--lr").
struct VaeRunNames {
    // Who speaks, the folder, the requests to resume or overwrite, the epochs to reach
    // (RunFolderOptions::Names, with `lr` below); the data and what its samples are.
    std::string who = "train_vae_run", folder = "dir", resume = "resume", overwrite = "overwrite", epochs = "epochs";
    std::string data = "images", rows = "samples";
    // The settings, in the order of vae_run_setting_values.
    std::string latent = "latent", width = "width", reparam = "reparam", seed = "seed", batch = "batch", lr = "lr",
                kl_start = "kl_start", kl_steep = "kl_steep", product_precision = "product_precision";
};

// The settings that change what a run computes, besides its data: the latent size, the
// width, the reparameterization, the seed, the batch, the learning rate, the KL
// schedule and the products' precision, in that order, each keyed by its name in `names` with its value as text
// ("lr", "0.001"; doubles in the shortest text that reads back to the same value,
// format_number) and compared as the same.
inline std::vector<RunSetting> vae_run_setting_values(const SheepVaeOptions& model_options, const VaeRunSettings& s,
                                                      const VaeRunNames& names = {}) {
    return {{names.latent, std::to_string(model_options.latent)},
            {names.width, format_number(model_options.width)},
            {names.reparam, model_options.reparam == ReparamVariant::post ? "post" : "standard"},
            {names.seed, std::to_string(s.seed)},
            {names.batch, std::to_string(s.batch)},
            {names.lr, format_number(s.lr)},
            {names.kl_start, format_number(s.kl_start)},
            {names.kl_steep, format_number(s.kl_steep)},
            {names.product_precision, to_string(s.product_precision)}};
}

// Refuses (ewe::Error naming names.resume, `path`, the setting and both values) to
// continue checkpoint `c` on other data, or with another value of a setting in `compared`
// (keys of vae_run_setting_values with the same names).
inline void check_vae_run_resume(const VaeRunCheckpoint& c, const std::filesystem::path& path,
                                 const SheepVaeOptions& model_options, const VaeRunSettings& s,
                                 const std::vector<std::string>& compared, const VaeRunNames& names = {}) {
    if (c.settings.data_hash == 0) {  // an older checkpoint: only the sample count is known
        if (c.settings.samples != s.samples)
            fail(names.resume, ": ", path.string(), " was trained on ", c.settings.samples, " ", names.rows, " (",
                 c.settings.data, "), this run has ", s.samples, " (", s.data, "); use the same ", names.data);
    } else if (c.settings.data_hash != s.data_hash || c.settings.samples != s.samples) {
        fail(names.resume, ": ", path.string(), " was trained on ", vae_run_data_text(c.settings, names.rows),
             ", this run's ", vae_run_data_text(s, names.rows), "; use the same ", names.data);
    }
    const std::vector<RunSetting> before = vae_run_setting_values(c.model_options, c.settings, names);
    std::vector<RunSetting> now = vae_run_setting_values(model_options, s, names);
    std::erase_if(now, [&](const RunSetting& n) {
        return std::find(compared.begin(), compared.end(), n.key) == compared.end();
    });
    const std::optional<ChangedSetting> changed = first_changed_setting(now, [&](const std::string& flag) {
        return std::find_if(before.begin(), before.end(), [&](const RunSetting& b) { return b.key == flag; })->value;
    });
    if (changed)
        fail(names.resume, ": ", path.string(), " was trained with ", changed->now->key, " ", changed->before,
             ", this run asks for ", changed->now->key, " ", changed->now->value, "; leave ", changed->now->key,
             " out to continue with the checkpoint's, or train into another ", names.folder);
}

// The SheepVae of `model_options` for batches up to `max_batch`, refused up front when it
// needs more memory than is available (ewe::OutOfMemory, build_within_memory): the error
// names `batch_name` when the batch is what does not fit, else names.width.
template <class T>
SheepVae<T> sheep_vae_for_batch(Context& ctx, const SheepVaeOptions& model_options, std::int64_t max_batch,
                                std::uint64_t seed, const std::string& batch_name, const VaeRunNames& names = {}) {
    return build_within_memory([&] { return SheepVae<T>(ctx, model_options, max_batch, seed); },
                               {names.width, format_number(model_options.width), batch_name, max_batch, names.rows});
}

// One training run: what train_vae_run trains and where. `dir` is a RunFolder, locked
// while the run trains; a run in it is refused unless `resume` (continue it) or
// `overwrite` (delete its files first) says what to do with it.
template <class T>
struct VaeRunOptions {
    std::filesystem::path dir;
    SheepVaeOptions model_options;  // of a new run; a resumed run's come from its checkpoint,
    VaeRunSettings settings;        // as do these (samples, data_hash: train_vae_run's data)
    // The settings (keys of vae_run_setting_values) the user gave: on resume each must
    // equal the checkpoint's (refused naming both values); the others come from the checkpoint.
    std::vector<std::string> given_settings;
    std::int64_t epochs = 30;
    bool resume = false;         // continue from dir/checkpoint.safetensors when it exists
    bool overwrite = false;      // delete the run files in dir first and start a new run
    std::vector<std::int64_t> snapshots;  // epochs after which to save the latent space
    std::int64_t monitor = 256;  // posterior-collapse monitor on the first N images (0: off)
    Device device = Device::cpu;
    int threads = 0;
    std::ostream* log = nullptr;  // notes, the opening line and the progress bar
    bool progress_bar = true;     // the progress line and the opening line on `log`
    bool redraw = false;          // the progress bar redraws its line in place
    StopToken stop;               // training ends after the current step once a stop is requested
    bool handle_sigint = true;    // Ctrl-C requests `stop` (false: the caller routes Ctrl-C, e.g. one guard for a sweep)
    std::vector<std::shared_ptr<Callback<T>>> callbacks;  // run after the standard ones
    Communicator* communicator = nullptr;  // data-parallel over these ranks (settings.batch is global)
    ExpectedImages images;        // a checkpoint to resume must be for these
    VaeRunNames names;            // the words of the messages and the keys of the settings
};

struct VaeRunResult {
    bool stopped = false;  // a stop request (Ctrl-C) or one of the callbacks ended training before `epochs`
    TrainProgress progress;
    std::int64_t epochs_trained = 0;  // by this call (0: a resumed run was already at `epochs`)
    std::int64_t parameters = 0;
};

// Trains the run of `options` on `images` (host tensor (N, H, W, C), named `source` in
// messages and checkpoints). A resumed run continues the same data (by content hash) with
// the checkpoint's model and the settings that were not given; a line on the log says
// what it took from the checkpoint. A batch larger than the data is one batch of all of
// it (as in Keras), each rank's model holding its share of that global batch. Failures
// are ewe::Error (a diverging loss or non-finite weights name the step or tensor and the
// epoch the checkpoint keeps, if any).
template <class T>
VaeRunResult train_vae_run(const VaeRunOptions<T>& r, TensorView<const T> images, const std::string& source) {
    const std::int64_t n = images.dim(0);
    const VaeRunNames& names = r.names;
    SheepVaeOptions model_options = r.model_options;
    VaeRunSettings run = r.settings;
    run.samples = n;
    run.data = source;
    run.data_hash = io::content_hash<T>(images);
    RunFolderOptions folder_options;
    folder_options.resume = r.resume;
    folder_options.overwrite = r.overwrite;
    folder_options.epochs = r.epochs;
    folder_options.log = r.log;
    folder_options.communicator = r.communicator;
    folder_options.names = {names.who, names.folder, names.resume, names.overwrite, names.epochs, names.lr};
    RunFolder folder(r.dir, folder_options, [&](const std::filesystem::path& path) {
        VaeRunCheckpoint c = read_vae_run_checkpoint(path, names.resume, r.images);
        check_vae_run_resume(c, path, model_options, run, r.given_settings, names);
        model_options = c.model_options;
        c.settings.samples = run.samples;
        c.settings.data = run.data;
        c.settings.data_hash = run.data_hash;
        run = c.settings;
        return std::move(c.file);
    });
    VaeRunResult result;
    result.progress = folder.start();
    if (folder.finished()) return result;
    const bool root = r.communicator == nullptr || r.communicator->rank() == 0;
    std::ostringstream silent;  // other ranks' lines
    std::ostream& log = r.log && root ? *r.log : silent;
    if (folder.checkpoint()) {
        std::string taken;
        for (const RunSetting& s : vae_run_setting_values(model_options, run, names))
            if (std::find(r.given_settings.begin(), r.given_settings.end(), s.key) == r.given_settings.end())
                taken += (taken.empty() ? "" : ", ") + s.key + " " + s.value;
        log << "Resuming from " << folder.checkpoint()->path() << " after epoch " << folder.start().epoch << " ("
            << folder.start().iterations << " steps) on the same " << vae_run_data_text(run, names.rows)
            << (taken.empty() ? "" : "; from the checkpoint: ") << taken << "\n";
    }
    ContextOptions context_options;
    context_options.threads = r.threads;
    context_options.cpu_product_precision = run.product_precision;
    Context ctx(r.device, context_options);
    const std::int64_t ranks = r.communicator ? r.communicator->size() : 1;
    const std::int64_t batch = std::min(run.batch, std::max<std::int64_t>(n, 1));
    const std::int64_t rank_batch = (batch + ranks - 1) / ranks;
    SheepVae<T> vae = sheep_vae_for_batch<T>(ctx, model_options, rank_batch, run.seed, names.batch, names);
    VaeLoss<T> loss(ctx, VaeLossOptions{}, rank_batch);
    Rmsprop<T> optimizer(ctx, vae.params(), {.lr = run.lr});
    VaeObjective<T> objective(vae, loss);
    FitOptions fit;
    fit.epochs = r.epochs;
    fit.batch_size = batch;
    fit.shuffle_seed = run.seed;
    fit.communicator = r.communicator;
    fit.stop = r.stop;
    fit.handle_sigint = r.handle_sigint;
    Trainer<T> trainer(ctx, objective, optimizer, fit);
    RunCallbacksOptions<T> standard;
    standard.kl_schedule = KlAnnealing<T>::linear(run.kl_start, run.kl_steep);
    standard.snapshots = r.snapshots;
    standard.monitor = r.monitor;
    standard.log = r.log ? &log : nullptr;
    standard.progress_bar = r.progress_bar;
    standard.redraw = r.redraw;
    standard.metadata = [&](const TrainProgress&) { return vae_run_metadata(model_options, run); };
    standard.callbacks = r.callbacks;
    result.parameters = vae.params().total_count();
    if (r.progress_bar)
        log << "Training on " << n << " " << names.rows << " (" << source << "), batch " << batch
            << (ranks > 1 ? " over " + std::to_string(ranks) + " ranks" : "") << ", epochs " << folder.start().epoch + 1
            << ".." << r.epochs << ", " << to_string(r.device) << ", seed " << run.seed << ", " << result.parameters
            << " parameters\n";
    const FitResult fit_result = folder.train<T>(trainer, vae, images, standard);
    result.progress = fit_result.progress;
    result.epochs_trained = result.progress.epoch - folder.start().epoch;
    result.stopped = result.progress.epoch < r.epochs;
    return result;
}

// A trained model for inference: its context, the model and the checkpoint it came from.
template <class T>
struct TrainedVae {
    std::unique_ptr<Context> ctx;
    std::unique_ptr<SheepVae<T>> vae;
    VaeRunCheckpoint checkpoint;
};

// How load_trained_vae builds the model: rows per batch, CPU threads (0: OpenMP's
// current count), what gave the path, the images the program handles, and the names of
// the run's settings (the batch and width named when the model does not fit in memory).
struct TrainedVaeOptions {
    std::int64_t max_batch = 128;
    int threads = 0;
    std::string flag = "checkpoint";
    ExpectedImages images;
    VaeRunNames names;
};

// The model of a checkpoint written by train_vae_run, or of a run folder's
// checkpoint.safetensors (a folder without one is refused naming options.flag), on a new
// context of `device`, with its parameters loaded.
template <class T>
TrainedVae<T> load_trained_vae(const std::filesystem::path& path, Device device, const TrainedVaeOptions& options = {}) {
    const bool folder = std::filesystem::is_directory(path);
    const std::filesystem::path file = folder ? run_checkpoint_path(path) : path;
    if (folder && !std::filesystem::exists(file))
        fail(options.flag, ": ", path.string(), " is a folder without checkpoint.safetensors (expected a checkpoint "
             "or the folder of a training run)");
    TrainedVae<T> m{nullptr, nullptr, read_vae_run_checkpoint(file, options.flag, options.images)};
    ContextOptions context_options;
    context_options.threads = options.threads;
    m.ctx = std::make_unique<Context>(device, context_options);
    // new, not make_unique: the model is built in place from sheep_vae_for_batch's result (it cannot move).
    m.vae.reset(new SheepVae<T>(sheep_vae_for_batch<T>(*m.ctx, m.checkpoint.model_options, options.max_batch,
                                                       m.checkpoint.settings.seed, options.names.batch, options.names)));
    m.checkpoint.file.load_parameters(m.vae->params());
    return m;
}

}  // namespace ewe
