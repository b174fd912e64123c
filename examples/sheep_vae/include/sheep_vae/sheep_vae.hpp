// sheep_vae as a library (sheep_vae_cli): the whole program as one function that
// writes to the streams it is given, and the pieces its tests use: Quick, Draw! bitmap
// loading, procedural sheep and the run's checkpoints (format ewe.sheep_vae).
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include <ewe/core/tensor.hpp>
#include <ewe/models/sheep_vae_checkpoint.hpp>
#include <ewe/train/callback.hpp>

// Runs `sheep_vae argv[1] ...` (summary, bench, train, generate, anomalies, explore, sweep, report; each
// with --help): results and help go to `out`, progress, notes and errors to `err`; the
// progress bar redraws in place only when `err` is std::cerr on a terminal. Returns the
// exit status: 0 on success, 130 when SIGINT stopped train or sweep, else non-zero with the
// error named on `err`. Never throws.
int sheep_vae_main(int argc, char** argv, std::ostream& out, std::ostream& err);

namespace sheep {

constexpr std::int64_t kSide = 28, kPixels = kSide * kSide;

// Drawings as floats in [0, 1], shape (N, 28, 28, 1), on the host.
struct Bitmaps {
    ewe::Tensor<float> images;
    std::string source;  // file name or "procedural"
    std::int64_t count() const { return images.numel() == 0 ? 0 : images.dim(0); }
    const float* row(std::int64_t i) const { return images.data() + i * kPixels; }
};

// Reads Quick, Draw! bitmaps: uint8 (N, 784) or (N, 28, 28) with 0..255 ink, or float32
// of those shapes with values in [0, 1]. `limit` > 0 keeps the first `limit` rows.
// Every rejection is an ewe::Error naming `flag` and the file; an empty path is one.
Bitmaps load_bitmaps(const std::filesystem::path& path, std::int64_t limit = 0, const std::string& flag = "--data");

// `count` procedural sheep doodles (count x 784 bytes, 0 background, 255 ink), the same
// for the same seed.
std::vector<std::uint8_t> procedural_sheep(std::int64_t count, std::uint64_t seed);

// The settings of a run, stored in its checkpoints so that --resume continues it.
struct RunSettings {
    std::uint64_t seed = 0;
    std::int64_t batch = 8;
    double lr = 1e-3;
    double kl_start = 10, kl_steep = 10;
    std::int64_t samples = 0;
    std::string data;
    std::uint64_t data_hash = 0;  // ewe::io::content_hash of the drawings; 0: not recorded (an older checkpoint)
};

// The metadata of a training checkpoint: the model's (ewe::sheep_vae_metadata) and the run's.
ewe::CheckpointMetadata run_metadata(const ewe::SheepVaeOptions& model_options, const RunSettings& settings);

struct SheepCheckpoint {
    ewe::Checkpoint file;
    ewe::SheepVaeOptions model_options;
    RunSettings settings;
    ewe::TrainProgress progress;
};

// Reads a checkpoint written by train, refusing (ewe::Error naming `flag` and the file)
// other formats, versions, architectures, image sizes and damaged files.
SheepCheckpoint read_checkpoint(const std::filesystem::path& path, const std::string& flag = "--checkpoint");

}  // namespace sheep
