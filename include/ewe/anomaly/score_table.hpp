// Anomaly scores side by side, and how well each finds known anomalies: a ScoreTable
// holds named scores of the same samples, each with its cutoff (a quantile of its
// values), of which the last `planted` samples may be known anomalies mixed in (e.g.
// drawings of another class). It writes scores.npy (n x scores, float32), scores.csv
// (index within its source, source, planted, every score, above_cutoff of the chosen
// one) and one histogram_<name>.svg per score (planted samples in their own colour,
// the cutoff a vertical line), and evaluates every score against the planted labels
// (ROC AUC, precision@planted). negative_elbo scores a TappedPass by the VAE's bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ewe/anomaly/feature_taps.hpp"
#include "ewe/anomaly/scores.hpp"
#include "ewe/core/error.hpp"
#include "ewe/io/csv.hpp"
#include "ewe/io/npy.hpp"
#include "ewe/io/svg.hpp"

namespace ewe::anomaly {

// recon_weight * sse + KL(q(z|x) || N(0, I)) summed over latent dimensions, per sample of
// `pass`: the negative ELBO (up to a constant) of a Gaussian decoder of variance
// 1 / (2 recon_weight), the training loss at full KL weight for recon_weight 2.
inline std::vector<double> negative_elbo(const TappedPass& pass, double recon_weight) {
    std::vector<double> out(pass.sse.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
        double kl = 0;
        for (std::int64_t k = 0; k < pass.latent; ++k) {
            const double mu = pass.mean[i * std::size_t(pass.latent) + std::size_t(k)];
            const double lv = pass.log_var[i * std::size_t(pass.latent) + std::size_t(k)];
            kl += -0.5 * (1 + lv - mu * mu - std::exp(lv));
        }
        out[i] = recon_weight * pass.sse[i] + kl;
    }
    return out;
}

struct NamedScore {
    std::string name, label;  // "sse"; "reconstruction error (SSE)" for plots
    std::vector<double> values;
    double cutoff = 0;  // the table's quantile of values
};

// One score's detection of the planted samples.
struct ScoreDetection {
    std::string name;
    double roc_auc = 0, precision = 0;  // precision@planted
};

// Where a table's rows come from, for scores.csv: the first samples - planted rows are
// `source`'s, the rest `planted_source`'s; `unit` names them on the histograms' axis.
struct ScoreSources {
    std::string source, planted_source;
    std::string unit = "samples";
};

class ScoreTable {
public:
    // `samples` rows, the last `planted` of them known anomalies; cutoffs at `quantile`.
    ScoreTable(std::int64_t samples, std::int64_t planted, double quantile)
        : samples_(samples), planted_(planted), quantile_(quantile) {
        EWE_REQUIRE(samples > 0 && planted >= 0 && planted <= samples, "ScoreTable: ", planted,
                    " planted samples of ", samples);
        EWE_REQUIRE(quantile >= 0 && quantile <= 1, "ScoreTable: quantile ", quantile, " outside [0, 1]");
    }

    ScoreTable& add(std::string name, std::string label, std::vector<double> values) {
        EWE_REQUIRE(std::int64_t(values.size()) == samples_, "ScoreTable: score ", name, " has ", values.size(),
                    " values for ", samples_, " samples");
        const double cutoff = quantile_threshold(values, quantile_);
        scores_.push_back({std::move(name), std::move(label), std::move(values), cutoff});
        return *this;
    }

    const std::vector<NamedScore>& scores() const { return scores_; }
    const NamedScore& at(const std::string& name) const {
        for (const NamedScore& s : scores_)
            if (s.name == name) return s;
        fail("ScoreTable: no score named '", name, "'");
    }
    std::int64_t samples() const { return samples_; }
    std::int64_t planted() const { return planted_; }
    double quantile() const { return quantile_; }
    // The samples whose score `name` is above its cutoff.
    std::int64_t above_cutoff(const std::string& name) const {
        const NamedScore& s = at(name);
        return std::int64_t(std::count_if(s.values.begin(), s.values.end(), [&](double v) { return v > s.cutoff; }));
    }

    // Every score's ROC AUC and precision@planted against the planted labels; empty
    // unless the table has planted and normal samples.
    std::vector<ScoreDetection> detection() const {
        std::vector<ScoreDetection> out;
        if (planted_ == 0 || planted_ == samples_) return out;
        std::vector<std::uint8_t> labels(std::size_t(samples_), 0);
        std::fill(labels.end() - planted_, labels.end(), std::uint8_t(1));
        for (const NamedScore& s : scores_)
            out.push_back({s.name, roc_auc(s.values, labels), precision_at_k(s.values, labels, planted_)});
        return out;
    }

    // dir/scores.npy, dir/scores.csv (above_cutoff of score `chosen`) and
    // dir/histogram_<name>.svg of every score; `dir` must exist.
    void write(const std::filesystem::path& dir, const std::string& chosen, const ScoreSources& sources) const {
        const NamedScore& pick = at(chosen);
        const std::int64_t n = samples_, normal = n - planted_;
        std::vector<float> table;
        for (std::int64_t i = 0; i < n; ++i)
            for (const NamedScore& s : scores_) table.push_back(float(s.values[std::size_t(i)]));
        io::write_npy<float>(dir / "scores.npy", table.data(), Shape{n, std::int64_t(scores_.size())});
        std::vector<std::vector<std::string>> csv(1, {"index", "source", "planted"});
        for (const NamedScore& s : scores_) csv[0].push_back(s.name);
        csv[0].push_back("above_cutoff");
        for (std::int64_t i = 0; i < n; ++i) {
            std::vector<std::string> row = {std::to_string(i < normal ? i : i - normal),
                                            i < normal ? sources.source : sources.planted_source, i < normal ? "0" : "1"};
            for (const NamedScore& s : scores_) row.push_back(io::csv_number(s.values[std::size_t(i)]));
            row.push_back(pick.values[std::size_t(i)] > pick.cutoff ? "1" : "0");
            csv.push_back(std::move(row));
        }
        io::write_csv(dir / "scores.csv", csv);
        char cutoff_label[64];
        std::snprintf(cutoff_label, sizeof cutoff_label, "cutoff (q=%.3g)", quantile_);
        for (const NamedScore& s : scores_) {
            io::SvgPlot plot("Anomaly score: " + s.label, s.label, sources.unit);
            if (planted_ > 0) {
                const auto [lo, hi] = std::minmax_element(s.values.begin(), s.values.end());
                plot.histogram(std::vector<double>(s.values.begin(), s.values.begin() + normal), 60, io::palette(0), "data",
                               *lo, *hi);
                plot.histogram(std::vector<double>(s.values.begin() + normal, s.values.end()), 60, io::palette(1),
                               "planted", *lo, *hi);
            } else {
                plot.histogram(s.values, 60, io::palette(0), sources.unit);
            }
            plot.vline(s.cutoff, io::palette(2), cutoff_label).write(dir / ("histogram_" + s.name + ".svg"));
        }
    }

private:
    std::int64_t samples_, planted_;
    double quantile_;
    std::vector<NamedScore> scores_;
};

}  // namespace ewe::anomaly
