// The sheep_vae program's checkpoints: ewe checkpoints (ewe/io/checkpoint.hpp) of format
// ewe.sheep_vae holding the model config and what --resume needs (seed, batch, lr, KL
// schedule, data size), read back with this program's own check (28x28x1 images), and
// models loaded from them for inference.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ewe/io/image_sheet.hpp>

#include "common.hpp"

namespace sheep {

// The settings of a run, stored in its checkpoints so that --resume continues it.
struct RunSettings {
    std::uint64_t seed = 0;
    std::int64_t batch = 8;
    double lr = 1e-3;
    double kl_start = 10, kl_steep = 10;
    std::int64_t samples = 0;
    std::string data;
};

inline ewe::CheckpointMetadata run_metadata(const ewe::SheepVaeConfig& config, const RunSettings& s) {
    ewe::CheckpointMetadata m = ewe::sheep_vae_metadata(config);
    m["loss"] = "2*28*28*MSE + kl_weight*KL (KL averaged over latent dimensions)";
    m["rng.seed"] = std::to_string(s.seed);
    m["train.batch"] = std::to_string(s.batch);
    m["train.kl_start"] = ewe::metadata_number(s.kl_start);
    m["train.kl_steep"] = ewe::metadata_number(s.kl_steep);
    m["train.samples"] = std::to_string(s.samples);
    m["train.data"] = s.data;
    return m;
}

struct SheepCheckpoint {
    ewe::Checkpoint file;
    ewe::SheepVaeConfig config;
    RunSettings settings;
    ewe::TrainProgress progress;
};

inline SheepCheckpoint read_checkpoint(const fs::path& path, const std::string& flag = "--checkpoint") {
    SheepCheckpoint c{ewe::Checkpoint::read(path, ewe::kSheepVaeFormat, ewe::kSheepVaeFormatVersion, flag), {}, {}, {}};
    c.config = ewe::sheep_vae_config(c.file);
    if (c.config.image_size != kSide || c.config.channels != 1)
        fail(flag, ": ", path.string(), ": the checkpoint is for ", c.config.image_size, "x", c.config.image_size, "x",
             c.config.channels, " images; this program handles 28x28x1 Quick, Draw! bitmaps");
    c.progress = ewe::read_progress(c.file);
    c.settings.seed = c.file.meta_uint64("rng.seed");
    c.settings.batch = c.file.meta_int("train.batch", 1, 1 << 20);
    c.settings.lr = c.file.meta_double("optimizer.lr", 1e-30, 1e6);
    c.settings.kl_start = c.file.meta_double("train.kl_start", 0.0, 1e9);
    c.settings.kl_steep = c.file.meta_double("train.kl_steep", 0.0, 1e9);
    c.settings.samples = c.file.meta_int("train.samples", 0, std::int64_t(1) << 62);
    c.settings.data = c.file.meta("train.data");
    return c;
}

// A model for inference from a checkpoint, with room for `max_batch` rows.
struct LoadedModel {
    std::unique_ptr<ewe::Context> ctx;
    std::unique_ptr<ewe::SheepVae<float>> vae;
    SheepCheckpoint checkpoint;
};

inline LoadedModel load_model(const fs::path& path, ewe::Device device, std::int64_t max_batch = 128) {
    LoadedModel m{nullptr, nullptr, read_checkpoint(path)};
    m.ctx = std::make_unique<ewe::Context>(device);
    m.vae = std::make_unique<ewe::SheepVae<float>>(*m.ctx, m.checkpoint.config, max_batch, m.checkpoint.settings.seed);
    m.checkpoint.file.load_parameters(m.vae->params());
    return m;
}

inline void write_sheet(const fs::path& path, const std::vector<const float*>& drawings, int columns, int scale = 2) {
    ewe::io::write_image_sheet(path, drawings, int(kSide), int(kSide), columns, scale);
}

}  // namespace sheep
