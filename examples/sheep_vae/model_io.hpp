// Checkpoints of the sheep VAE (safetensors: every parameter by name, the RMSprop
// state, the model config and training position in __metadata__), batched encoding
// and decoding on any device, and image sheets (black ink on white PNG tiles).
#pragma once

#include <cerrno>
#include <cmath>
#include <limits>

#include <cstdint>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/io/png.hpp>
#include <ewe/io/safetensors.hpp>

#include "common.hpp"

namespace sheep {

constexpr const char* kCheckpointFormat = "ewe.sheep_vae";
constexpr const char* kCheckpointVersion = "1";

inline std::string join(const std::vector<std::int64_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(v[i]);
    }
    return s;
}

inline std::string fmt(double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// Where a run stands; stored in the checkpoint next to the model config.
struct TrainState {
    std::int64_t epoch = 0;       // epochs completed
    std::int64_t iterations = 0;  // optimizer steps taken
    std::uint64_t seed = 0;
    std::int64_t batch = 8;
    double lr = 1e-3;
    double kl_start = 10, kl_steep = 10;
    std::int64_t samples = 0;
    std::string data;
};

inline std::map<std::string, std::string> checkpoint_metadata(const ewe::SheepVaeConfig& c, const TrainState& s) {
    return {{"format", kCheckpointFormat},
            {"format_version", kCheckpointVersion},
            {"model.image_size", std::to_string(c.image_size)},
            {"model.channels", std::to_string(c.channels)},
            {"model.kernel", std::to_string(c.kernel)},
            {"model.filters", join(c.filters)},
            {"model.units", join(c.units)},
            {"model.latent", std::to_string(c.latent)},
            {"model.dropout", fmt(c.dropout)},
            {"model.reparam", c.reparam == ewe::ReparamVariant::standard ? "standard" : "post"},
            {"loss", "2*28*28*MSE + kl_weight*KL (KL averaged over latent dimensions)"},
            {"optimizer", "RMSprop"},
            {"optimizer.iterations", std::to_string(s.iterations)},
            {"optimizer.lr", fmt(s.lr)},
            {"epoch", std::to_string(s.epoch)},
            {"rng.seed", std::to_string(s.seed)},
            {"train.batch", std::to_string(s.batch)},
            {"train.kl_start", fmt(s.kl_start)},
            {"train.kl_steep", fmt(s.kl_steep)},
            {"train.samples", std::to_string(s.samples)},
            {"train.data", s.data}};
}

// Metadata values are checked against the ranges this program can handle, so an edited
// or corrupt checkpoint fails here, naming the key, instead of deep inside the model.
inline std::int64_t meta_int(const ewe::io::SafetensorsFile& f, const std::string& key, std::int64_t lo,
                             std::int64_t hi) {
    const std::string& v = f.meta(key);
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE)
        fail("--checkpoint ", f.path, ": metadata ", key, " = '", v, "' is not an integer");
    if (x < lo || x > hi) fail("--checkpoint ", f.path, ": metadata ", key, " = ", x, " is outside [", lo, ", ", hi, "]");
    return x;
}

inline double meta_double(const ewe::io::SafetensorsFile& f, const std::string& key, double lo, double hi) {
    const std::string& v = f.meta(key);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(x))
        fail("--checkpoint ", f.path, ": metadata ", key, " = '", v, "' is not a finite number");
    if (x < lo || x > hi) fail("--checkpoint ", f.path, ": metadata ", key, " = ", x, " is outside [", lo, ", ", hi, "]");
    return x;
}

inline std::vector<std::int64_t> meta_list(const ewe::io::SafetensorsFile& f, const std::string& key,
                                           std::size_t max_count, std::int64_t hi) {
    std::vector<std::int64_t> out;
    const std::string what = "--checkpoint " + f.path + ": metadata " + key;
    for (double v : parse_numbers(f.meta(key), what)) {
        if (!(v >= 1 && v <= double(hi) && v == std::floor(v)))
            fail(what, ": ", v, " is not a whole number in [1, ", hi, "]");
        out.push_back(std::int64_t(v));
    }
    if (out.empty() || out.size() > max_count) fail(what, ": needs 1 to ", max_count, " values, found ", out.size());
    return out;
}

// A checkpoint read from disk: its config, its training position, its tensors.
struct Checkpoint {
    ewe::io::SafetensorsFile file;
    ewe::SheepVaeConfig config;
    TrainState state;
};

