// What sheep_vae's source files share (private to sheep_vae_cli): where the program
// writes, the subcommands' registration, the words of its runs' messages, bitmaps from
// bytes or the default source, models loaded from checkpoints, and small helpers
// (devices, numbers).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <ewe/core/context.hpp>
#include <ewe/train/vae_run.hpp>

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

// The names of a run's settings and requests in this program's messages and records
// (ewe/train/vae_run.hpp): its flags; the data is given by --data and --limit, and its
// samples are drawings.
inline const ewe::VaeRunNames kRunNames{.who = "train",
                                        .folder = "--out",
                                        .resume = "--resume",
                                        .overwrite = "--overwrite",
                                        .epochs = "--epochs",
                                        .data = "--data and --limit",
                                        .rows = "drawings",
                                        .latent = "--latent",
                                        .width = "--width",
                                        .reparam = "--reparam",
                                        .seed = "--seed",
                                        .batch = "--batch",
                                        .lr = "--lr",
                                        .kl_start = "--kl-start",
                                        .kl_steep = "--kl-steep",
                                        .product_precision = "--product-precision"};

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

// A model for inference from a checkpoint written by train (ewe::load_trained_vae), with
// room for 128 rows, on a context of `threads` CPU threads (0: OpenMP's current count).
inline ewe::TrainedVae<float> load_model(const fs::path& path, ewe::Device device, int threads = 0) {
    return ewe::load_trained_vae<float>(
        path, device, {.threads = threads, .flag = "--checkpoint", .images = kQuickDrawImages, .names = kRunNames});
}

// 28x28 drawings tiled into a PNG, black ink on white.
void write_sheet(const fs::path& path, const std::vector<const float*>& drawings, int columns);

ewe::Device parse_device(const std::string& name);
// Parses "a,b,c" into numbers; `flag` names the option in errors.
std::vector<double> parse_numbers(const std::string& text, const std::string& flag);
// Parses "a,b,c" into epoch numbers >= 1; "" is none.
std::vector<std::int64_t> parse_epochs(const std::string& text, const std::string& flag);

}  // namespace sheep
