// A trained VAE summed up on data whose last `planted` samples are known anomalies, as a
// sweep compares its runs: the mean reconstruction error and the posterior's KL and
// active units (ewe/train/posterior_monitor.hpp) of the normal samples, and how well
// the reconstruction error separates the planted ones (ROC AUC, precision@planted), all
// from one eval pass (tapped_pass, ewe/anomaly/feature_taps.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ewe/anomaly/feature_taps.hpp"
#include "ewe/anomaly/scores.hpp"
#include "ewe/core/context.hpp"
#include "ewe/models/vae.hpp"
#include "ewe/models/vae_inference.hpp"
#include "ewe/train/posterior_monitor.hpp"

namespace ewe::anomaly {

struct VaeEvaluation {
    double mean_sse = 0;            // reconstruction SSE (decoded from the posterior mean) per normal sample
    double kl = 0;                  // posterior_statistics' KL per dimension of the normal samples, summed
    std::int64_t active_units = 0;  // posterior_statistics' active units of the normal samples
    double roc_auc = NAN;           // of the SSE, planted against normal (NaN when none is planted)
    double precision_at_planted = NAN;  // the planted share of the `planted` highest SSEs (NaN when none)
};

// `images` (n, input...) on the host, the last `planted` (0 <= planted < n) known anomalies.
template <class T>
VaeEvaluation evaluate_vae(Context& ctx, Vae<T>& vae, std::type_identity_t<TensorView<const T>> images,
                           std::int64_t planted) {
    const std::int64_t n = images.rank() >= 1 ? images.dim(0) : 0, normal = n - planted;
    EWE_REQUIRE(planted >= 0 && normal > 0, "evaluate_vae: needs normal samples, found ", n, " samples of which ",
                planted, " planted");
    const TappedPass all = tapped_pass<T>(ctx, vae, images, {});
    VaeEncoding<T> normals;
    normals.latent = all.latent;
    normals.mean.assign(all.mean.begin(), all.mean.begin() + normal * all.latent);
    normals.log_var.assign(all.log_var.begin(), all.log_var.begin() + normal * all.latent);
    const PosteriorStatistics posterior = posterior_statistics(normals);
    VaeEvaluation e;
    for (double d : posterior.kl_per_dimension) e.kl += d;
    e.active_units = posterior.active_units;
    double sse = 0;
    for (std::int64_t i = 0; i < normal; ++i) sse += all.sse[std::size_t(i)];
    e.mean_sse = sse / double(normal);
    if (planted > 0) {
        std::vector<std::uint8_t> labels(std::size_t(n), 0);
        std::fill(labels.begin() + normal, labels.end(), 1);
        e.roc_auc = roc_auc(all.sse, labels);
        e.precision_at_planted = precision_at_k(all.sse, labels, planted);
    }
    return e;
}

}  // namespace ewe::anomaly
