// A tour of a trained VAE's latent space, as the "sheep in latent space" post takes it:
// tour_latent_space encodes images (posterior means) and writes into a folder the
// latent codes (latent.npy) and their scatter (latent_scatter.svg, the first two
// dimensions); the k-means elbow (kmeans_elbow.csv/.svg, k = 1..k_max) and the
// mosaic_k centres decoded into images (kmeans_<k>_centres.png); the sorted distances
// to the knn_k-th neighbour (knn_distance.svg, whose knee suggests eps); a random search
// over DBSCAN's (eps, minPts) (dbscan_search.csv, and a table on options.table) and the
// clustering it chooses, or the one options.eps/min_pts fix (dbscan_labels.npy,
// dbscan_clusters.svg, dbscan_cluster_strips.png: sample images of each cluster).
// The search draws its trials from Philox(seed) and chooses the trial with the fewest
// noise points among those with 2..30 clusters (more clusters on ties), else the one
// with the most clusters. Clustering: ewe/cluster/kmeans.hpp, ewe/cluster/dbscan.hpp.
#pragma once

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "ewe/cluster/dbscan.hpp"
#include "ewe/cluster/kmeans.hpp"
#include "ewe/core/philox.hpp"
#include "ewe/io/csv.hpp"
#include "ewe/io/image_sheet.hpp"
#include "ewe/io/npy.hpp"
#include "ewe/io/svg.hpp"
#include "ewe/models/vae_inference.hpp"
#include "ewe/train/progress_bar.hpp"

