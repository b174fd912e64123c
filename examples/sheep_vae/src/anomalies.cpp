// `sheep_vae anomalies`: anomaly scores of drawings under a trained VAE, x_hat decoded
// from the posterior mean:
//   sse: sum over the 784 pixels of (x_hat - x)^2 (the post's reconstruction error);
//   ink_adjusted_sse: log(1 + sse) minus its least-squares line in log(1 + ink), ink =
//        sum x (ewe::anomaly::size_adjusted_errors), fitted on the reference set:
//        how much worse the reconstruction is than usual for a drawing with that much
//        ink, so a drawing is not anomalous merely for having many strokes, nor normal
//        for having few. The line is fitted on --reference (known-normal drawings, e.g.
//        the training file) when given, else on the scored drawings themselves, which
//        assumes anomalies are a small minority of them;
//   neg_elbo: 2 * sse + KL(q(z|x) || N(0, I)) summed over latent dimensions: the
//        negative ELBO (up to a constant) of a Gaussian decoder with variance 1/4,
//        i.e. the training loss at full KL weight, which also penalizes unusual codes;
//   iw_nll (only with --samples K > 0): -log p(x) of that model (Gaussian decoder of variance 1/4, prior N(0, I)),
//        estimated with --samples K importance samples from the encoder (IWAE, Burda et
//        al. 2016; ewe::importance_weighted_log_likelihood), constants included: the
//        likelihood itself rather than its bound;
//   complexity_adjusted_nll (also only with --samples K): iw_nll + 784 log 255 minus the drawing's deflate-compressed
//        length in nats (Serra et al. 2020; ewe/anomaly/complexity.hpp): the
//        log-likelihood ratio of a general-purpose compressor to the model, so a drawing
//        is not normal merely for being simple.
//   knn_pooled, knn_dense, mahalanobis_gram, ensemble: feature-space scores against a
//        reference set of normal drawings (ewe/anomaly/reference_set.hpp): the cosine
//        distance to the --k nearest reference drawings of the last but one convolution's map
//        pooled to --pool x --pool (square-rooted) and of the first dense layer's units,
//        each adjusted for ink as sse is, the Ledoit-Wolf Mahalanobis distance of the
//        second convolution's (square-rooted) Gram matrix, and the rank average of these
//        three, each a percentile of the reference's own (leave-one-out) scores. The
//        reference is --reference (drawings, or a set saved by --save-reference), else the
//        scored drawings themselves; a scored drawing that is in the reference is left out of it.
// One eval pass of the model feeds every score but the likelihoods.
// docs/anomaly_scores.md has the study of all of them on every planted class.
// For the chosen --score: a cutoff (a quantile) and the drawings above it; for every
// score a histogram; all scores as .npy and .csv (ewe::anomaly::ScoreTable). With
// --plant OTHER.npy:N, N drawings of another class are mixed in and ROC AUC and
// precision@N (N = planted count) say how well each score separates them.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <ewe/anomaly/reference_set.hpp>
#include <ewe/anomaly/standard_scores.hpp>
#include <ewe/io/files.hpp>
#include <ewe/io/json_line.hpp>

