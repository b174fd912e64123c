// A VAE's training run in one folder, as Keras' fit() with its standard callbacks makes
// it: add_run_callbacks gives a Trainer the callbacks that write DIR/checkpoint.
// safetensors (each epoch; interrupted.safetensors on a stop request), metrics.csv,
// logs/ (TensorBoard), latent_epochNNN.{npy,svg} snapshots, and that anneal the KL
// weight, draw a progress bar and watch for posterior collapse; write_loss_plots draws
// loss.svg and kl.svg from metrics.csv once the run ends. The run's files are known by
// name (run_files), described for messages (run_files_text) and deleted one by one
// (delete_run_files), so a program can refuse, continue or replace a run without
// touching the other files a user keeps in the folder. Locking the folder while a run
// writes there is ewe::io::RunLock (ewe/io/run_lock.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <system_error>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/csv.hpp"
#include "ewe/io/files.hpp"
#include "ewe/io/safetensors.hpp"
#include "ewe/io/svg.hpp"
#include "ewe/models/vae.hpp"
#include "ewe/train/kl_annealing.hpp"
#include "ewe/train/latent_snapshots.hpp"
#include "ewe/train/loggers.hpp"
#include "ewe/train/model_checkpoint.hpp"
#include "ewe/train/posterior_monitor.hpp"
#include "ewe/train/progress_bar.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

// The checkpoint files of a run folder.
inline std::filesystem::path run_checkpoint_path(const std::filesystem::path& dir) {
    return dir / "checkpoint.safetensors";
}
inline std::filesystem::path run_interrupted_path(const std::filesystem::path& dir) {
    return dir / "interrupted.safetensors";
}

// The epoch a checkpoint file holds (its metadata's "epoch", from the header alone); -1
// when there is no file or it cannot be read.
inline std::int64_t checkpoint_epoch(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) return -1;
    try {
        const io::SafetensorsFile file = io::read_safetensors_header(path);
        const auto it = file.metadata.find("epoch");
        return it == file.metadata.end() ? -1 : std::atoll(it->second.c_str());
    } catch (const Error&) {
        return -1;
    }
}

// What a checkpoint file holds, for messages: "PATH holds epoch 3", "no PATH was written"
// or "PATH cannot be read".
inline std::string checkpoint_state(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) return "no " + path.string() + " was written";
    const std::int64_t epoch = checkpoint_epoch(path);
    return epoch >= 0 ? path.string() + " holds epoch " + std::to_string(epoch) : path.string() + " cannot be read";
}

// The files of `dir` that a run writes and that exist: checkpoint.safetensors,
// interrupted.safetensors, metrics.csv, loss.svg, kl.svg, latent_epoch*.{npy,svg} and
// logs/events.out.tfevents.* (no other file: a lock file, a program's own log).
inline std::vector<std::filesystem::path> run_files(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const char* name : {"checkpoint.safetensors", "interrupted.safetensors", "metrics.csv", "loss.svg", "kl.svg"})
        if (std::filesystem::is_regular_file(dir / name, ec)) files.push_back(dir / name);
    for (const auto& f : io::files_named(dir, "latent_epoch", {".npy", ".svg"}))
        if (std::filesystem::is_regular_file(f, ec)) files.push_back(f);
    for (const auto& f : io::files_named(dir / "logs", "events.out.tfevents.", {""}))
        if (std::filesystem::is_regular_file(f, ec)) files.push_back(f);
    return files;
}

// What run_files found, for messages: "checkpoint.safetensors after epoch 3, metrics.csv,
// 4 latent_epoch* files, logs/ with 1 event file".
inline std::string run_files_text(const std::filesystem::path& dir, const std::vector<std::filesystem::path>& files) {
    std::string text;
    std::size_t snapshots = 0, events = 0;
    for (const std::filesystem::path& f : files) {
        const std::string name = f.filename().string();
        if (name.starts_with("latent_epoch")) {
            ++snapshots;
            continue;
        }
        if (f.parent_path() == dir / "logs") {
            ++events;
            continue;
        }
        text += (text.empty() ? "" : ", ") + name;
        if (name == "checkpoint.safetensors") {
            const std::int64_t epoch = checkpoint_epoch(f);
            text += epoch >= 0 ? " after epoch " + std::to_string(epoch) : std::string(" (unreadable)");
        }
    }
    if (snapshots > 0) text += (text.empty() ? "" : ", ") + std::to_string(snapshots) + " latent_epoch* files";
    if (events > 0)
        text += (text.empty() ? "" : ", ") + std::string("logs/ with ") + std::to_string(events) + " event file" +
                (events == 1 ? "" : "s");
    return text;
}

