// Posterior-collapse monitor for VAEs. After every epoch, PosteriorMonitor encodes a
// fixed set of images (Phase::eval) and adds to the epoch's metrics the number of
// active latent units, a dimension being active when the variance over the images of
// its posterior mean exceeds `threshold` (0.01, Burda, Grosse & Salakhutdinov 2016,
// "Importance Weighted Autoencoders", section 5.2), and the KL of each dimension
// ("kl_dim_0", ... : the mean over the images of -0.5 (1 + log_var - mean^2 -
// exp(log_var))). Once the KL term's weight is above 0, it warns once when no unit is
// active: the encoder has collapsed to the prior and the latent space carries nothing.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "ewe/models/vae_inference.hpp"
#include "ewe/train/callback.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

struct PosteriorStatistics {
    std::vector<double> kl_per_dimension;    // mean KL(q(z_d | x) || N(0, 1)) over the images
    std::vector<double> variance_of_means;   // variance over the images of each posterior mean
    std::int64_t active_units = 0;           // dimensions whose variance_of_means > threshold
};

template <class T>
PosteriorStatistics posterior_statistics(const VaeEncoding<T>& enc, double threshold = 0.01) {
    const std::int64_t n = enc.count(), d = enc.latent;
    EWE_REQUIRE(n > 0, "posterior_statistics: no encoded images");
    PosteriorStatistics s;
    s.kl_per_dimension.assign(std::size_t(d), 0.0);
    s.variance_of_means.assign(std::size_t(d), 0.0);
    for (std::int64_t k = 0; k < d; ++k) {
        double kl = 0, sum = 0, sum_sq = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const double mu = double(enc.mean[std::size_t(i * d + k)]), lv = double(enc.log_var[std::size_t(i * d + k)]);
            kl += -0.5 * (1 + lv - mu * mu - std::exp(lv));
            sum += mu;
            sum_sq += mu * mu;
        }
        const double mean = sum / double(n);
        s.kl_per_dimension[std::size_t(k)] = kl / double(n);
        s.variance_of_means[std::size_t(k)] = std::max(0.0, sum_sq / double(n) - mean * mean);
        s.active_units += s.variance_of_means[std::size_t(k)] > threshold;
    }
    return s;
}

template <class T>
class PosteriorMonitor final : public Callback<T> {
public:
    bool root_only() const override { return true; }  // measures for the loggers, warns on the terminal
    // `images` (host, n, input...) must outlive training; `warn` gets the collapse warning.
    PosteriorMonitor(Vae<T>& vae, TensorView<const T> images, std::ostream* warn = nullptr, double threshold = 0.01)
        : vae_(vae), images_(images), warn_(warn), threshold_(threshold) {
        EWE_REQUIRE(images.rank() >= 2 && images.dim(0) > 0, "PosteriorMonitor: needs at least one image, found ",
                    images.shape());
        EWE_REQUIRE(threshold >= 0, "PosteriorMonitor: threshold must be >= 0, found ", format_number(threshold));
    }

    std::vector<std::string> epoch_metric_names(Trainer<T>&) override {
        std::vector<std::string> names{"active_units"};
        for (std::int64_t k = 0; k < vae_.latent(); ++k) names.push_back("kl_dim_" + std::to_string(k));
        return names;
    }

    void add_epoch_metrics(Trainer<T>& trainer, EpochLogs& logs) override {
        last_ = posterior_statistics(encode<T>(trainer.context(), vae_, images_), threshold_);
        logs.mean.values.emplace_back("active_units", double(last_.active_units));
        for (std::size_t k = 0; k < last_.kl_per_dimension.size(); ++k)
            logs.mean.values.emplace_back("kl_dim_" + std::to_string(k), last_.kl_per_dimension[k]);
        const double kl_weight = weight_of_kl(logs);
        if (warn_ && !warned_ && kl_weight > 0 && last_.active_units == 0) {
            *warn_ << "warning: posterior collapse at epoch " << logs.epoch << " (KL weight " << kl_weight
                   << "): no latent dimension is active (the variance of every posterior mean over "
                   << images_.dim(0) << " images is <= " << threshold_
                   << "); the latent space no longer carries information about the drawings\n"
                   << std::flush;
            warned_ = true;
        }
    }

    const PosteriorStatistics& last() const { return last_; }

private:
    static double weight_of_kl(const EpochLogs& logs) {
        for (const auto& [name, value] : logs.mean.values)
            if (name == "kl_weight") return value;
        return 0.0;
    }

    Vae<T>& vae_;
    TensorView<const T> images_;
    std::ostream* warn_;
    double threshold_;
    bool warned_ = false;
    PosteriorStatistics last_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::PosteriorMonitor<float>;
#endif
