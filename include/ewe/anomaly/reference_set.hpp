// A fitted reference set of normal samples for a trained VAE, and the anomaly scores it
// gives new samples from one tapped pass (ewe/anomaly/feature_taps.hpp) of the model:
//   sse               the reconstruction error (reconstruction_sse);
//   ink_adjusted_sse  log(1 + sse) minus its log-log line in the sample's size, fitted
//                     on the reference (ewe/anomaly/scores.hpp);
//   knn_pooled        mean cosine distance to the k nearest reference samples of a
//                     layer's average-pooled map (ewe/anomaly/knn.hpp);
//   mahalanobis_gram  squared Mahalanobis distance of a layer's Gram matrix under the
//                     reference's Ledoit-Wolf covariance (ewe/anomaly/mahalanobis.hpp);
//   ensemble          the rank average of the last three, each calibrated as a
//                     percentile of the reference's own scores (ewe/anomaly/ensemble.hpp).
// A sample that is itself in the reference set (same values, recognised by a
// fingerprint) is scored leave-one-out. The set is saved to and loaded from a
// safetensors file (written atomically), which records the model it was fitted on.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ewe/anomaly/ensemble.hpp"
#include "ewe/anomaly/feature_taps.hpp"
#include "ewe/anomaly/knn.hpp"
#include "ewe/anomaly/mahalanobis.hpp"
#include "ewe/anomaly/scores.hpp"
#include "ewe/io/fingerprint.hpp"
#include "ewe/io/safetensors.hpp"

namespace ewe::anomaly {

// The members' settings. The defaults are the sheep VAE's (SheepVaeOptions: four
// convolutions, layers 0-3 of its encoder): k = 5 on the last convolution's map pooled
// to 4 x 4, and the second convolution's Gram matrix (docs/anomaly_scores.md).
struct EnsembleOptions {
    FeatureTap knn_tap{3, TapSummary::pooled, 4};
    std::int64_t k = 5;
    FeatureTap mahalanobis_tap{1, TapSummary::gram, 0};

    EnsembleOptions& set_knn_tap(FeatureTap t) { knn_tap = t; return *this; }
    EnsembleOptions& set_k(std::int64_t v) { k = v; return *this; }
    EnsembleOptions& set_mahalanobis_tap(FeatureTap t) { mahalanobis_tap = t; return *this; }
};

// Every score of every sample, in the order of names().
struct EnsembleScores {
    std::vector<double> sse, ink_adjusted_sse, knn_pooled, mahalanobis_gram, ensemble;
    TappedPass pass;  // the pass they came from (posterior means and log variances)

    static std::vector<std::string> names() {
        return {"sse", "ink_adjusted_sse", "knn_pooled", "mahalanobis_gram", "ensemble"};
    }
};

// The fingerprint that recognises a sample: FNV-1a of its values' bytes.
template <class T>
std::uint64_t sample_fingerprint(const T* values, std::int64_t count) {
    return io::fnv1a64(values, std::size_t(count) * sizeof(T));
}

// FNV-1a of the model's parameter values (on the host): which model a set belongs to.
template <class T>
std::uint64_t model_fingerprint(Vae<T>& vae) {
    Tensor<T> host(vae.params().values().shape());
    copy<T>(vae.params().values(), host.view());
    return io::content_hash<T>(host.view());
}

class ReferenceSet {
public:
    // Fits every member on host `images` (n, input...), all normal, n > k.
    template <class T>
    static ReferenceSet fit(Context& ctx, Vae<T>& vae, std::type_identity_t<TensorView<const T>> images,
                            const EnsembleOptions& options = {}) {
        EWE_REQUIRE(images.rank() >= 2 && images.dim(0) > options.k + 1, "ReferenceSet::fit: needs more than k + 1 = ",
                    options.k + 1, " reference samples, found ", images.rank() >= 1 ? images.dim(0) : 0);
        ReferenceSet set;
        set.options_ = options;
        set.model_ = model_fingerprint(vae);
        TappedPass pass = tapped_pass<T>(ctx, vae, images, {options.knn_tap, options.mahalanobis_tap});
        const std::vector<double> mass = input_mass<T>(images);
        set.ink_ = fit_size_adjustment(pass.sse, mass);
        set.knn_reference_ = std::move(pass.features[0]);
        set.mahalanobis_reference_ = std::move(pass.features[1]);
        set.gram_fit_ = ledoit_wolf(set.mahalanobis_reference_);
        const std::int64_t n = images.dim(0), per = images.numel() / n;
        for (std::int64_t i = 0; i < n; ++i) set.fingerprints_.push_back(sample_fingerprint(images.data() + i * per, per));
        std::vector<std::int64_t> self(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) self[std::size_t(i)] = i;
        set.calibration_ = {
            PercentileCalibration(size_adjusted_errors(pass.sse, mass, set.ink_)),
            PercentileCalibration(cosine_knn_scores(set.knn_reference_, set.knn_reference_, options.k, self)),
            PercentileCalibration(mahalanobis_scores(set.gram_fit_, set.mahalanobis_reference_, self,
                                                     &set.mahalanobis_reference_))};
        return set;
    }

