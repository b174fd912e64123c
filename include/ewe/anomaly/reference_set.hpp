// A fitted reference set of normal samples for a trained VAE, and the anomaly scores it
// gives new samples from one tapped pass (ewe/anomaly/feature_taps.hpp) of the model:
//   sse               the reconstruction error (reconstruction_sse);
//   ink_adjusted_sse  log(1 + sse) minus its log-log line in the sample's size, fitted
//                     on the reference (ewe/anomaly/scores.hpp);
//   knn_pooled        the mean cosine distance d to the k nearest reference samples of a
//                     layer's average-pooled, square-rooted map (ewe/anomaly/knn.hpp),
//                     adjusted for size as sse is: log(1 + d) minus its line in
//                     log(1 + size), fitted on the reference's own leave-one-out distances;
//   knn_dense         the same on a dense layer's units;
//   mahalanobis_gram  squared Mahalanobis distance of a layer's square-rooted Gram matrix
//                     under the reference's Ledoit-Wolf covariance (ewe/anomaly/mahalanobis.hpp);
//   ensemble          the rank average of the last three, each calibrated as a
//                     percentile of the reference's own scores (ewe/anomaly/ensemble.hpp).
// docs/anomaly_scores.md says how the members and settings were chosen (on rows 0-49 of
// each planted class only). A sample that is itself in the reference set (same values,
// recognised by a fingerprint) is scored leave-one-out. The set is saved to and loaded
// from a safetensors file (written atomically), which records the model it was fitted on;
// load_reference_set loads one for a program that may also have been given its settings.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
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
// convolutions, then Flatten, Dense, Dropout, BatchNormalization, ...: layers 0-3 and 7
// of its encoder): k = 5 on the third convolution's map pooled to 7 x 7, on the first
// dense layer's (batch-normalized) 100 units, and the second convolution's Gram matrix
// (docs/anomaly_scores.md). for_sheep_vae gives the same layers for another count of
// convolutions.
struct EnsembleOptions {
    FeatureTap knn_tap{2, TapSummary::pooled, 7, true};
    FeatureTap dense_tap{7, TapSummary::values, 0, false};
    std::int64_t k = 5;
    FeatureTap mahalanobis_tap{1, TapSummary::gram, 0, true};

    EnsembleOptions& set_knn_tap(FeatureTap t) { knn_tap = t; return *this; }
    EnsembleOptions& set_dense_tap(FeatureTap t) { dense_tap = t; return *this; }
    EnsembleOptions& set_k(std::int64_t v) { k = v; return *this; }
    EnsembleOptions& set_mahalanobis_tap(FeatureTap t) { mahalanobis_tap = t; return *this; }

    // A SheepVae with `convolutions` convolutions (>= 1): the last but one convolution
    // (the only one when there is one) pooled to grid x grid, the first dense layer's
    // batch normalization, the second convolution's (or the only one's) Gram matrix.
    static EnsembleOptions for_sheep_vae(std::int64_t convolutions, std::int64_t k, std::int64_t grid) {
        EWE_REQUIRE(convolutions >= 1, "EnsembleOptions::for_sheep_vae: needs at least one convolution, found ",
                    convolutions);
        EnsembleOptions o;
        o.knn_tap.layer = std::size_t(std::max<std::int64_t>(0, convolutions - 2));
        o.knn_tap.grid = grid;
        o.dense_tap.layer = std::size_t(convolutions + 3);
        o.mahalanobis_tap.layer = std::size_t(std::min<std::int64_t>(1, convolutions - 1));
        o.k = k;
        return o;
    }
    std::vector<FeatureTap> taps() const { return {knn_tap, dense_tap, mahalanobis_tap}; }
};

// Every score of every sample, in the order of names().
struct EnsembleScores {
    std::vector<double> sse, ink_adjusted_sse, knn_pooled, knn_dense, mahalanobis_gram, ensemble;
    TappedPass pass;  // the pass they came from (posterior means and log variances)

