// A VAE's training run in one folder, as Keras' fit() with its standard callbacks makes
// it: add_run_callbacks gives a Trainer the callbacks that write DIR/checkpoint.
// safetensors (each epoch; interrupted.safetensors on a stop request), metrics.csv,
// logs/ (TensorBoard), latent_epochNNN.{npy,svg} snapshots, and that anneal the KL
// weight, draw a progress bar and watch for posterior collapse; write_loss_plots draws
// loss.svg and kl.svg from metrics.csv once the run ends. The run's files are known by
// name (run_files), described for messages (run_files_text) and deleted one by one
// (delete_run_files), so a program can refuse, continue or replace a run without
// touching the other files a user keeps in the folder. RunFolder puts it together:
// train into a folder, locked while the run writes there (ewe/io/run_lock.hpp),
// resuming the run it holds, replacing it or refusing it, as the user asked. RunSetting
// and first_changed_setting compare the settings a run recorded with a continuation's.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/csv.hpp"
#include "ewe/io/files.hpp"
#include "ewe/io/run_lock.hpp"
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

// A setting a run records and compares when it continues (a sweep's sweep_settings.csv,
// a run's checkpoint): its key (e.g. the flag that gives it), its value as text and the
// rule it is compared by: `same` must be equal (when `described_by` names a `note`, a
// mismatch is told with that note's values instead, e.g. a data hash by the data's name;
// `flags` says what gives it, by default the key); `at_least` is an integer that may grow
// (e.g. the epochs); a `note` is recorded and never compared.
struct RunSetting {
    enum class Rule { same, at_least, note };
    RunSetting(std::string key, std::string value, Rule rule = Rule::same, std::string described_by = "",
               std::string flags = "")
        : key(std::move(key)), value(std::move(value)), rule(rule), described_by(std::move(described_by)),
          flags(std::move(flags)) {}
    std::string key, value;
    Rule rule;
    std::string described_by, flags;
};

// A setting whose recorded value breaks its rule: the setting as it is now, and the value before.
struct ChangedSetting {
    const RunSetting* now = nullptr;
    std::string before;
};

// The first setting of `now` whose recorded value, `recorded(key)` (asked of notes too,
// so it may refuse a record without one), breaks its rule; none when every rule holds.
inline std::optional<ChangedSetting> first_changed_setting(
    const std::vector<RunSetting>& now, const std::function<std::string(const std::string& key)>& recorded) {
    for (const RunSetting& s : now) {
        std::string before = recorded(s.key);
        if (before == s.value || s.rule == RunSetting::Rule::note) continue;
        if (s.rule == RunSetting::Rule::at_least && std::atoll(before.c_str()) <= std::atoll(s.value.c_str())) continue;
        return ChangedSetting{&s, std::move(before)};
    }
    return std::nullopt;
}

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
    std::vector<std::shared_ptr<Callback<T>>> callbacks;  // the caller's own, added after the standard ones
};

// Adds to `trainer`, in this order: KL annealing, the progress bar, metrics.csv, logs/
// (the "recon" term tagged "reconstruction"), the latent snapshots of `images`, the
// posterior monitor, the checkpoints (dir/checkpoint.safetensors every epoch,
// dir/interrupted.safetensors on a stop request), then options.callbacks.
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
    for (const auto& callback : options.callbacks) trainer.add(callback);
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

// What RunFolder does with a folder that holds a run, and the names its messages give
// the caller's settings (a program passes its flags).
struct RunFolderOptions {
    bool resume = false;     // continue the run from dir/checkpoint.safetensors when it exists
    bool overwrite = false;  // delete the run's files (run_files) and start a new run
    std::int64_t epochs = 1;  // train through this epoch, counting those done (FitOptions::epochs)
    std::ostream* log = nullptr;  // notes: files deleted, nothing left to train, where a stop left the run
    // Data-parallel: every rank opens the folder and trains; rank 0 alone locks it,
    // deletes files and writes, and the ranks wait for it before anyone writes.
    Communicator* communicator = nullptr;
    struct Names {
        std::string who = "train", folder = "--out", resume = "--resume", overwrite = "--overwrite",
                    epochs = "--epochs", lr = "--lr";
    } names;
};