    // Scores host `images` under the model the set was fitted on (checked).
    template <class T>
    EnsembleScores score(Context& ctx, Vae<T>& vae, std::type_identity_t<TensorView<const T>> images) const {
        EWE_REQUIRE(model_fingerprint(vae) == model_, "ReferenceSet::score: the set was fitted on model ",
                    io::hash_text(model_), ", this model's parameters are ", io::hash_text(model_fingerprint(vae)));
        EnsembleScores out;
        out.pass = tapped_pass<T>(ctx, vae, images, {options_.knn_tap, options_.mahalanobis_tap});
        EWE_REQUIRE(out.pass.features[0].cols == knn_reference_.cols &&
                        out.pass.features[1].cols == mahalanobis_reference_.cols,
                    "ReferenceSet::score: the model's tapped features do not match the set's");
        const std::int64_t n = images.dim(0), per = n == 0 ? 0 : images.numel() / n;
        std::unordered_map<std::uint64_t, std::int64_t> index;
        for (std::size_t i = 0; i < fingerprints_.size(); ++i) index.emplace(fingerprints_[i], std::int64_t(i));
        std::vector<std::int64_t> self(std::size_t(n), -1);
        for (std::int64_t i = 0; i < n; ++i) {
            const auto it = index.find(sample_fingerprint(images.data() + i * per, per));
            if (it != index.end()) self[std::size_t(i)] = it->second;
        }
        out.sse = out.pass.sse;
        out.ink_adjusted_sse = size_adjusted_errors(out.sse, input_mass<T>(images), ink_);
        out.knn_pooled = cosine_knn_scores(knn_reference_, out.pass.features[0], options_.k, self);
        out.mahalanobis_gram = mahalanobis_scores(gram_fit_, out.pass.features[1], self, &mahalanobis_reference_);
        out.ensemble = rank_average({calibration_[0].percentiles(out.ink_adjusted_sse),
                                     calibration_[1].percentiles(out.knn_pooled),
                                     calibration_[2].percentiles(out.mahalanobis_gram)});
        return out;
    }

    void save(const std::filesystem::path& path) const;
    static ReferenceSet load(const std::filesystem::path& path);