    static std::vector<std::string> names() {
        return {"sse", "ink_adjusted_sse", "knn_pooled", "knn_dense", "mahalanobis_gram", "ensemble"};
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
    // Fits every member on host `images` (n, input...), all normal, n > k + 1.
    template <class T>
    static ReferenceSet fit(Context& ctx, Vae<T>& vae, std::type_identity_t<TensorView<const T>> images,
                            const EnsembleOptions& options = {}) {
        EWE_REQUIRE(images.rank() >= 2 && images.dim(0) > options.k + 1, "ReferenceSet::fit: needs more than k + 1 = ",
                    options.k + 1, " reference samples, found ", images.rank() >= 1 ? images.dim(0) : 0);
        ReferenceSet set;
        set.options_ = options;
        set.model_ = model_fingerprint(vae);
        TappedPass pass = tapped_pass<T>(ctx, vae, images, options.taps());
        const std::vector<double> mass = input_mass<T>(images);
        set.ink_ = fit_size_adjustment(pass.sse, mass);
        set.knn_pooled_.reference = std::move(pass.features[0]);
        set.knn_dense_.reference = std::move(pass.features[1]);
        set.mahalanobis_reference_ = std::move(pass.features[2]);
        set.gram_fit_ = ledoit_wolf(set.mahalanobis_reference_);
        const std::int64_t n = images.dim(0), per = images.numel() / n;
        for (std::int64_t i = 0; i < n; ++i) set.fingerprints_.push_back(sample_fingerprint(images.data() + i * per, per));
        std::vector<std::int64_t> self(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) self[std::size_t(i)] = i;
        std::vector<double> own_pooled = set.knn_pooled_.fit(options.k, mass, self);
        std::vector<double> own_dense = set.knn_dense_.fit(options.k, mass, self);
        set.calibration_ = {
            PercentileCalibration(std::move(own_pooled)), PercentileCalibration(std::move(own_dense)),
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
        out.pass = tapped_pass<T>(ctx, vae, images, options_.taps());
        EWE_REQUIRE(out.pass.features[0].cols == knn_pooled_.reference.cols &&
                        out.pass.features[1].cols == knn_dense_.reference.cols &&
                        out.pass.features[2].cols == mahalanobis_reference_.cols,
                    "ReferenceSet::score: the model's tapped features do not match the set's");
        const std::int64_t n = images.dim(0), per = n == 0 ? 0 : images.numel() / n;
        std::unordered_map<std::uint64_t, std::int64_t> index;
        for (std::size_t i = 0; i < fingerprints_.size(); ++i) index.emplace(fingerprints_[i], std::int64_t(i));
        std::vector<std::int64_t> self(std::size_t(n), -1);
        for (std::int64_t i = 0; i < n; ++i) {
            const auto it = index.find(sample_fingerprint(images.data() + i * per, per));
            if (it != index.end()) self[std::size_t(i)] = it->second;
        }
        const std::vector<double> mass = input_mass<T>(images);
        out.sse = out.pass.sse;
        out.ink_adjusted_sse = size_adjusted_errors(out.sse, mass, ink_);
        out.knn_pooled = knn_pooled_.score(out.pass.features[0], options_.k, mass, self);
        out.knn_dense = knn_dense_.score(out.pass.features[1], options_.k, mass, self);
        out.mahalanobis_gram = mahalanobis_scores(gram_fit_, out.pass.features[2], self, &mahalanobis_reference_);
        out.ensemble = rank_average({calibration_[0].percentiles(out.knn_pooled),
                                     calibration_[1].percentiles(out.knn_dense),
                                     calibration_[2].percentiles(out.mahalanobis_gram)});
        return out;
    }

    void save(const std::filesystem::path& path) const;
    static ReferenceSet load(const std::filesystem::path& path);

    const EnsembleOptions& options() const { return options_; }
    std::int64_t size() const { return std::int64_t(fingerprints_.size()); }
    const SizeAdjustment& ink_fit() const { return ink_; }
    // The size lines of knn_pooled's and knn_dense's distances.
    const SizeAdjustment& knn_pooled_ink_fit() const { return knn_pooled_.ink; }
    const SizeAdjustment& knn_dense_ink_fit() const { return knn_dense_.ink; }
    const LedoitWolfFit& gram_fit() const { return gram_fit_; }
    // The members' calibrations, in the order knn_pooled, knn_dense, mahalanobis_gram.
    const std::vector<PercentileCalibration>& calibration() const { return calibration_; }

private:
    // A size-adjusted cosine k-NN member: the reference's features and the line of its
    // own leave-one-out distances in size.
    struct KnnMember {
        FeatureMatrix reference;
        SizeAdjustment ink;

        // Fits `ink` on the reference's leave-one-out distances; returns its adjusted scores.
        std::vector<double> fit(std::int64_t k, const std::vector<double>& mass, const std::vector<std::int64_t>& self) {
            const std::vector<double> distances = cosine_knn_scores(reference, reference, k, self);
            ink = fit_size_adjustment(distances, mass);
            return size_adjusted_errors(distances, mass, ink);
        }
        std::vector<double> score(const FeatureMatrix& queries, std::int64_t k, const std::vector<double>& mass,
                                  const std::vector<std::int64_t>& self) const {
            return size_adjusted_errors(cosine_knn_scores(reference, queries, k, self), mass, ink);
        }
    };

    EnsembleOptions options_;
    std::uint64_t model_ = 0;
    SizeAdjustment ink_;
    KnnMember knn_pooled_, knn_dense_;
    FeatureMatrix mahalanobis_reference_;
    LedoitWolfFit gram_fit_;
    std::vector<PercentileCalibration> calibration_;
    std::vector<std::uint64_t> fingerprints_;
};

// The file: tensors knn_pooled_reference (n, a), knn_dense_reference (n, b) and
// mahalanobis_reference (n, c) F64, gram_mean (c), gram_covariance (c, c),
// calibration_<member> (n) F64 and fingerprints (n) U64 stored as I64; metadata:
// format, model, k, each tap (<tap>_layer, _summary, _grid, _square_root for knn_pooled,
// knn_dense, mahalanobis_gram), the size lines (ink_ for sse, knn_pooled_ink_,
// knn_dense_ink_: intercept and slope), the shrinkage and its target (decimal text that
// reads back exactly). Version 1 (an ensemble of ink_adjusted_sse, an unadjusted
// knn_pooled and mahalanobis_gram) is refused with a word on refitting.
inline constexpr const char* kReferenceSetFormat = "ewe.anomaly.reference_set.v2";
inline constexpr const char* kReferenceSetFormatV1 = "ewe.anomaly.reference_set.v1";

inline void ReferenceSet::save(const std::filesystem::path& path) const {
    const auto entry = [](std::string name, const std::vector<double>& v, std::vector<std::int64_t> shape) {
        return io::SafetensorsEntry{std::move(name), "F64", std::move(shape), v.data(), v.size() * sizeof(double)};
    };
    const std::int64_t n = size(), c = gram_fit_.features;
    std::vector<io::SafetensorsEntry> entries = {
        entry("knn_pooled_reference", knn_pooled_.reference.values, {n, knn_pooled_.reference.cols}),
        entry("knn_dense_reference", knn_dense_.reference.values, {n, knn_dense_.reference.cols}),
        entry("mahalanobis_reference", mahalanobis_reference_.values, {n, c}),
        entry("gram_mean", gram_fit_.mean, {c}),
        entry("gram_covariance", gram_fit_.covariance, {c, c}),
        entry("calibration_knn_pooled", calibration_[0].reference_scores(), {n}),
        entry("calibration_knn_dense", calibration_[1].reference_scores(), {n}),
        entry("calibration_mahalanobis_gram", calibration_[2].reference_scores(), {n}),
        io::SafetensorsEntry{"fingerprints", "I64", {n}, fingerprints_.data(), fingerprints_.size() * 8}};
    const auto exact = [](double v) {
        char text[40];
        std::snprintf(text, sizeof text, "%.17g", v);
        return std::string(text);
    };
    std::map<std::string, std::string> metadata = {
        {"format", kReferenceSetFormat},
        {"model", io::hash_text(model_)},
        {"k", std::to_string(options_.k)},
        {"shrinkage", exact(gram_fit_.shrinkage)},
        {"target", exact(gram_fit_.target)}};
    for (const auto& [name, tap] : {std::pair{"knn_pooled", options_.knn_tap}, std::pair{"knn_dense", options_.dense_tap},
                                    std::pair{"mahalanobis_gram", options_.mahalanobis_tap}}) {
        const std::string key = name;
        metadata[key + "_layer"] = std::to_string(tap.layer);
        metadata[key + "_summary"] = to_string(tap.summary);
        metadata[key + "_grid"] = std::to_string(tap.grid);
        metadata[key + "_square_root"] = tap.square_root ? "1" : "0";
    }
    for (const auto& [name, line] : {std::pair{"ink", ink_}, std::pair{"knn_pooled_ink", knn_pooled_.ink},
                                     std::pair{"knn_dense_ink", knn_dense_.ink}}) {
        metadata[std::string(name) + "_intercept"] = exact(line.intercept);
        metadata[std::string(name) + "_slope"] = exact(line.slope);
    }
    io::write_safetensors(path, entries, metadata);
}

inline ReferenceSet ReferenceSet::load(const std::filesystem::path& path) {
    const io::SafetensorsFile file = io::read_safetensors(path);
    const std::string where = "reference set " + path.string();
    const std::string format = file.metadata.count("format") ? file.meta("format") : std::string("none");
    EWE_REQUIRE(format != kReferenceSetFormatV1, where, ": format ", kReferenceSetFormatV1,
                " (an ensemble of ink_adjusted_sse, knn_pooled and mahalanobis_gram without size adjustment) is no "
                "longer read; this ewe reads ", kReferenceSetFormat, ": fit the set again from the drawings");
    EWE_REQUIRE(format == kReferenceSetFormat, where, ": not a reference set (expected __metadata__ format '",
                kReferenceSetFormat, "', found '", format, "')");
    const auto integer = [&](const std::string& key) {
        const std::string& text = file.meta(key);
        try {
            std::size_t used = 0;
            const long long v = std::stoll(text, &used);
            if (used == text.size() && v >= 0) return std::int64_t(v);
        } catch (const std::exception&) {
        }
        fail(where, ": metadata '", key, "' should be a non-negative integer, found '", text, "'");
    };
    const auto number = [&](const std::string& key) {
        const std::string& text = file.meta(key);
        try {
            std::size_t used = 0;
            const double v = std::stod(text, &used);
            if (used == text.size()) return v;
        } catch (const std::exception&) {
        }
        fail(where, ": metadata '", key, "' should be a number, found '", text, "'");
    };
    const auto tap = [&](const std::string& name) {
        FeatureTap t{std::size_t(integer(name + "_layer")), TapSummary::pooled, integer(name + "_grid"),
                     integer(name + "_square_root") != 0};
        const std::string& summary = file.meta(name + "_summary");
        if (summary == "gram") t.summary = TapSummary::gram;
        else if (summary == "values") t.summary = TapSummary::values;
        else if (summary != "pooled")
            fail(where, ": metadata '", name, "_summary' should be pooled, gram or values, found '", summary, "'");
        return t;
    };
    const auto line = [&](const std::string& name) {
        return SizeAdjustment{number(name + "_intercept"), number(name + "_slope")};
    };
    const auto rows_of = [&](const std::string& name) {
        EWE_REQUIRE(file.has(name), where, ": has no tensor '", name, "'");
        const std::vector<std::int64_t>& shape = file.tensors.at(name).shape;
        EWE_REQUIRE(shape.size() == 2, where, ": tensor '", name, "' should be (n, features), found rank ", shape.size());
        return shape;
    };
    ReferenceSet set;
    set.options_.knn_tap = tap("knn_pooled");
    set.options_.dense_tap = tap("knn_dense");
    set.options_.mahalanobis_tap = tap("mahalanobis_gram");
    set.options_.k = integer("k");
    set.ink_ = line("ink");
    set.knn_pooled_.ink = line("knn_pooled_ink");
    set.knn_dense_.ink = line("knn_dense_ink");
    set.gram_fit_.shrinkage = number("shrinkage");
    set.gram_fit_.target = number("target");
    const std::string model = file.meta("model");
    set.model_ = std::strtoull(model.c_str(), nullptr, 16);
    EWE_REQUIRE(io::hash_text(set.model_) == model, where, ": metadata 'model' should be a 0x-prefixed 64-bit hash, found '",
                model, "'");
    const std::vector<std::int64_t> pooled = rows_of("knn_pooled_reference"), dense = rows_of("knn_dense_reference"),
                                    gram = rows_of("mahalanobis_reference");
    const std::int64_t n = pooled[0], c = gram[1];
    EWE_REQUIRE(dense[0] == n && gram[0] == n && n > set.options_.k + 1, where,
                ": knn_pooled_reference, knn_dense_reference and mahalanobis_reference should have the same n > k + 1 "
                "rows, found ", n, ", ", dense[0], " and ", gram[0]);
    set.knn_pooled_.reference = FeatureMatrix(n, pooled[1]);
    set.knn_dense_.reference = FeatureMatrix(n, dense[1]);
    set.mahalanobis_reference_ = FeatureMatrix(n, c);
    file.copy_to("knn_pooled_reference", set.knn_pooled_.reference.values.data(), set.knn_pooled_.reference.values.size());
    file.copy_to("knn_dense_reference", set.knn_dense_.reference.values.data(), set.knn_dense_.reference.values.size());
    file.copy_to("mahalanobis_reference", set.mahalanobis_reference_.values.data(), set.mahalanobis_reference_.values.size());
    set.gram_fit_.samples = n;
    set.gram_fit_.features = c;
    set.gram_fit_.mean.resize(std::size_t(c));
    set.gram_fit_.covariance.resize(std::size_t(c * c));
    file.copy_to("gram_mean", set.gram_fit_.mean.data(), set.gram_fit_.mean.size());
    file.copy_to("gram_covariance", set.gram_fit_.covariance.data(), set.gram_fit_.covariance.size());
    for (const char* member : {"knn_pooled", "knn_dense", "mahalanobis_gram"}) {
        std::vector<double> scores(static_cast<std::size_t>(n));
        file.copy_to(std::string("calibration_") + member, scores.data(), scores.size());
        set.calibration_.emplace_back(std::move(scores));
    }
    std::vector<std::int64_t> fingerprints(static_cast<std::size_t>(n));
    file.copy_to("fingerprints", fingerprints.data(), fingerprints.size());
    for (std::int64_t f : fingerprints) set.fingerprints_.push_back(std::uint64_t(f));
    return set;
}

// What a program asked of a saved reference set: the k and knn grid it was given (none:
// take the set's), the flags that give them ("--k", "--pool"; a message names the value
// by the flag without its dashes) and what to do instead of using the set.
struct SavedReferenceRequest {
    std::optional<std::int64_t> k, grid;
    std::string k_flag = "--k", grid_flag = "--grid";
    std::string instead = "fit a new set";
};

// The reference set saved at `path`, refusing a requested k or grid other than the set's:
// "--k 7: the reference set PATH was fitted with k = 5; leave --k out to use it, or INSTEAD".
inline ReferenceSet load_reference_set(const std::filesystem::path& path, const SavedReferenceRequest& request) {
    ReferenceSet set = ReferenceSet::load(path);
    const auto check = [&](const std::optional<std::int64_t>& asked, std::int64_t fitted, const std::string& flag) {
        if (asked && *asked != fitted)
            fail(flag, " ", *asked, ": the reference set ", path.string(), " was fitted with ",
                 flag.substr(flag.find_first_not_of('-')), " = ", fitted, "; leave ", flag, " out to use it, or ",
                 request.instead);
    };
    check(request.k, set.options().k, request.k_flag);
    check(request.grid, set.options().knn_tap.grid, request.grid_flag);
    return set;
}

}  // namespace ewe::anomaly