namespace sheep {

namespace {

struct AnomalyOptions {
    std::string checkpoint;
    std::string data;
    std::int64_t limit = 0;
    std::string plant;
    std::string reference;
    std::string save_reference;
    std::int64_t k = 5;     // knn_pooled's and knn_dense's neighbours
    std::int64_t pool = 7;  // knn_pooled's grid: the last but one conv map averaged to pool x pool cells
    bool k_given = false, pool_given = false;  // a saved reference set fixes both
    std::string out = "anomalies";
    std::string score = "sse";
    double quantile = 0.99;
    std::int64_t top = 100;
    std::string device = "cpu";
    std::int64_t samples = 0;  // 0: no likelihood scores (they cost K decoder passes a drawing)
    std::uint64_t seed = 0;
    bool json = false;
};

int run_anomalies(const AnomalyOptions& o, const Console& io) {
    if (o.samples == 0 && (o.score == "iw_nll" || o.score == "complexity_adjusted_nll"))
        fail("--score ", o.score, ": needs --samples K, the importance samples per drawing (e.g. 64)");
    Bitmaps data = load_bitmaps(o.data, o.limit, "--data");
    std::int64_t planted = 0;
    std::string plant_file;
    if (!o.plant.empty()) {
        const Planted p = plant_drawings(data, o.plant, "--plant", io.err);
        planted = p.count;
        plant_file = p.file;
    }
    const std::int64_t n = data.count(), normal = n - planted;
    ewe::TrainedVae<float> m = load_model(o.checkpoint, parse_device(o.device));
    // The reference set: loaded, fitted on --reference drawings, or on the scored ones.
    const ewe::anomaly::ReferenceSet reference = [&] {
        if (!o.reference.empty() && fs::path(o.reference).extension() == ".safetensors")
            return ewe::anomaly::load_reference_set(
                o.reference, {o.k_given ? std::optional(o.k) : std::nullopt, o.pool_given ? std::optional(o.pool) : std::nullopt,
                              "--k", "--pool", "fit a new set from drawings (--reference DRAWINGS.npy)"});
        const ewe::anomaly::EnsembleOptions options = ewe::anomaly::EnsembleOptions::for_sheep_vae(
            std::int64_t(m.checkpoint.model_options.filters.size()), o.k, o.pool);
        if (o.reference.empty()) return ewe::anomaly::ReferenceSet::fit<float>(*m.ctx, *m.vae, data.images.view(), options);
        const Bitmaps drawings = load_bitmaps(o.reference, 0, "--reference");
        return ewe::anomaly::ReferenceSet::fit<float>(*m.ctx, *m.vae, drawings.images.view(), options);
    }();
    if (!o.save_reference.empty()) reference.save(o.save_reference);
    const auto started = std::chrono::steady_clock::now();
    ewe::anomaly::EnsembleScores scored = reference.score<float>(*m.ctx, *m.vae, data.images.view());
    const double scoring_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ewe::anomaly::StandardScoreOptions scoring;
    scoring.quantile = o.quantile;
    if (o.samples > 0)  // the decoder variance of train's loss
        scoring.likelihood = ewe::ImportanceSamplingOptions{
            o.samples, o.seed, ewe::gaussian_decoder_variance(ewe::VaeLossOptions{}, kSide * kSide)};
    const ewe::anomaly::ScoreTable table =
        ewe::anomaly::standard_scores<float>(*m.ctx, *m.vae, data.images.view(), std::move(scored), planted, scoring);
    const ewe::anomaly::NamedScore& chosen = table.at(o.score);
    const fs::path dir = o.out;
    ewe::io::create_folder(dir, "--out");
    table.write(dir, o.score, {data.source, plant_file, "drawings"});
    std::vector<const float*> tiles;
    const std::vector<std::int64_t> order = ewe::anomaly::top_k(chosen.values, n);
    for (std::int64_t i : order) {
        if (chosen.values[std::size_t(i)] <= chosen.cutoff || std::int64_t(tiles.size()) >= o.top) break;
        tiles.push_back(data.row(i));
    }
    if (tiles.empty()) tiles.push_back(data.row(order.front()));
    write_sheet(dir / "above_cutoff.png", tiles, 10);

    const ewe::anomaly::SizeAdjustment& ink_fit = reference.ink_fit();
    ewe::io::JsonLine j;
    j.add("samples", n).add("planted", planted).add("score", o.score).add("quantile", o.quantile)
        .add("cutoff", chosen.cutoff).add("above_cutoff", table.above_cutoff(o.score))
        .add("ink_fit_intercept", ink_fit.intercept).add("ink_fit_slope", ink_fit.slope)
        .add("iw_samples", o.samples).add("reference_size", reference.size()).add("k", reference.options().k)
        .add("pool", reference.options().knn_tap.grid).add("scoring_seconds", scoring_seconds);
    if (o.samples > 0) j.add("iw_seed", std::int64_t(o.seed));
    const std::vector<ewe::anomaly::ScoreDetection> detection = table.detection();
    if (!detection.empty()) {
        const ewe::anomaly::ScoreDetection& pick = *std::find_if(
            detection.begin(), detection.end(), [&](const auto& d) { return d.name == o.score; });
        j.add("roc_auc", pick.roc_auc).add("precision_at_n", pick.precision);
        if (!o.json)
            print(io.out, "planted %lld drawings of %s among %lld:\n", (long long)planted, plant_file.c_str(), (long long)normal);
        for (const ewe::anomaly::ScoreDetection& d : detection) {
            j.add("roc_auc_" + d.name, d.roc_auc).add("precision_at_n_" + d.name, d.precision);
            if (!o.json)
                print(io.out, "  %-16s ROC AUC %.4f, precision@%lld %.3f\n", d.name.c_str(), d.roc_auc,
                      (long long)planted, d.precision);
        }
    }
    if (o.json) print(io.out, "%s\n", j.str().c_str());
    else
        print(io.out, "%lld drawings scored; cutoff %s %.4g (quantile %.3g): %lld above; wrote %s\n", (long long)n,
              o.score.c_str(), chosen.cutoff, o.quantile, (long long)table.above_cutoff(o.score), dir.string().c_str());
    return 0;
}

}  // namespace

Command add_anomalies_command(CLI::App& app, const Console& io) {
    const auto options = std::make_shared<AnomalyOptions>();
    AnomalyOptions& o = *options;
    CLI::App* c = app.add_subcommand("anomalies", "Score drawings by reconstruction error (plain, adjusted for ink), negative ELBO, log-likelihood, feature-space distances and their ensemble");
    c->add_option("--checkpoint", o.checkpoint, "checkpoint.safetensors written by train")->required();
    c->add_option("--data", o.data, "Bitmaps .npy to score (uint8 (N, 784) or (N, 28, 28), or float32 in [0, 1])")->required();
    c->add_option("--limit", o.limit, "Score only the first N drawings (0: all)")->check(non_negative());
    c->add_option("--plant", o.plant, "OTHER.npy:N: mix in the first N drawings of another class and measure detection");
    c->add_option("--reference", o.reference,
                  "Normal drawings .npy (e.g. the training data) to fit the reference set on (ink_adjusted_sse's line, "
                  "the k-NN and Mahalanobis references, the ensemble's calibration), or a reference set .safetensors "
                  "written by --save-reference (default: fit on the scored drawings)");
    c->add_option("--save-reference", o.save_reference, "Write the fitted reference set here (.safetensors)");
    c->add_option("--k", o.k, "Neighbours of knn_pooled and knn_dense")->capture_default_str()->check(number_in(1, 100000))
        ->each([&o](const std::string&) { o.k_given = true; });
    c->add_option("--pool", o.pool, "knn_pooled's grid: the last but one convolution's map averaged to POOL x POOL cells")
        ->capture_default_str()->check(number_in(1, 1024))->each([&o](const std::string&) { o.pool_given = true; });
    c->add_option("--out", o.out, "Output folder")->capture_default_str();
    c->add_option("--score", o.score, "Score behind the cutoff and the drawings above it")
        ->capture_default_str()->check(CLI::IsMember(ewe::anomaly::standard_score_names()));
    c->add_option("--quantile", o.quantile, "Cutoff: this quantile of the chosen score")->capture_default_str()->check(number_in(0.0, 1.0));
    c->add_option("--top", o.top, "At most this many drawings above the cutoff in the picture")->capture_default_str()->check(number_in(1, 10000));
    c->add_option("--samples", o.samples, "Importance samples K per drawing for the likelihood scores iw_nll and "
                  "complexity_adjusted_nll (0: leave them out; each costs K decoder passes a drawing)")
        ->capture_default_str()->check(number_in(0, 1000000));
    c->add_option("--seed", o.seed, "Seed of the importance samples")->capture_default_str();
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    c->add_flag("--json", o.json, "Print one JSON line with the results");
    return [options, io] { return run_anomalies(*options, io); };
}

}  // namespace sheep