// A training run in one folder, resumed, replaced or refused as a user asked: what
// `sheep_vae train` does with --out, --resume and --overwrite, for any VAE. The
// constructor locks the folder (io::lock_run_folder; rank 0) and looks at it:
//   - options.resume and dir/checkpoint.safetensors exists: the run continues from it
//     (read by `read`, the program's own format and settings checks), refused when it
//     already holds more epochs than options.epochs and finished() (nothing to train,
//     noted on the log) when it holds exactly as many;
//   - the folder holds run files (run_files) otherwise: refused, naming them, unless
//     options.overwrite, which deletes them (and no other file) first;
//   - options.resume and no files at all: a new run, noted on the log.
// Between the two calls the program builds its model and trainer, from checkpoint()'s
// metadata when it continues one; train() then runs it in the folder.
class RunFolder {
public:
    // Reads a checkpoint to continue, refusing (ewe::Error) one the program cannot.
    using CheckpointReader = std::function<Checkpoint(const std::filesystem::path&)>;

    RunFolder(std::filesystem::path dir, RunFolderOptions options, const CheckpointReader& read)
        : dir_(std::move(dir)), options_(std::move(options)) {
        const RunFolderOptions::Names& names = options_.names;
        if (is_root()) lock_ = io::lock_run_folder(dir_, names.folder);
        std::error_code ec;
        std::filesystem::create_directories(dir_, ec);
        if (ec) fail(names.folder, ": cannot create ", dir_.string(), ": ", ec.message());
        const std::filesystem::path path = run_checkpoint_path(dir_);
        const std::vector<std::filesystem::path> previous = run_files(dir_);
        if (options_.resume && std::filesystem::exists(path)) {
            checkpoint_.emplace(read(path));
            start_ = read_progress(*checkpoint_);
            const std::int64_t done = start_.epoch, epochs = options_.epochs;
            if (done > epochs)
                fail(names.epochs, ": ", path.string(), " already holds epoch ", done, "; ", names.epochs, " ", epochs,
                     " is the total to reach, not a number to add: pass ", names.epochs, " ", done + 1,
                     " or more to continue");
            if (done == epochs) {
                note(names.who, ": ", path.string(), " already holds epoch ", done, " of ", names.epochs, " ", epochs,
                     ": nothing left to train, nothing written (pass a larger ", names.epochs, " to continue)\n");
                finished_ = true;
                return;
            }
        } else if (!previous.empty() && !options_.overwrite) {
            if (options_.resume)
                fail(names.resume, ": ", dir_.string(), " holds files of a run (", run_files_text(dir_, previous),
                     ") but no checkpoint.safetensors to continue from (it stopped before its first epoch ended); "
                     "pass ", names.overwrite, " instead of ", names.resume, " to delete them and start over");
            fail(names.folder, ": ", dir_.string(), " already holds a run; pass ", names.resume, " to continue it, or ",
                 names.overwrite, " to delete its files and start over (found: ", run_files_text(dir_, previous),
                 "; other files are kept)");
        } else if (!previous.empty()) {
            const std::string deleted = run_files_text(dir_, previous);
            if (is_root()) delete_run_files(dir_, previous, names.overwrite);
            note(dir_.string(), ": deleted the files of the previous run (", deleted, "); other files are kept\n");
        } else if (options_.resume) {
            note(names.resume, ": no ", path.string(), " yet, starting a new run\n");
        }
        // Every rank has looked at the folder before rank 0 writes into it.
        if (options_.communicator) options_.communicator->barrier();
    }

    const std::filesystem::path& dir() const { return dir_; }
    // The checkpoint the run continues from; nullptr for a new run.
    const Checkpoint* checkpoint() const { return checkpoint_ ? &*checkpoint_ : nullptr; }
    // Where the run starts: the checkpoint's position, or epoch 0.
    const TrainProgress& start() const { return start_; }
    // The checkpoint already holds options.epochs: train() trains nothing.
    bool finished() const { return finished_; }

