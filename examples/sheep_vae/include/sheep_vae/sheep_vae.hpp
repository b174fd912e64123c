// sheep_vae as a library (sheep_vae_cli): the whole program as one function that
// writes to the streams it is given, and the pieces its tests use: Quick, Draw! bitmap
// loading and the run's checkpoints (ewe/train/vae_run.hpp, format ewe.sheep_vae).
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>

#include <ewe/core/tensor.hpp>
#include <ewe/train/vae_run.hpp>

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

// The images this program handles: a checkpoint for others is refused, naming them.
inline const ewe::ExpectedImages kQuickDrawImages{kSide, 1, "Quick, Draw! bitmaps"};

// Reads a checkpoint written by train (ewe::read_vae_run_checkpoint), refusing (ewe::Error
// naming `flag` and the file) other formats, versions, architectures, image sizes and
// damaged files.
inline ewe::VaeRunCheckpoint read_checkpoint(const std::filesystem::path& path, const std::string& flag = "--checkpoint") {
    return ewe::read_vae_run_checkpoint(path, flag, kQuickDrawImages);
}

}  // namespace sheep
