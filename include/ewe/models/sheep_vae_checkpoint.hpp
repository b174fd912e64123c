// The sheep VAE's configuration as checkpoint metadata ("model.*" keys of format
// ewe.sheep_vae, version 1) and back, every value range-checked on the way in.
// model.width (SheepVaeOptions::width) came later: a checkpoint without it is of the
// post's widths (1).
#pragma once

#include <string>

#include "ewe/io/checkpoint.hpp"
#include "ewe/models/sheep_vae.hpp"

namespace ewe {

inline constexpr const char* kSheepVaeFormat = "ewe.sheep_vae";
inline constexpr const char* kSheepVaeFormatVersion = "1";

inline CheckpointMetadata sheep_vae_metadata(const SheepVaeOptions& c) {
    return {{"format", kSheepVaeFormat},
            {"format_version", kSheepVaeFormatVersion},
            {"model.image_size", std::to_string(c.image_size)},
            {"model.channels", std::to_string(c.channels)},
            {"model.kernel", std::to_string(c.kernel)},
            {"model.filters", metadata_list(c.filters)},
            {"model.units", metadata_list(c.units)},
            {"model.latent", std::to_string(c.latent)},
            {"model.dropout", metadata_number(c.dropout)},
            {"model.reparam", c.reparam == ReparamVariant::standard ? "standard" : "post"},
            {"model.width", metadata_number(c.width)}};
}

inline SheepVaeOptions sheep_vae_options(const Checkpoint& c) {
    SheepVaeOptions options;
    options.image_size = c.meta_int("model.image_size", 2, 4096);
    options.channels = c.meta_int("model.channels", 1, 64);
    options.kernel = c.meta_int("model.kernel", 1, 64);
    options.filters = c.meta_list("model.filters", 16, 4096);
    options.units = c.meta_list("model.units", 16, 1 << 16);
    options.latent = c.meta_int("model.latent", 1, 4096);
    options.dropout = c.meta_double("model.dropout", 0.0, 0.999);
    const std::string& reparam = c.meta("model.reparam");
    if (reparam != "standard" && reparam != "post")
        fail(c.source(), " ", c.path(), ": metadata model.reparam = '", reparam, "' (expected standard or post)");
    options.reparam = reparam == "post" ? ReparamVariant::post : ReparamVariant::standard;
    if (c.file().metadata.count("model.width")) options.width = c.meta_double("model.width", 1e-9, SheepVaeOptions::kMaxWidth);
    try {
        options.validate();
    } catch (const Error& e) {
        fail(c.source(), " ", c.path(), ": ", e.what());
    }
    return options;
}

}  // namespace ewe