inline Checkpoint read_checkpoint(const fs::path& path, const std::string& flag = "--checkpoint") {
    if (!fs::exists(path)) fail(flag, ": ", path.string(), ": no such file");
    Checkpoint c;
    try {
        c.file = ewe::io::read_safetensors(path);
        const auto it = c.file.metadata.find("format");
        if (it == c.file.metadata.end() || it->second != kCheckpointFormat)
            fail(path.string(), ": not a sheep_vae checkpoint (metadata 'format' should be ", kCheckpointFormat, ")");
        if (c.file.meta("format_version") != kCheckpointVersion)
            fail(path.string(), ": checkpoint format_version ", c.file.meta("format_version"), ", this program reads ",
                 kCheckpointVersion);
        c.config.image_size = meta_int(c.file, "model.image_size", 2, 4096);
        c.config.channels = meta_int(c.file, "model.channels", 1, 64);
        c.config.kernel = meta_int(c.file, "model.kernel", 1, 64);
        c.config.filters = meta_list(c.file, "model.filters", 16, 4096);
        c.config.units = meta_list(c.file, "model.units", 16, 1 << 16);
        c.config.latent = meta_int(c.file, "model.latent", 1, 4096);
        c.config.dropout = meta_double(c.file, "model.dropout", 0.0, 0.999);
        const std::string reparam = c.file.meta("model.reparam");
        if (reparam != "standard" && reparam != "post")
            fail("--checkpoint ", path.string(), ": metadata model.reparam = '", reparam, "' (expected standard or post)");
        c.config.reparam = reparam == "post" ? ewe::ReparamVariant::post : ewe::ReparamVariant::standard;
        c.config.validate();
        if (c.config.image_size != kSide || c.config.channels != 1)
            fail(path.string(), ": the checkpoint is for ", c.config.image_size, "x", c.config.image_size, "x",
                 c.config.channels, " images; this program handles 28x28x1 Quick, Draw! bitmaps");
        constexpr std::int64_t kHuge = std::int64_t(1) << 62;
        c.state.epoch = meta_int(c.file, "epoch", 0, 1 << 30);
        c.state.iterations = meta_int(c.file, "optimizer.iterations", 0, kHuge);
        {
            const std::string& v = c.file.meta("rng.seed");
            char* end = nullptr;
            errno = 0;
            c.state.seed = std::strtoull(v.c_str(), &end, 10);
            if (v.empty() || v[0] == '-' || *end != '\0' || errno == ERANGE)
                fail("--checkpoint ", path.string(), ": metadata rng.seed = '", v, "' is not an unsigned 64-bit integer");
        }
        c.state.batch = meta_int(c.file, "train.batch", 1, 1 << 20);
        c.state.lr = meta_double(c.file, "optimizer.lr", 1e-30, 1e6);
        c.state.kl_start = meta_double(c.file, "train.kl_start", 0.0, 1e9);
        c.state.kl_steep = meta_double(c.file, "train.kl_steep", 0.0, 1e9);
        c.state.samples = meta_int(c.file, "train.samples", 0, kHuge);
        c.state.data = c.file.meta("train.data");
    } catch (const ewe::Error& e) {
        const std::string what = e.what();
        if (what.rfind(flag, 0) == 0) throw;
        fail(flag, ": ", what);
    }
    return c;
}

// Copies the checkpoint's parameters (and, if given, the optimizer state) into the
// model, checking every name and shape.
inline void load_weights(const Checkpoint& c, ewe::SheepVae<float>& vae, ewe::Optimizer<float>* optimizer = nullptr) {
    ewe::ParameterStore<float>& p = vae.params();
    ewe::Tensor<float> host(p.values().shape());
    for (const ewe::ParameterInfo& info : p.info()) {
        auto it = c.file.tensors.find(info.name);
        if (it == c.file.tensors.end())
            fail("--checkpoint ", c.file.path, ": has no tensor '", info.name, "' (a checkpoint of another architecture?)");
        std::vector<std::int64_t> want;
        for (int a = 0; a < info.shape.rank(); ++a) want.push_back(info.shape[a]);
        if (it->second.shape != want)
            fail("--checkpoint ", c.file.path, ": tensor '", info.name, "' has shape (", join(it->second.shape),
                 "), the model expects ", info.shape, " (a checkpoint of another architecture?)");
        c.file.copy_to(info.name, host.data() + info.offset, std::size_t(info.shape.numel()));
    }
    ewe::copy<float>(host.view(), p.values());
    if (optimizer) {
        for (auto& [name, view] : optimizer->state()) {
            ewe::Tensor<float> s(view.shape());
            c.file.copy_to("optimizer/" + name, s.data(), std::size_t(view.numel()));
            ewe::copy<float>(s.view(), view);
        }
        optimizer->set_iterations(c.state.iterations);
        optimizer->set_learning_rate(c.state.lr);
    }
}

inline void save_checkpoint(const fs::path& path, ewe::SheepVae<float>& vae, ewe::Optimizer<float>& optimizer,
                            const TrainState& state) {
    ewe::ParameterStore<float>& p = vae.params();
    const ewe::Tensor<float> host = [&] {
        ewe::Tensor<float> t(p.values().shape());
        ewe::copy<float>(p.values(), t.view());
        return t;
    }();
    std::vector<ewe::io::SafetensorsEntry> entries;
    for (const ewe::ParameterInfo& info : p.info())
        entries.push_back(ewe::io::safetensors_entry<float>(info.name, host.view().slice(info.offset, info.shape)));
    std::vector<ewe::Tensor<float>> states;
    for (auto& [name, view] : optimizer.state()) {
        states.emplace_back(view.shape());
        ewe::copy<float>(view, states.back().view());
        entries.push_back(ewe::io::safetensors_entry<float>("optimizer/" + name, states.back().view()));
    }
    ewe::io::write_safetensors(path, entries, checkpoint_metadata(vae.config(), state));
}