namespace ewe {

struct LatentTourOptions {
    std::int64_t k_max = 30;     // the elbow's k = 1..k_max (at most n)
    std::int64_t mosaic_k = 100;  // k of the decoded-centre mosaic (at most n)
    int knn_k = 5;                // the k-NN distance plot's k (none when n <= k)
    int trials = 100;             // DBSCAN random-search trials
    double eps_min = 0.005, eps_max = 0.5;
    std::int64_t min_pts_min = 5, min_pts_max = 300;  // min_pts_max capped at n
    double eps = 0;               // > 0 (with min_pts): the final clustering's, instead of the search's choice
    std::int64_t min_pts = 0;
    std::uint64_t seed = 7;       // of k-means and of the search
    std::ostream* log = nullptr;  // progress notes
    bool redraw = false;          // the search's progress line redraws in place
    std::ostream* table = nullptr;  // the search's trials and the chosen clustering
    std::string unit = "images";    // what the images are, in titles and notes ("drawings")
};

// The trials of a DBSCAN random search: eps uniform in [eps_min, eps_max], min_pts
// uniform in [min_pts_min, max(min(min_pts_max, n), min_pts_min)], from Philox(seed).
inline std::vector<cluster::DbscanTrial> dbscan_random_trials(const LatentTourOptions& o, std::int64_t n) {
    std::vector<cluster::DbscanTrial> trials;
    const PhiloxKey key{o.seed, 0xDB5Cu, 0};
    const std::int64_t hi_pts = std::max<std::int64_t>(std::min(o.min_pts_max, n), o.min_pts_min);
    for (int t = 0; t < o.trials; ++t) {
        const double u = double(philox_bits(key, std::uint64_t(2 * t))) / 4294967296.0;
        const double v = double(philox_bits(key, std::uint64_t(2 * t + 1))) / 4294967296.0;
        trials.push_back({o.eps_min + (o.eps_max - o.eps_min) * u,
                          o.min_pts_min + std::int64_t(v * double(hi_pts - o.min_pts_min + 1))});
    }
    return trials;
}

// The search's choice: the fewest noise points among trials with 2..30 clusters (more
// clusters on ties); without any, the trial with the most clusters.
inline std::size_t choose_dbscan_trial(const std::vector<cluster::DbscanTrialResult>& results) {
    std::size_t best = 0;
    bool found = false;
    for (std::size_t t = 0; t < results.size(); ++t) {
        const auto& r = results[t];
        if (r.n_clusters < 2 || r.n_clusters > 30) continue;
        if (!found || r.n_noise < results[best].n_noise ||
            (r.n_noise == results[best].n_noise && r.n_clusters > results[best].n_clusters))
            best = t, found = true;
    }
    if (!found)
        for (std::size_t t = 0; t < results.size(); ++t)
            if (results[t].n_clusters > results[best].n_clusters) best = t;
    return best;
}

namespace detail {

// printf into a stream, when there is one.
inline void tour_print(std::ostream* os, const char* format, ...) __attribute__((format(printf, 2, 3)));
inline void tour_print(std::ostream* os, const char* format, ...) {
    if (!os) return;
    char text[512];
    std::va_list args;
    va_start(args, format);
    const int n = std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    os->write(text, std::min<int>(std::max(n, 0), int(sizeof text) - 1));
}

}  // namespace detail

// What the tour found.
struct LatentTour {
    VaeEncoding<float> encoding;
    std::vector<cluster::DbscanTrialResult> trials;
    std::size_t chosen_trial = 0;
    cluster::DbscanOptions dbscan;  // the final clustering's
    cluster::DbscanResult clustering;
};

// The tour of `images` (n, h, w, 1: grayscale, for the sheets) on the host, into `dir`
// (which must exist).
inline LatentTour tour_latent_space(Context& ctx, Vae<float>& vae, TensorView<const float> images,
                                    const std::filesystem::path& dir, const LatentTourOptions& o) {
    EWE_REQUIRE(o.eps_min < o.eps_max, "tour_latent_space: need eps_min < eps_max, found ", o.eps_min, " and ", o.eps_max);
    EWE_REQUIRE(o.min_pts_min <= o.min_pts_max, "tour_latent_space: need min_pts_min <= min_pts_max, found ",
                o.min_pts_min, " and ", o.min_pts_max);
    EWE_REQUIRE((o.eps > 0) == (o.min_pts > 0), "tour_latent_space: eps and min_pts go together");
    const Shape image = vae.image_shape();
    const int height = int(image[0]), width = int(image[1]);
    const std::int64_t pixels = image.numel();
    LatentTour tour;
    tour.encoding = encode<float>(ctx, vae, images);
    const VaeEncoding<float>& enc = tour.encoding;
    const std::int64_t n = images.dim(0), d = enc.latent;
    const int dims = int(d);
    io::write_npy<float>(dir / "latent.npy", enc.mean.data(), Shape{n, d});
    auto coord = [&](std::int64_t i, int k) { return k < dims ? double(enc.mean[std::size_t(i * d + k)]) : 0.0; };
    std::vector<double> xs(static_cast<std::size_t>(n)), ys(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) xs[std::size_t(i)] = coord(i, 0), ys[std::size_t(i)] = coord(i, 1);
    io::SvgPlot("Latent space (" + std::to_string(n) + " " + o.unit + ", posterior means)", "z[0]", "z[1]", 560, 520)
        .scatter(xs, ys, io::palette(0), {}, 1.6, 0.5)
        .write(dir / "latent_scatter.svg");
    detail::tour_print(o.log, "Encoded %lld %s into %lld latent dimensions\n", (long long)n, o.unit.c_str(), (long long)d);

    // k-means: elbow and the mosaic of decoded centres.
    const std::int64_t k_max = std::min(o.k_max, n);
    detail::tour_print(o.log, "k-means elbow, k = 1..%lld\n", (long long)k_max);
    cluster::KMeansOptions km;
    km.set_seed(o.seed).set_n_init(3);
    std::vector<double> ks, inertia;
    std::vector<std::vector<std::string>> elbow_csv(1, {"k", "inertia"});
    for (const auto& p : cluster::kmeans_elbow(enc.mean.data(), n, dims, 1, k_max, km)) {
        ks.push_back(double(p.k));
        inertia.push_back(p.inertia);
        elbow_csv.push_back({std::to_string(p.k), io::csv_number(p.inertia)});
    }
    io::write_csv(dir / "kmeans_elbow.csv", elbow_csv);
    io::SvgPlot("k-means elbow", "k", "inertia (sum of squared distances)")
        .line(ks, inertia, io::palette(0))
        .scatter(ks, inertia, io::palette(0), {}, 3, 1)
        .write(dir / "kmeans_elbow.svg");
    const std::int64_t mk = std::min(o.mosaic_k, n);
    const auto mosaic = cluster::kmeans(enc.mean.data(), n, dims, cluster::KMeansOptions(km).set_k(mk));
    const std::vector<float> centres = decode<float>(ctx, vae, std::vector<float>(mosaic.centers.begin(), mosaic.centers.end()));
    std::vector<const float*> tiles;
    for (std::int64_t c = 0; c < mk; ++c) tiles.push_back(centres.data() + c * pixels);
    io::write_image_sheet(dir / ("kmeans_" + std::to_string(mk) + "_centres.png"), tiles, height, width, 10);

    // Sorted k-NN distances (the knee suggests eps for minPts = k + 1).
    if (n > o.knn_k) {
        std::vector<double> dist = cluster::knn_distances(enc.mean.data(), n, dims, o.knn_k);
        std::sort(dist.begin(), dist.end());
        std::vector<double> rank(dist.size());
        for (std::size_t i = 0; i < rank.size(); ++i) rank[i] = double(i);
        io::SvgPlot("Sorted distance to the " + std::to_string(o.knn_k) + "-th nearest neighbour", "points (sorted)",
                    "distance")
            .line(rank, dist, io::palette(0))
            .write(dir / "knn_distance.svg");
    }

    // DBSCAN random search, ten trials at a time for the progress line.
    const std::vector<cluster::DbscanTrial> trials = dbscan_random_trials(o, n);
    detail::tour_print(o.log, "DBSCAN random search: %d trials, eps in [%g, %g], minPts in [%lld, %lld]\n", o.trials,
                       o.eps_min, o.eps_max, (long long)o.min_pts_min,
                       (long long)std::max<std::int64_t>(std::min(o.min_pts_max, n), o.min_pts_min));
    std::ostringstream silent;
    ProgressLine bar(o.log ? *o.log : silent, o.redraw, std::int64_t(trials.size()));
    for (std::size_t t = 0; t < trials.size(); t += 10) {
        const std::vector<cluster::DbscanTrial> chunk(trials.begin() + std::ptrdiff_t(t),
                                                      trials.begin() + std::ptrdiff_t(std::min(t + 10, trials.size())));
        for (auto& r : cluster::dbscan_search(enc.mean.data(), n, dims, chunk)) tour.trials.push_back(std::move(r));
        bar.update(std::int64_t(tour.trials.size()));
    }
    const std::size_t best = tour.chosen_trial = choose_dbscan_trial(tour.trials);
    std::vector<std::vector<std::string>> search_csv(1, {"trial", "eps", "min_pts", "clusters", "noise", "core"});
    detail::tour_print(o.table, "%5s %8s %7s %8s %6s\n", "trial", "eps", "minPts", "clusters", "noise");
    for (std::size_t t = 0; t < tour.trials.size(); ++t) {
        const auto& r = tour.trials[t];
        search_csv.push_back({std::to_string(t), io::csv_number(r.eps), std::to_string(r.min_pts),
                              std::to_string(r.n_clusters), std::to_string(r.n_noise), std::to_string(r.n_core)});
        detail::tour_print(o.table, "%5zu %8.4f %7lld %8d %6lld%s\n", t, r.eps, (long long)r.min_pts, r.n_clusters,
                           (long long)r.n_noise, t == best ? "  <- chosen" : "");
    }
    io::write_csv(dir / "dbscan_search.csv", search_csv);
    tour.dbscan.set_eps(o.eps > 0 ? o.eps : tour.trials[best].eps)
        .set_min_pts(o.min_pts > 0 ? o.min_pts : tour.trials[best].min_pts);
    tour.clustering = cluster::dbscan(enc.mean.data(), n, dims, tour.dbscan);
    const cluster::DbscanResult& clustering = tour.clustering;
    detail::tour_print(o.table, "chosen: eps %.4f, minPts %lld: %d clusters, %lld noise points\n", tour.dbscan.eps,
                       (long long)tour.dbscan.min_pts, clustering.n_clusters, (long long)clustering.n_noise);
    io::write_npy<std::int32_t>(dir / "dbscan_labels.npy", clustering.labels.data(), Shape{n});
    char title[128];
    std::snprintf(title, sizeof title, "DBSCAN (eps %.3f, minPts %lld): %d clusters, %lld noise", tour.dbscan.eps,
                  (long long)tour.dbscan.min_pts, clustering.n_clusters, (long long)clustering.n_noise);
    io::SvgPlot plot(title, "z[0]", "z[1]", 560, 520);
    for (int c = -1; c < clustering.n_clusters; ++c) {
        std::vector<double> cx, cy;
        for (std::int64_t i = 0; i < n; ++i)
            if (clustering.labels[std::size_t(i)] == c) cx.push_back(xs[std::size_t(i)]), cy.push_back(ys[std::size_t(i)]);
        const std::string label = c < 0 ? "noise" : c < 9 ? "cluster " + std::to_string(c) : std::string();
        plot.scatter(cx, cy, c < 0 ? "#bbbbbb" : io::palette(std::size_t(c)), label, 1.8, c < 0 ? 0.4 : 0.7);
    }
    plot.write(dir / "dbscan_clusters.svg");
    // Strips: up to 12 images per cluster (evenly spaced through its members), one row
    // per cluster, at most 30 clusters; noise last.
    const int per_row = 12;
    std::vector<int> shown;
    for (int c = 0; c < std::min(clustering.n_clusters, 30); ++c) shown.push_back(c);
    if (clustering.n_noise > 0) shown.push_back(-1);
    const std::vector<float> blank(std::size_t(pixels), 0.0f);
    tiles.clear();
    for (int c : shown) {
        std::vector<std::int64_t> members;
        for (std::int64_t i = 0; i < n; ++i)
            if (clustering.labels[std::size_t(i)] == c) members.push_back(i);
        for (int k = 0; k < per_row; ++k)
            tiles.push_back(k < std::int64_t(members.size())
                                ? images.data() + members[std::size_t(std::int64_t(k) * std::int64_t(members.size()) / per_row)] * pixels
                                : blank.data());
    }
    if (!tiles.empty()) io::write_image_sheet(dir / "dbscan_cluster_strips.png", tiles, height, width, per_row);
    return tour;
}

}  // namespace ewe
