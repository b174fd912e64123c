// What sheep_vae's source files share (private to sheep_vae_cli): where the program
// writes, the subcommands' registration, bitmaps from bytes or the default source,
// models loaded from checkpoints, and small helpers (devices, numbers, JSON lines).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <ewe/core/context.hpp>

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
Command add_report_command(CLI::App& app, const Console& io);

Bitmaps bitmaps_from_bytes(const std::uint8_t* bytes, std::int64_t n, std::string source);
// The training data when --data is not given: $EWE_DATA/sheep.npy if it exists, else
// procedural doodles (1,000 unless --limit says otherwise).
Bitmaps default_bitmaps(std::int64_t limit, std::uint64_t seed);

// A model for inference from a checkpoint, with room for `max_batch` rows.
struct LoadedModel {
    std::unique_ptr<ewe::Context> ctx;
    std::unique_ptr<ewe::SheepVae<float>> vae;
    SheepCheckpoint checkpoint;
};
LoadedModel load_model(const fs::path& path, ewe::Device device, std::int64_t max_batch = 128);

// 28x28 drawings tiled into a PNG, black ink on white.
void write_sheet(const fs::path& path, const std::vector<const float*>& drawings, int columns);

ewe::Device parse_device(const std::string& name);
// Parses "a,b,c" into numbers; `flag` names the option in errors.
std::vector<double> parse_numbers(const std::string& text, const std::string& flag);
// Peak resident set size in MiB (VmHWM of /proc/self/status); 0 where unavailable.
double peak_rss_mb();
int thread_count();

// One JSON object on one line, built field by field.
class JsonLine {
public:
    JsonLine& add(const std::string& key, double v);
    JsonLine& add(const std::string& key, std::int64_t v) { return raw(key, std::to_string(v)); }
    JsonLine& add(const std::string& key, int v) { return raw(key, std::to_string(v)); }
    JsonLine& add(const std::string& key, const std::string& v);
    JsonLine& add(const std::string& key, const char* v) { return add(key, std::string(v)); }
    std::string str() const { return "{" + body_ + "}"; }

private:
    JsonLine& raw(const std::string& key, const std::string& v);
    std::string body_;
};

}  // namespace sheep