// Posterior means and log-variances of every drawing (eval phase: no dropout, moving
// BatchNorm statistics), and optionally the reconstructions decoded from the means.
struct Encoded {
    std::vector<float> mean, log_var, recon;  // (N, latent), (N, latent), (N, 784)
    std::int64_t latent = 0;
};

inline Encoded encode(ewe::Context& ctx, ewe::SheepVae<float>& vae, const Bitmaps& data, bool keep_recon = false) {
    const std::int64_t n = data.count(), d = vae.config().latent, b = vae.max_batch();
    Encoded out;
    out.latent = d;
    out.mean.resize(std::size_t(n * d));
    out.log_var.resize(std::size_t(n * d));
    if (keep_recon) out.recon.resize(std::size_t(n * kPixels));
    ewe::Tensor<float> x(ewe::Shape{b, kSide, kSide, 1}, ctx.device());
    for (std::int64_t i = 0; i < n; i += b) {
        const std::int64_t m = std::min(b, n - i);
        ewe::copy<float>(ewe::TensorView<const float>(data.row(i), ewe::Shape{m, kSide, kSide, 1}), x.view().leading(m));
        vae.forward(ctx, x.view().leading(m), ewe::Phase::eval);
        ewe::copy<float>(vae.mean(m), ewe::TensorView<float>(out.mean.data() + i * d, ewe::Shape{m, d}));
        ewe::copy<float>(vae.log_var(m), ewe::TensorView<float>(out.log_var.data() + i * d, ewe::Shape{m, d}));
        if (keep_recon)
            ewe::copy<float>(vae.reconstruction(m),
                             ewe::TensorView<float>(out.recon.data() + i * kPixels, ewe::Shape{m, kSide, kSide, 1}));
    }
    return out;
}

// Decodes latent points z (N, latent) into drawings (N, 784) in [0, 1].
inline std::vector<float> decode(ewe::Context& ctx, ewe::SheepVae<float>& vae, const std::vector<float>& z) {
    const std::int64_t d = vae.config().latent, n = std::int64_t(z.size()) / d, b = vae.max_batch();
    std::vector<float> out(std::size_t(n * kPixels));
    ewe::Tensor<float> zin(ewe::Shape{b, d}, ctx.device()), y(ewe::Shape{b, kSide, kSide, 1}, ctx.device());
    for (std::int64_t i = 0; i < n; i += b) {
        const std::int64_t m = std::min(b, n - i);
        ewe::copy<float>(ewe::TensorView<const float>(z.data() + i * d, ewe::Shape{m, d}), zin.view().leading(m));
        vae.decoder().forward(ctx, zin.view().leading(m), y.view().leading(m), ewe::Phase::eval);
        ewe::copy<float>(y.view().leading(m), ewe::TensorView<float>(out.data() + i * kPixels, ewe::Shape{m, kSide, kSide, 1}));
    }
    return out;
}

// A model for inference from a checkpoint, with room for `max_batch` rows.
struct LoadedModel {
    std::unique_ptr<ewe::Context> ctx;
    std::unique_ptr<ewe::SheepVae<float>> vae;
    Checkpoint checkpoint;
};

inline LoadedModel load_model(const fs::path& path, ewe::Device device, std::int64_t max_batch = 128) {
    LoadedModel m;
    m.checkpoint = read_checkpoint(path);
    m.ctx = std::make_unique<ewe::Context>(device);
    m.vae = std::make_unique<ewe::SheepVae<float>>(*m.ctx, m.checkpoint.config, max_batch, m.checkpoint.state.seed);
    load_weights(m.checkpoint, *m.vae);
    return m;
}

// Drawings (values in [0, 1], 784 each) tiled `columns` wide as black ink on white,
// 2-pixel white gutters, `scale` pixels per bitmap pixel.
inline void write_sheet(const fs::path& path, const std::vector<const float*>& drawings, int columns, int scale = 2) {
    const int count = int(drawings.size());
    if (count == 0) fail("write_sheet: ", path.string(), ": no drawings to write");
    columns = std::max(1, std::min(columns, count));
    const int rows = (count + columns - 1) / columns, gutter = 2, cell = int(kSide) * scale + gutter;
    const int w = columns * cell + gutter, h = rows * cell + gutter;
    std::vector<std::uint8_t> img(std::size_t(w) * h, 255);
    for (int k = 0; k < count; ++k) {
        const int ox = gutter + (k % columns) * cell, oy = gutter + (k / columns) * cell;
        for (int y = 0; y < kSide * scale; ++y)
            for (int x = 0; x < kSide * scale; ++x) {
                const float v = std::clamp(drawings[std::size_t(k)][(y / scale) * kSide + x / scale], 0.0f, 1.0f);
                img[std::size_t(oy + y) * w + std::size_t(ox + x)] = std::uint8_t(std::lround(255.0f * (1.0f - v)));
            }
    }
    ewe::io::write_png(path, w, h, 1, img.data());
}

}  // namespace sheep