// Deletes `files` (from run_files) and logs/ when that leaves it empty; other files stay.
// A file that cannot be deleted is an ewe::Error naming `who`, the file and the reason.
inline void delete_run_files(const std::filesystem::path& dir, const std::vector<std::filesystem::path>& files,
                             const std::string& who) {
    for (const std::filesystem::path& f : files) {
        std::error_code ec;
        std::filesystem::remove(f, ec);
        if (ec) fail(who, ": cannot delete ", f.string(), ": ", ec.message());
    }
    std::error_code ec;
    if (std::filesystem::is_directory(dir / "logs", ec) && std::filesystem::is_empty(dir / "logs", ec))
        std::filesystem::remove(dir / "logs", ec);
}

// What add_run_callbacks adds, besides the CSV log, TensorBoard and the checkpoints.
template <class T>
struct RunCallbacksOptions {
    typename KlAnnealing<T>::Schedule kl_schedule;  // the KL weight per epoch
    std::vector<std::int64_t> snapshots;            // epochs after which to save the latent space
    std::int64_t monitor = 256;                     // posterior-collapse monitor on the first N images (0: off)
    std::ostream* log = nullptr;                    // KL-weight changes, the monitor's warnings, the progress bar
    bool progress_bar = true;                       // on `log`
    bool redraw = false;                            // the progress bar redraws its line in place
    // Each checkpoint's metadata besides Trainer::resume_metadata (format, model, run settings).
    typename ModelCheckpoint<T>::MetadataFn metadata;
};

// Adds to `trainer`, in this order: KL annealing, the progress bar, metrics.csv, logs/
// (the "recon" term tagged "reconstruction"), the latent snapshots of `images`, the
// posterior monitor and the checkpoints (dir/checkpoint.safetensors every epoch,
// dir/interrupted.safetensors on a stop request).
template <class T>
void add_run_callbacks(Trainer<T>& trainer, Vae<T>& vae, TensorView<const T> images, const std::filesystem::path& dir,
                       const RunCallbacksOptions<T>& options) {
    trainer.add(std::make_shared<KlAnnealing<T>>(options.kl_schedule, options.log));
    if (options.progress_bar && options.log) trainer.add(std::make_shared<ProgressBar<T>>(*options.log, options.redraw));
    trainer.add(std::make_shared<CsvLogger<T>>(dir / "metrics.csv"));
    trainer.add(std::make_shared<TensorBoardLogger<T>>(dir / "logs",
                                                       std::map<std::string, std::string>{{"recon", "reconstruction"}}));
    trainer.add(std::make_shared<LatentSnapshots<T>>(vae, images, dir, options.snapshots));
    if (options.monitor > 0)
        trainer.add(std::make_shared<PosteriorMonitor<T>>(vae, images.leading(std::min(options.monitor, images.dim(0))),
                                                          options.log));
    ModelCheckpointOptions saving;
    saving.path = run_checkpoint_path(dir);
    saving.interrupted_path = run_interrupted_path(dir);
    trainer.add(std::make_shared<ModelCheckpoint<T>>(saving, options.metadata));
}

// dir/loss.svg (loss and reconstruction per epoch) and dir/kl.svg (the KL term and its
// weight) from dir/metrics.csv as CsvLogger writes it for a VAE.
inline void write_loss_plots(const std::filesystem::path& dir) {
    const io::CsvTable metrics = io::CsvTable::read(dir / "metrics.csv");
    const std::vector<double> e = metrics.numbers("epoch"), loss = metrics.numbers("loss"),
                              recon = metrics.numbers("recon"), kl = metrics.numbers("kl"),
                              w = metrics.numbers("kl_weight");
    io::SvgPlot plot("Training loss per epoch", "epoch", "mean per drawing");
    plot.line(e, loss, io::palette(0), "loss").line(e, recon, io::palette(1), "reconstruction");
    plot.write(dir / "loss.svg");
    io::SvgPlot klp("KL term and its annealed weight", "epoch", "value");
    klp.line(e, kl, io::palette(2), "KL (mean over latent dims)").line(e, w, io::palette(4), "KL weight");
    klp.write(dir / "kl.svg");
}

}  // namespace ewe