    // Trains `trainer` (options.epochs and the batch of the run it continues) on `images`
    // in the folder: restores the checkpoint's run (Trainer::resume; a checkpoint older
    // than Trainer::resume_metadata, its parameters, optimizer state and position), adds
    // the run's callbacks (add_run_callbacks), fits, and draws loss.svg and kl.svg once
    // the last epoch is done. A diverging loss or non-finite weights is an ewe::Error
    // naming the step or tensor and the epoch the checkpoint keeps; a stop request
    // (Ctrl-C) returns with a note on the log of what is on disk.
    template <class T>
    FitResult train(Trainer<T>& trainer, Vae<T>& vae, TensorView<const T> images, const RunCallbacksOptions<T>& callbacks) {
        EWE_REQUIRE(trainer.options().epochs == options_.epochs, "RunFolder::train: the trainer trains through epoch ",
                    trainer.options().epochs, ", the folder was opened for ", options_.epochs);
        if (finished_) return FitResult{start_};
        std::optional<TrainProgress> from;
        if (checkpoint_ && checkpoint_->file().metadata.count("fit.batch_size")) {
            trainer.resume(*checkpoint_);
        } else if (checkpoint_) {
            checkpoint_->load_parameters(trainer.objective().params());
            checkpoint_->load_optimizer(trainer.optimizer(), start_.iterations,
                                        checkpoint_->meta_double("optimizer.lr", 1e-300, 1e300));
            from = start_;
        }
        checkpoint_.reset();  // its tensors are in the model now
        add_run_callbacks<T>(trainer, vae, images, dir_, callbacks);
        const RunFolderOptions::Names& names = options_.names;
        const std::filesystem::path path = run_checkpoint_path(dir_);
        const std::string hint = start_.epoch > 0
                                     ? " (diverged at the checkpoint's learning rate; a new run with a smaller " +
                                           names.lr + " may not)"
                                     : " (diverged; try a smaller " + names.lr + ")";
        FitResult result;
        try {
            result = trainer.fit(images, from);
        } catch (const LossDiverged& e) {
            fail(names.who, ": ", e.reason(), ". ", kept_checkpoint(path), hint);
        } catch (const NonFiniteCheckpoint& e) {
            fail(names.who, ": the weights became non-finite: ", e.what(), ". ", kept_checkpoint(path), hint);
        }
        if (result.interrupted) {
            // What is on disk, read back from the files rather than assumed.
            const std::filesystem::path interrupted = run_interrupted_path(dir_);
            note("\n", names.who, ": interrupted at epoch ", result.progress.epoch + 1, ", step ",
                 trainer.interrupted_step(), ": ",
                 std::filesystem::exists(interrupted) ? "the weights of that moment are in " + interrupted.string()
                                                      : "no " + interrupted.string() + " was written",
                 "; ", checkpoint_state(path),
                 checkpoint_epoch(path) >= 0 ? ", and " + names.resume + " continues from it"
                                             : " (no epoch finished): " + names.overwrite + " starts the run over",
                 "\n");
        } else if (result.progress.epoch == options_.epochs && trainer.is_root()) {
            write_loss_plots(dir_);
        }
        return result;
    }

private:
    bool is_root() const { return options_.communicator == nullptr || options_.communicator->rank() == 0; }
    template <class... Parts>
    void note(const Parts&... parts) const {
        if (options_.log && is_root()) *options_.log << detail::concat(parts...);
    }
    // What the checkpoint holds after training diverged: every save and every resume
    // checked its weights finite, so its epoch is the last good one the run kept.
    static std::string kept_checkpoint(const std::filesystem::path& path) {
        if (!std::filesystem::exists(path))
            return "no checkpoint was saved before that (" + path.string() + " does not exist)";
        const std::int64_t epoch = checkpoint_epoch(path);
        return epoch >= 0 ? path.string() + " keeps epoch " + std::to_string(epoch) + ", the last good one"
                          : path.string() + " cannot be read back";
    }

    std::filesystem::path dir_;
    RunFolderOptions options_;
    std::unique_ptr<io::RunLock> lock_;  // rank 0's, while the RunFolder lives
    std::optional<Checkpoint> checkpoint_;
    TrainProgress start_;
    bool finished_ = false;
};

}  // namespace ewe