    const EnsembleOptions& options() const { return options_; }
    std::int64_t size() const { return std::int64_t(fingerprints_.size()); }
    const SizeAdjustment& ink_fit() const { return ink_; }
    const LedoitWolfFit& gram_fit() const { return gram_fit_; }
    // The members' calibrations, in the order ink_adjusted_sse, knn_pooled, mahalanobis_gram.
    const std::vector<PercentileCalibration>& calibration() const { return calibration_; }

private:
    EnsembleOptions options_;
    std::uint64_t model_ = 0;
    SizeAdjustment ink_;
    FeatureMatrix knn_reference_, mahalanobis_reference_;
    LedoitWolfFit gram_fit_;
    std::vector<PercentileCalibration> calibration_;
    std::vector<std::uint64_t> fingerprints_;
};

// The file: tensors knn_reference (n, a) and mahalanobis_reference (n, b) F64,
// gram_mean (b), gram_covariance (b, b), calibration_<member> (n) F64 and
// fingerprints (n) U64 stored as I64; metadata: format, model, the options, the ink
// line, the shrinkage and its target (decimal text that reads back exactly).
inline constexpr const char* kReferenceSetFormat = "ewe.anomaly.reference_set.v1";

inline void ReferenceSet::save(const std::filesystem::path& path) const {
    const auto entry = [](std::string name, const std::vector<double>& v, std::vector<std::int64_t> shape) {
        return io::SafetensorsEntry{std::move(name), "F64", std::move(shape), v.data(), v.size() * sizeof(double)};
    };
    const std::int64_t n = size(), b = gram_fit_.features;
    std::vector<io::SafetensorsEntry> entries = {
        entry("knn_reference", knn_reference_.values, {n, knn_reference_.cols}),
        entry("mahalanobis_reference", mahalanobis_reference_.values, {n, b}),
        entry("gram_mean", gram_fit_.mean, {b}),
        entry("gram_covariance", gram_fit_.covariance, {b, b}),
        entry("calibration_ink_adjusted_sse", calibration_[0].reference_scores(), {n}),
        entry("calibration_knn_pooled", calibration_[1].reference_scores(), {n}),
        entry("calibration_mahalanobis_gram", calibration_[2].reference_scores(), {n}),
        io::SafetensorsEntry{"fingerprints", "I64", {n}, fingerprints_.data(), fingerprints_.size() * 8}};
    const auto exact = [](double v) {
        char text[40];
        std::snprintf(text, sizeof text, "%.17g", v);
        return std::string(text);
    };
    const std::map<std::string, std::string> metadata = {
        {"format", kReferenceSetFormat},
        {"model", io::hash_text(model_)},
        {"knn_layer", std::to_string(options_.knn_tap.layer)},
        {"knn_grid", std::to_string(options_.knn_tap.grid)},
        {"k", std::to_string(options_.k)},
        {"mahalanobis_layer", std::to_string(options_.mahalanobis_tap.layer)},
        {"ink_intercept", exact(ink_.intercept)},
        {"ink_slope", exact(ink_.slope)},
        {"shrinkage", exact(gram_fit_.shrinkage)},
        {"target", exact(gram_fit_.target)}};
    io::write_safetensors(path, entries, metadata);
}

inline ReferenceSet ReferenceSet::load(const std::filesystem::path& path) {
    const io::SafetensorsFile file = io::read_safetensors(path);
    const std::string where = "reference set " + path.string();
    EWE_REQUIRE(file.metadata.count("format") && file.meta("format") == kReferenceSetFormat, where,
                ": not a reference set (expected __metadata__ format '", kReferenceSetFormat, "', found '",
                file.metadata.count("format") ? file.meta("format") : std::string("none"), "')");
    const auto integer = [&](const char* key) {
        const std::string& text = file.meta(key);
        try {
            std::size_t used = 0;
            const long long v = std::stoll(text, &used);
            if (used == text.size() && v >= 0) return std::int64_t(v);
        } catch (const std::exception&) {
        }
        fail(where, ": metadata '", key, "' should be a non-negative integer, found '", text, "'");
    };
    const auto number = [&](const char* key) {
        const std::string& text = file.meta(key);
        try {
            std::size_t used = 0;
            const double v = std::stod(text, &used);
            if (used == text.size()) return v;
        } catch (const std::exception&) {
        }
        fail(where, ": metadata '", key, "' should be a number, found '", text, "'");
    };
    const auto shape_of = [&](const std::string& name) {
        EWE_REQUIRE(file.has(name), where, ": has no tensor '", name, "'");
        return file.tensors.at(name).shape;
    };
    ReferenceSet set;
    set.options_.knn_tap = {std::size_t(integer("knn_layer")), TapSummary::pooled, integer("knn_grid")};
    set.options_.k = integer("k");
    set.options_.mahalanobis_tap = {std::size_t(integer("mahalanobis_layer")), TapSummary::gram, 0};
    set.ink_ = {number("ink_intercept"), number("ink_slope")};
    set.gram_fit_.shrinkage = number("shrinkage");
    set.gram_fit_.target = number("target");
    const std::string model = file.meta("model");
    set.model_ = std::strtoull(model.c_str(), nullptr, 16);
    EWE_REQUIRE(io::hash_text(set.model_) == model, where, ": metadata 'model' should be a 0x-prefixed 64-bit hash, found '",
                model, "'");
    const std::vector<std::int64_t> knn = shape_of("knn_reference"), gram = shape_of("mahalanobis_reference");
    EWE_REQUIRE(knn.size() == 2 && gram.size() == 2 && knn[0] == gram[0] && knn[0] > set.options_.k + 1, where,
                ": knn_reference and mahalanobis_reference should be (n, features) with the same n > k + 1, found ",
                knn.size() == 2 ? knn[0] : -1, " and ", gram.size() == 2 ? gram[0] : -1, " rows");
    const std::int64_t n = knn[0], b = gram[1];
    set.knn_reference_ = FeatureMatrix(n, knn[1]);
    set.mahalanobis_reference_ = FeatureMatrix(n, b);
    file.copy_to("knn_reference", set.knn_reference_.values.data(), set.knn_reference_.values.size());
    file.copy_to("mahalanobis_reference", set.mahalanobis_reference_.values.data(), set.mahalanobis_reference_.values.size());
    set.gram_fit_.samples = n;
    set.gram_fit_.features = b;
    set.gram_fit_.mean.resize(std::size_t(b));
    set.gram_fit_.covariance.resize(std::size_t(b * b));
    file.copy_to("gram_mean", set.gram_fit_.mean.data(), set.gram_fit_.mean.size());
    file.copy_to("gram_covariance", set.gram_fit_.covariance.data(), set.gram_fit_.covariance.size());
    for (const char* member : {"ink_adjusted_sse", "knn_pooled", "mahalanobis_gram"}) {
        std::vector<double> scores(static_cast<std::size_t>(n));
        file.copy_to(std::string("calibration_") + member, scores.data(), scores.size());
        set.calibration_.emplace_back(std::move(scores));
    }
    std::vector<std::int64_t> fingerprints(static_cast<std::size_t>(n));
    file.copy_to("fingerprints", fingerprints.data(), fingerprints.size());
    for (std::int64_t f : fingerprints) set.fingerprints_.push_back(std::uint64_t(f));
    return set;
}

}  // namespace ewe::anomaly
