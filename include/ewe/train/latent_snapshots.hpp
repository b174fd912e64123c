// LatentSnapshots: after chosen epochs, encodes a set of images with the VAE being
// trained (Phase::eval, posterior means) and writes DIR/latent_epochNNN.npy (n,
// latent) and an SVG scatter of the first two latent dimensions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ewe/io/npy.hpp"
#include "ewe/io/svg.hpp"
#include "ewe/models/vae_inference.hpp"
#include "ewe/train/callback.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

template <class T>
class LatentSnapshots final : public Callback<T> {
public:
    bool root_only() const override { return true; }  // writes files
    // `images` (host, n, h, w, c) must outlive training.
    LatentSnapshots(Vae<T>& vae, TensorView<const T> images, std::filesystem::path dir, std::vector<std::int64_t> epochs)
        : vae_(vae), images_(images), dir_(std::move(dir)), epochs_(std::move(epochs)) {}

    void on_epoch_end(Trainer<T>& trainer, const EpochLogs& logs) override {
        if (std::find(epochs_.begin(), epochs_.end(), logs.epoch) == epochs_.end()) return;
        write(logs.epoch, encode<T>(trainer.context(), vae_, images_));
    }

    void write(std::int64_t epoch, const VaeEncoding<T>& enc) const {
        char name[64];
        std::snprintf(name, sizeof name, "latent_epoch%03lld", (long long)epoch);
        const std::int64_t n = enc.count(), d = enc.latent;
        std::vector<float> mean(enc.mean.begin(), enc.mean.end());
        io::write_npy<float>(dir_ / (std::string(name) + ".npy"), mean.data(), Shape{n, d});
        std::vector<double> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n), 0.0);
        for (std::int64_t i = 0; i < n; ++i) {
            x[std::size_t(i)] = double(enc.mean[std::size_t(i * d)]);
            if (d > 1) y[std::size_t(i)] = double(enc.mean[std::size_t(i * d + 1)]);
        }
        io::SvgPlot plot("Latent space after epoch " + std::to_string(epoch) + " (" + std::to_string(n) + " drawings)",
                         "z[0]", d > 1 ? "z[1]" : "0", 560, 520);
        plot.scatter(x, y, io::palette(0), {}, 1.6, 0.5).write(dir_ / (std::string(name) + ".svg"));
    }

private:
    Vae<T>& vae_;
    TensorView<const T> images_;
    std::filesystem::path dir_;
    std::vector<std::int64_t> epochs_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::LatentSnapshots<float>;
#endif
