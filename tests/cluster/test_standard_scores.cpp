// standard_scores (ewe/anomaly/standard_scores.hpp) on the small sheep VAE: every score
// of standard_score_names() in that order (the likelihood pair only with importance
// sampling), each the value its own function gives, with its cutoff at the quantile.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "small_sheep_vae.hpp"
#include "ewe/anomaly/standard_scores.hpp"
#include "ewe/models/sheep_vae.hpp"

using namespace ewe;
using namespace ewe::anomaly;

TEST_CASE("standard_scores: the standard scores in order, each from its own function") {
    Context ctx;
    SheepVae<double> vae(ctx, ewe_test::small_model_options(), 4, 11);
    Tensor<double> images(Shape{12, 8, 8, 1});
    for (std::int64_t i = 0; i < images.numel(); ++i) images[i] = double((i * 7 + i / 64) % 13) / 12.0;
    const ReferenceSet set = ReferenceSet::fit<double>(ctx, vae, images.view(), EnsembleOptions::for_sheep_vae(2, 3, 2));
    const EnsembleScores scored = set.score<double>(ctx, vae, images.view());

    const ScoreTable plain = standard_scores<double>(ctx, vae, images.view(), scored, 2, StandardScoreOptions{});
    std::vector<std::string> without_likelihood;
    for (const std::string& name : standard_score_names())
        if (name != "iw_nll" && name != "complexity_adjusted_nll") without_likelihood.push_back(name);
    REQUIRE(plain.scores().size() == without_likelihood.size());
    for (std::size_t i = 0; i < without_likelihood.size(); ++i) CHECK(plain.scores()[i].name == without_likelihood[i]);
    CHECK(plain.planted() == 2);
    CHECK(plain.quantile() == 0.99);
    CHECK(plain.at("sse").values == scored.sse);
    CHECK(plain.at("ink_adjusted_sse").values == scored.ink_adjusted_sse);
    CHECK(plain.at("neg_elbo").values == negative_elbo(scored.pass, 2));
    CHECK(plain.at("knn_pooled").values == scored.knn_pooled);
    CHECK(plain.at("knn_dense").values == scored.knn_dense);
    CHECK(plain.at("mahalanobis_gram").values == scored.mahalanobis_gram);
    CHECK(plain.at("ensemble").values == scored.ensemble);
    CHECK(plain.at("sse").cutoff == quantile_threshold(scored.sse, 0.99));

    StandardScoreOptions options;
    options.quantile = 0.5;
    options.recon_weight = 3;
    options.likelihood = ImportanceSamplingOptions{4, 9, 0.25};
    const ScoreTable full = standard_scores<double>(ctx, vae, images.view(), scored, 0, options);
    REQUIRE(full.scores().size() == standard_score_names().size());
    for (std::size_t i = 0; i < full.scores().size(); ++i) CHECK(full.scores()[i].name == standard_score_names()[i]);
    CHECK(full.at("neg_elbo").values == negative_elbo(scored.pass, 3));
    std::vector<double> nll = importance_weighted_log_likelihood<double>(ctx, vae, images.view(), *options.likelihood);
    for (double& v : nll) v = -v;
    CHECK(full.at("iw_nll").values == nll);
    CHECK(full.at("iw_nll").label == "negative log-likelihood (IWAE, K = 4)");
    CHECK(full.at("complexity_adjusted_nll").values ==
          complexity_adjusted_nll(nll, compressed_length_nats<double>(images.view()), 64));
    CHECK(full.at("ensemble").cutoff == quantile_threshold(scored.ensemble, 0.5));
}
