// What sheep_vae's source files share (private to sheep_vae_cli): where the program
// writes, the subcommands' registration, bitmaps from bytes or the default source,
// models loaded from checkpoints, and small helpers (devices, numbers).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <ewe/core/context.hpp>
#include <ewe/dist/communicator.hpp>
#include <ewe/io/run_lock.hpp>
#include <ewe/train/callback.hpp>
#include <ewe/train/interrupt.hpp>
#include <ewe/train/run_folder.hpp>

#include "sheep_vae/sheep_vae.hpp"

namespace CLI {
class App;
}

namespace sheep {

namespace fs = std::filesystem;
using ewe::fail;

// Where the program writes: results to `out`; progress, notes and errors to `err`,
// redrawn in place when `redraw`.
struct Console {
    std::ostream& out;
    std::ostream& err;
    bool redraw;
};

// printf into a stream.
void print(std::ostream& os, const char* format, ...) __attribute__((format(printf, 2, 3)));

// Each subcommand adds itself and its options to `app` and returns what runs it once
// the command line is parsed (its exit status).
using Command = std::function<int()>;
Command add_bench_command(CLI::App& app, const Console& io);
Command add_train_command(CLI::App& app, const Console& io);
Command add_generate_command(CLI::App& app, const Console& io);
Command add_anomalies_command(CLI::App& app, const Console& io);
Command add_explore_command(CLI::App& app, const Console& io);
Command add_sweep_command(CLI::App& app, const Console& io);
Command add_report_command(CLI::App& app, const Console& io);

// One training run of the sheep VAE as `train` makes it (src/train.cpp): RMSprop, the
// post's KL annealing, and in `dir` checkpoint.safetensors (each epoch; interrupted.
// safetensors on Ctrl-C), metrics.csv, logs/, the latent snapshots and loss.svg/kl.svg.
//
// `dir` is an ewe::RunFolder (ewe/train/run_folder.hpp): locked while the run trains,
// and a run in it is refused unless `resume` (continue it) or `overwrite` (delete its
// files first) says what to do with it.
struct TrainRun {
    fs::path dir;
    ewe::SheepVaeOptions model_options;  // of a new run; a resumed run's come from its checkpoint,
    RunSettings settings;        // as do these (samples, data and data_hash are the data's)
    // The setting flags of run_setting_values that were given: on resume each must equal
    // the checkpoint's (refused naming both values); the others come from the checkpoint.
    std::vector<std::string> given_settings;
    std::int64_t epochs = 30;
    bool resume = false;         // continue from dir/checkpoint.safetensors when it exists
    bool overwrite = false;      // delete the run files in dir first and start a new run
    std::vector<std::int64_t> snapshots;
    std::int64_t monitor = 256;  // posterior-collapse monitor on the first N drawings (0: off)
    ewe::Device device = ewe::Device::cpu;
    int threads = 0;
    ewe::CpuProductPrecision product_precision = ewe::CpuProductPrecision::fp32;
    bool progress_bar = true;    // the progress line and the opening line on `log`
    ewe::StopToken stop;         // training ends after the current step once a stop is requested
    bool handle_sigint = true;   // Ctrl-C requests `stop` (false: the caller routes Ctrl-C, e.g. one guard for a sweep)
    std::vector<std::shared_ptr<ewe::Callback<float>>> callbacks;  // run after train's own
    ewe::Communicator* communicator = nullptr;  // data-parallel over these ranks (run.settings.batch is global)
};
struct TrainOutcome {
    int status = 0;  // 0: trained through `epochs`; 130: stopped early (Ctrl-C or a callback)
    ewe::TrainProgress progress;
    std::int64_t epochs_trained = 0;  // by this call (0: a resumed run was already at `epochs`)
    std::int64_t parameters = 0;
};
// Trains on `data`; messages go to `log`, redrawn in place when `redraw`. Failures are
// ewe::Error (a diverging loss or non-finite weights name the step or tensor and the
// epoch the checkpoint keeps, if any).
TrainOutcome train_run(const TrainRun& run, const Bitmaps& data, std::ostream& log, bool redraw);

// The settings that change what a run computes, besides its data: --latent, --width,
// --reparam, --seed, --batch, --lr, --kl-start and --kl-steep, in that order, each keyed
// by its flag with its value as text ("--lr", "0.001"; doubles in the shortest text that
// reads back to the same value, ewe::format_number) and compared as the same.
std::vector<ewe::RunSetting> run_setting_values(const ewe::SheepVaeOptions& model_options, const RunSettings& settings);
// "data with hash 0x... (sheep.npy, 1000 drawings)".
std::string data_text(const RunSettings& settings);
// Refuses (ewe::Error naming --resume, `path`, the setting and both values) to continue
// checkpoint `c` on other data, or with another value of a setting in `compared`.
void check_resume(const SheepCheckpoint& c, const fs::path& path, const ewe::SheepVaeOptions& model_options,
                  const RunSettings& settings, const std::vector<std::string>& compared);

Bitmaps bitmaps_from_bytes(const std::uint8_t* bytes, std::int64_t n, std::string source);
// The training data when --data is not given: $EWE_DATA/sheep.npy if it exists, else
// procedural doodles (1,000 unless --limit says otherwise).
Bitmaps default_bitmaps(std::int64_t limit, std::uint64_t seed);

// Mixes drawings of another class into `data` for anomaly detection: `spec` is
// OTHER.npy:N (N > 0; named as `flag` in errors). The first N drawings of OTHER (all of
// them, with a note on `log`, when it holds fewer) are appended after data's own.
struct Planted {
    std::string file;
    std::int64_t count = 0;  // the last `count` rows of the data are planted
};
Planted plant_drawings(Bitmaps& data, const std::string& spec, const std::string& flag, std::ostream& log);

// The sheep VAE of `model_options` for batches up to `max_batch`, refused up front when it
// needs more memory than is available (ewe::OutOfMemory): the error names `batch_flag`
// (e.g. "--batch", "bench --batch") when the batch is what does not fit, else --width.
ewe::SheepVae<float> model_for_batch(ewe::Context& ctx, const ewe::SheepVaeOptions& model_options, std::int64_t max_batch,
                                     std::uint64_t seed, const std::string& batch_flag);

// A model for inference from a checkpoint, with room for `max_batch` rows, on a context
// of `threads` CPU threads (0: OpenMP's current count).
struct LoadedModel {
    std::unique_ptr<ewe::Context> ctx;
    std::unique_ptr<ewe::SheepVae<float>> vae;
    SheepCheckpoint checkpoint;
};
LoadedModel load_model(const fs::path& path, ewe::Device device, std::int64_t max_batch = 128, int threads = 0);

// 28x28 drawings tiled into a PNG, black ink on white.
void write_sheet(const fs::path& path, const std::vector<const float*>& drawings, int columns);

ewe::Device parse_device(const std::string& name);
// Parses "a,b,c" into numbers; `flag` names the option in errors.
std::vector<double> parse_numbers(const std::string& text, const std::string& flag);
// Parses "a,b,c" into epoch numbers >= 1; "" is none.
std::vector<std::int64_t> parse_epochs(const std::string& text, const std::string& flag);

}  // namespace sheep
