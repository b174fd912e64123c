// The standard anomaly scores of a VAE's samples in one ScoreTable (ewe/anomaly/score_table.hpp),
// in the order docs/anomaly_scores.md studies them: sse, ink_adjusted_sse and neg_elbo from
// a reference set's pass (ewe/anomaly/reference_set.hpp); with importance sampling also
// iw_nll (-log p(x), ewe/models/vae_likelihood.hpp) and complexity_adjusted_nll
// (ewe/anomaly/complexity.hpp); then the feature-space scores knn_pooled, knn_dense,
// mahalanobis_gram and their ensemble. standard_score_names() lists them all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ewe/anomaly/complexity.hpp"
#include "ewe/anomaly/reference_set.hpp"
#include "ewe/anomaly/score_table.hpp"
#include "ewe/core/context.hpp"
#include "ewe/models/vae.hpp"
#include "ewe/models/vae_likelihood.hpp"

namespace ewe::anomaly {

struct StandardScoreOptions {
    double quantile = 0.99;     // every score's cutoff: this quantile of its values
    double recon_weight = 2;    // neg_elbo's weight of the SSE (2: the post's training loss at KL weight 1)
    std::optional<ImportanceSamplingOptions> likelihood;  // iw_nll and complexity_adjusted_nll (K decoder passes a sample)
};

inline const std::vector<std::string>& standard_score_names() {
    static const std::vector<std::string> names = {"sse", "ink_adjusted_sse", "neg_elbo", "iw_nll",
                                                   "complexity_adjusted_nll", "knn_pooled", "knn_dense",
                                                   "mahalanobis_gram", "ensemble"};
    return names;
}

// The table of `images` (n, input...; the last `planted` of them known anomalies) from
// `scored`, what ReferenceSet::score gave for them, and, with options.likelihood, the
// likelihood scores computed here.
template <class T>
ScoreTable standard_scores(Context& ctx, Vae<T>& vae, std::type_identity_t<TensorView<const T>> images,
                           EnsembleScores scored, std::int64_t planted, const StandardScoreOptions& options) {
    const std::int64_t n = images.dim(0);
    ScoreTable table(n, planted, options.quantile);
    table.add("sse", "reconstruction error (SSE)", std::move(scored.sse))
        .add("ink_adjusted_sse", "ink-adjusted reconstruction error (log SSE residual)", std::move(scored.ink_adjusted_sse))
        .add("neg_elbo", "negative ELBO", negative_elbo(scored.pass, options.recon_weight));
    if (options.likelihood) {
        std::vector<double> iw_nll = importance_weighted_log_likelihood<T>(ctx, vae, images, *options.likelihood);
        for (double& v : iw_nll) v = -v;
        std::vector<double> complexity_adjusted =
            complexity_adjusted_nll(iw_nll, compressed_length_nats<T>(images), images.numel() / n);
        table.add("iw_nll", "negative log-likelihood (IWAE, K = " + std::to_string(options.likelihood->samples) + ")",
                  std::move(iw_nll))
            .add("complexity_adjusted_nll", "complexity-adjusted negative log-likelihood", std::move(complexity_adjusted));
    }
    table.add("knn_pooled", "ink-adjusted k-NN cosine distance (pooled conv map)", std::move(scored.knn_pooled))
        .add("knn_dense", "ink-adjusted k-NN cosine distance (first dense layer)", std::move(scored.knn_dense))
        .add("mahalanobis_gram", "Mahalanobis distance of the second conv layer's Gram matrix",
             std::move(scored.mahalanobis_gram))
        .add("ensemble", "ensemble (mean reference percentile of knn_pooled, knn_dense, mahalanobis_gram)",
             std::move(scored.ensemble));
    return table;
}

}  // namespace ewe::anomaly
