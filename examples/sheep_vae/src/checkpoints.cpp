// sheep_vae's checkpoints: ewe checkpoints (ewe/io/checkpoint.hpp) of format
// ewe.sheep_vae holding the model options and what --resume needs (seed, batch, lr, KL
// schedule, data size and content hash), read back with this program's own check
// (28x28x1 images), the check that a resumed run continues the same data and settings,
// and models loaded from them for inference.
#include "common.hpp"

#include <algorithm>
#include <optional>

#include <ewe/io/fingerprint.hpp>
#include <ewe/models/memory_refusal.hpp>
#include <ewe/train/model_checkpoint.hpp>

namespace sheep {

ewe::CheckpointMetadata run_metadata(const ewe::SheepVaeOptions& model_options, const RunSettings& s) {
    ewe::CheckpointMetadata m = ewe::sheep_vae_metadata(model_options);
    m["loss"] = "2*28*28*MSE + kl_weight*KL (KL averaged over latent dimensions)";
    m["rng.seed"] = std::to_string(s.seed);
    m["train.batch"] = std::to_string(s.batch);
    m["train.kl_start"] = ewe::metadata_number(s.kl_start);
    m["train.kl_steep"] = ewe::metadata_number(s.kl_steep);
    m["train.samples"] = std::to_string(s.samples);
    m["train.data"] = s.data;
    if (s.data_hash != 0) m["train.data_hash"] = ewe::io::hash_text(s.data_hash);
    return m;
}

SheepCheckpoint read_checkpoint(const fs::path& path, const std::string& flag) {
    SheepCheckpoint c{ewe::Checkpoint::read(path, ewe::kSheepVaeFormat, ewe::kSheepVaeFormatVersion, flag), {}, {}, {}};
    c.model_options = ewe::sheep_vae_options(c.file);
    if (c.model_options.image_size != kSide || c.model_options.channels != 1)
        fail(flag, ": ", path.string(), ": the checkpoint is for ", c.model_options.image_size, "x", c.model_options.image_size, "x",
             c.model_options.channels, " images; this program handles 28x28x1 Quick, Draw! bitmaps");
    c.progress = ewe::read_progress(c.file);
    c.settings.seed = c.file.meta_uint64("rng.seed");
    c.settings.batch = c.file.meta_int("train.batch", 1, 1 << 20);
    c.settings.lr = c.file.meta_double("optimizer.lr", 1e-30, 1e6);
    c.settings.kl_start = c.file.meta_double("train.kl_start", 0.0, 1e9);
    c.settings.kl_steep = c.file.meta_double("train.kl_steep", 0.0, 1e9);
    c.settings.samples = c.file.meta_int("train.samples", 0, std::int64_t(1) << 62);
    c.settings.data = c.file.meta("train.data");
    if (c.file.file().metadata.count("train.data_hash"))
        c.settings.data_hash = ewe::io::parse_hash_text(c.file.meta("train.data_hash"),
                                                        flag + " " + path.string() + ": metadata train.data_hash");
    return c;
}

std::string data_text(const RunSettings& s) {
    return "data with hash " + ewe::io::hash_text(s.data_hash) + " (" + s.data + ", " + std::to_string(s.samples) +
           " drawings)";
}

std::vector<ewe::RunSetting> run_setting_values(const ewe::SheepVaeOptions& model_options, const RunSettings& s) {
    return {{"--latent", std::to_string(model_options.latent)},
            {"--width", ewe::format_number(model_options.width)},
            {"--reparam", model_options.reparam == ewe::ReparamVariant::post ? "post" : "standard"},
            {"--seed", std::to_string(s.seed)},
            {"--batch", std::to_string(s.batch)},
            {"--lr", ewe::format_number(s.lr)},
            {"--kl-start", ewe::format_number(s.kl_start)},
            {"--kl-steep", ewe::format_number(s.kl_steep)}};
}

void check_resume(const SheepCheckpoint& c, const fs::path& path, const ewe::SheepVaeOptions& model_options,
                  const RunSettings& s, const std::vector<std::string>& compared) {
    if (c.settings.data_hash == 0) {  // an older checkpoint: only the drawing count is known
        if (c.settings.samples != s.samples)
            fail("--resume: ", path.string(), " was trained on ", c.settings.samples, " drawings (", c.settings.data,
                 "), this run has ", s.samples, " (", s.data, "); use the same --data and --limit");
    } else if (c.settings.data_hash != s.data_hash || c.settings.samples != s.samples) {
        fail("--resume: ", path.string(), " was trained on ", data_text(c.settings), ", this run's ", data_text(s),
             "; use the same --data and --limit");
    }
    const std::vector<ewe::RunSetting> before = run_setting_values(c.model_options, c.settings);
    std::vector<ewe::RunSetting> now = run_setting_values(model_options, s);
    std::erase_if(now, [&](const ewe::RunSetting& n) {
        return std::find(compared.begin(), compared.end(), n.key) == compared.end();
    });
    const std::optional<ewe::ChangedSetting> changed = ewe::first_changed_setting(now, [&](const std::string& flag) {
        return std::find_if(before.begin(), before.end(), [&](const ewe::RunSetting& b) { return b.key == flag; })->value;
    });
    if (changed)
        fail("--resume: ", path.string(), " was trained with ", changed->now->key, " ", changed->before, ", this run asks for ",
             changed->now->key, " ", changed->now->value, "; leave ", changed->now->key,
             " out to continue with the checkpoint's, or train into another --out");
}

ewe::SheepVae<float> model_for_batch(ewe::Context& ctx, const ewe::SheepVaeOptions& model_options, std::int64_t max_batch,
                                     std::uint64_t seed, const std::string& batch_flag) {
    return ewe::build_within_memory([&] { return ewe::SheepVae<float>(ctx, model_options, max_batch, seed); },
                                    {"--width", ewe::format_number(model_options.width), batch_flag, max_batch, "drawings"});
}

LoadedModel load_model(const fs::path& path, ewe::Device device, std::int64_t max_batch, int threads) {
    LoadedModel m{nullptr, nullptr, read_checkpoint(path)};
    ewe::ContextOptions options;
    options.threads = threads;
    m.ctx = std::make_unique<ewe::Context>(device, options);
    // new, not make_unique: the model is built in place from model_for_batch's result (it cannot move).
    m.vae.reset(new ewe::SheepVae<float>(
        model_for_batch(*m.ctx, m.checkpoint.model_options, max_batch, m.checkpoint.settings.seed, "--batch")));
    m.checkpoint.file.load_parameters(m.vae->params());
    return m;
}

}  // namespace sheep
