// sheep_vae's checkpoints: ewe checkpoints (ewe/io/checkpoint.hpp) of format
// ewe.sheep_vae holding the model config and what --resume needs (seed, batch, lr, KL
// schedule, data size), read back with this program's own check (28x28x1 images), and
// models loaded from them for inference.
#include "common.hpp"

#include <ewe/train/model_checkpoint.hpp>

namespace sheep {

ewe::CheckpointMetadata run_metadata(const ewe::SheepVaeConfig& config, const RunSettings& s) {
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

SheepCheckpoint read_checkpoint(const fs::path& path, const std::string& flag) {
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

ewe::SheepVae<float> model_for_batch(ewe::Context& ctx, const ewe::SheepVaeConfig& config, std::int64_t max_batch,
                                     std::uint64_t seed, const std::string& batch_flag) {
    try {
        return ewe::SheepVae<float>(ctx, config, max_batch, seed);
    } catch (const ewe::OutOfMemory& e) {
        const std::string available = ewe::format_bytes(e.available()) + " are available (MemAvailable, or "
                                      "EWE_MEMORY_LIMIT when lower)";
        if (e.needed().fixed() > e.available())
            fail("--width ", ewe::format_number(config.width), ": the model's parameters and gradients alone need ",
                 ewe::format_bytes(e.needed().fixed()), ", but ", available, "; lower --width");
        fail(batch_flag, " ", max_batch, ": a model for batches of ", max_batch, " drawings needs ",
             e.needed().describe(), ", but ", available, "; lower ", batch_flag, " (or --width)");
    }
}

LoadedModel load_model(const fs::path& path, ewe::Device device, std::int64_t max_batch, int threads) {
    LoadedModel m{nullptr, nullptr, read_checkpoint(path)};
    ewe::ContextOptions options;
    options.threads = threads;
    m.ctx = std::make_unique<ewe::Context>(device, options);
    // new, not make_unique: the model is built in place from model_for_batch's result (it cannot move).
    m.vae.reset(new ewe::SheepVae<float>(
        model_for_batch(*m.ctx, m.checkpoint.config, max_batch, m.checkpoint.settings.seed, "--batch")));
    m.checkpoint.file.load_parameters(m.vae->params());
    return m;
}

}  // namespace sheep
