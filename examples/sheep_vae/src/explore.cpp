// `sheep_vae explore`: the post's tour of the latent space. Encodes the drawings
// (posterior means) and writes: the latent scatter; the k-means elbow (k = 1..30) and
// a mosaic of the k = 100 centres decoded into sheep; the sorted k-NN distance plot;
// a random search over DBSCAN's (eps, minPts) with a table, the chosen clustering in
// colour, and strips of sample drawings per cluster. Clustering: ewe/cluster/*.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <ewe/cluster/dbscan.hpp>
#include <ewe/cluster/kmeans.hpp>
#include <ewe/core/philox.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/files.hpp>
#include <ewe/io/npy.hpp>
#include <ewe/io/svg.hpp>
#include <ewe/models/vae_inference.hpp>
#include <ewe/train/progress_bar.hpp>

namespace sheep {

namespace {

struct ExploreOptions {
    std::string checkpoint;
    std::string data;
    std::int64_t limit = 0;
    std::string out = "explore";
    std::int64_t k_max = 30;
    std::int64_t mosaic_k = 100;
    int knn_k = 5;
    int trials = 100;
    double eps_min = 0.005, eps_max = 0.5;
    std::int64_t min_pts_min = 5, min_pts_max = 300;
    double eps = 0;
    std::int64_t min_pts = 0;
    std::uint64_t seed = 7;
    std::string device = "cpu";
};

int run_explore(const ExploreOptions& o, const Console& io) {
    if (o.eps_min >= o.eps_max) fail("--eps-min/--eps-max: need eps-min < eps-max, found ", o.eps_min, " and ", o.eps_max);
    if (o.min_pts_min > o.min_pts_max)
        fail("--min-pts-min/--min-pts-max: need min <= max, found ", o.min_pts_min, " and ", o.min_pts_max);
    if ((o.eps > 0) != (o.min_pts > 0)) fail("--eps and --min-pts go together");
    const Bitmaps data = load_bitmaps(o.data, o.limit, "--data");
    LoadedModel m = load_model(o.checkpoint, parse_device(o.device));
    const ewe::VaeEncoding<float> enc = ewe::encode<float>(*m.ctx, *m.vae, data.images.view());
    const std::int64_t n = data.count(), d = enc.latent;
    const fs::path dir = o.out;
    ewe::io::create_folder(dir, "--out");
    ewe::io::write_npy<float>(dir / "latent.npy", enc.mean.data(), ewe::Shape{n, d});
    const int dims = int(d);
    auto coord = [&](std::int64_t i, int k) { return k < dims ? double(enc.mean[std::size_t(i * d + k)]) : 0.0; };
    std::vector<double> xs(static_cast<std::size_t>(n)), ys(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) xs[std::size_t(i)] = coord(i, 0), ys[std::size_t(i)] = coord(i, 1);
    ewe::io::SvgPlot("Latent space (" + std::to_string(n) + " drawings, posterior means)", "z[0]", "z[1]", 560, 520)
        .scatter(xs, ys, ewe::io::palette(0), {}, 1.6, 0.5)
        .write(dir / "latent_scatter.svg");
    print(io.err, "Encoded %lld drawings into %lld latent dimensions\n", (long long)n, (long long)d);

    // k-means: elbow and the mosaic of decoded centres.
    const std::int64_t k_max = std::min(o.k_max, n);
    print(io.err, "k-means elbow, k = 1..%lld\n", (long long)k_max);
    ewe::cluster::KMeansOptions km;
    km.set_seed(o.seed).set_n_init(3);
    const auto elbow = ewe::cluster::kmeans_elbow(enc.mean.data(), n, dims, 1, k_max, km);
    {
        std::vector<double> ks, inertia;
        std::vector<std::vector<std::string>> csv(1, {"k", "inertia"});
        for (const auto& p : elbow) {
            ks.push_back(double(p.k));
            inertia.push_back(p.inertia);
            csv.push_back({std::to_string(p.k), ewe::io::csv_number(p.inertia)});
        }
        ewe::io::write_csv(dir / "kmeans_elbow.csv", csv);
        ewe::io::SvgPlot("k-means elbow", "k", "inertia (sum of squared distances)")
            .line(ks, inertia, ewe::io::palette(0))
            .scatter(ks, inertia, ewe::io::palette(0), {}, 3, 1)
            .write(dir / "kmeans_elbow.svg");
    }
    const std::int64_t mk = std::min(o.mosaic_k, n);
    const auto mosaic = ewe::cluster::kmeans(enc.mean.data(), n, dims, ewe::cluster::KMeansOptions(km).set_k(mk));
    {
        std::vector<float> centers(mosaic.centers.begin(), mosaic.centers.end());
        const std::vector<float> drawings = ewe::decode<float>(*m.ctx, *m.vae, centers);
        std::vector<const float*> tiles;
        for (std::int64_t c = 0; c < mk; ++c) tiles.push_back(drawings.data() + c * kPixels);
        write_sheet(dir / ("kmeans_" + std::to_string(mk) + "_centres.png"), tiles, 10);
    }

    // Sorted k-NN distances (the knee suggests eps for minPts = k + 1).
    if (n > o.knn_k) {
        std::vector<double> dist = ewe::cluster::knn_distances(enc.mean.data(), n, dims, o.knn_k);
        std::sort(dist.begin(), dist.end());
        std::vector<double> rank(dist.size());
        for (std::size_t i = 0; i < rank.size(); ++i) rank[i] = double(i);
        ewe::io::SvgPlot("Sorted distance to the " + std::to_string(o.knn_k) + "-th nearest neighbour",
                         "points (sorted)", "distance")
            .line(rank, dist, ewe::io::palette(0))
            .write(dir / "knn_distance.svg");
    }

    // DBSCAN random search.
    std::vector<ewe::cluster::DbscanTrial> trials;
    const ewe::PhiloxKey key{o.seed, 0xDB5Cu, 0};
    const std::int64_t hi_pts = std::max<std::int64_t>(std::min(o.min_pts_max, n), o.min_pts_min);
    for (int t = 0; t < o.trials; ++t) {
        const double u = double(ewe::philox_bits(key, std::uint64_t(2 * t))) / 4294967296.0;
        const double v = double(ewe::philox_bits(key, std::uint64_t(2 * t + 1))) / 4294967296.0;
        trials.push_back({o.eps_min + (o.eps_max - o.eps_min) * u,
                          o.min_pts_min + std::int64_t(v * double(hi_pts - o.min_pts_min + 1))});
    }
    print(io.err, "DBSCAN random search: %d trials, eps in [%g, %g], minPts in [%lld, %lld]\n", o.trials,
          o.eps_min, o.eps_max, (long long)o.min_pts_min, (long long)hi_pts);
    std::vector<ewe::cluster::DbscanTrialResult> results;
    ewe::ProgressLine bar(io.err, io.redraw, std::int64_t(trials.size()));
    for (std::size_t t = 0; t < trials.size(); t += 10) {
        const std::vector<ewe::cluster::DbscanTrial> chunk(trials.begin() + std::ptrdiff_t(t),
                                                           trials.begin() + std::ptrdiff_t(std::min(t + 10, trials.size())));
        for (auto& r : ewe::cluster::dbscan_search(enc.mean.data(), n, dims, chunk)) results.push_back(std::move(r));
        bar.update(std::int64_t(results.size()));
    }
    // Choice: the fewest noise points among trials with 2..30 clusters (more clusters on
    // ties); without any, the trial with the most clusters.
    std::size_t best = 0;
    bool found = false;
    for (std::size_t t = 0; t < results.size(); ++t) {
        const auto& r = results[t];
        const bool ok = r.n_clusters >= 2 && r.n_clusters <= 30;
        if (!ok) continue;
        if (!found || r.n_noise < results[best].n_noise ||
            (r.n_noise == results[best].n_noise && r.n_clusters > results[best].n_clusters))
            best = t, found = true;
    }
    if (!found)
        for (std::size_t t = 0; t < results.size(); ++t)
            if (results[t].n_clusters > results[best].n_clusters) best = t;
    {
        std::vector<std::vector<std::string>> csv(1, {"trial", "eps", "min_pts", "clusters", "noise", "core"});
        print(io.out, "%5s %8s %7s %8s %6s\n", "trial", "eps", "minPts", "clusters", "noise");
        for (std::size_t t = 0; t < results.size(); ++t) {
            const auto& r = results[t];
            csv.push_back({std::to_string(t), ewe::io::csv_number(r.eps), std::to_string(r.min_pts),
                           std::to_string(r.n_clusters), std::to_string(r.n_noise), std::to_string(r.n_core)});
            print(io.out, "%5zu %8.4f %7lld %8d %6lld%s\n", t, r.eps, (long long)r.min_pts, r.n_clusters,
                  (long long)r.n_noise, t == best ? "  <- chosen" : "");
        }
        ewe::io::write_csv(dir / "dbscan_search.csv", csv);
    }
    ewe::cluster::DbscanOptions chosen;
    chosen.set_eps(o.eps > 0 ? o.eps : results[best].eps).set_min_pts(o.min_pts > 0 ? o.min_pts : results[best].min_pts);
    const auto clustering = ewe::cluster::dbscan(enc.mean.data(), n, dims, chosen);
    print(io.out, "chosen: eps %.4f, minPts %lld: %d clusters, %lld noise points\n", chosen.eps, (long long)chosen.min_pts,
          clustering.n_clusters, (long long)clustering.n_noise);
    ewe::io::write_npy<std::int32_t>(dir / "dbscan_labels.npy", clustering.labels.data(), ewe::Shape{n});
    {
        char title[128];
        std::snprintf(title, sizeof title, "DBSCAN (eps %.3f, minPts %lld): %d clusters, %lld noise", chosen.eps,
                      (long long)chosen.min_pts, clustering.n_clusters, (long long)clustering.n_noise);
        ewe::io::SvgPlot plot(title, "z[0]", "z[1]", 560, 520);
        for (int c = -1; c < clustering.n_clusters; ++c) {
            std::vector<double> cx, cy;
            for (std::int64_t i = 0; i < n; ++i)
                if (clustering.labels[std::size_t(i)] == c) cx.push_back(xs[std::size_t(i)]), cy.push_back(ys[std::size_t(i)]);
            const std::string label = c < 0 ? "noise" : c < 9 ? "cluster " + std::to_string(c) : std::string();
            plot.scatter(cx, cy, c < 0 ? "#bbbbbb" : ewe::io::palette(std::size_t(c)), label, 1.8, c < 0 ? 0.4 : 0.7);
        }
        plot.write(dir / "dbscan_clusters.svg");
    }
    // Strips: up to 12 drawings per cluster (evenly spaced through its members), one row
    // per cluster, at most 30 clusters; noise last.
    std::vector<const float*> tiles;
    const int per_row = 12;
    std::vector<int> shown;
    for (int c = 0; c < std::min(clustering.n_clusters, 30); ++c) shown.push_back(c);
    if (clustering.n_noise > 0) shown.push_back(-1);
    for (int c : shown) {
        std::vector<std::int64_t> members;
        for (std::int64_t i = 0; i < n; ++i)
            if (clustering.labels[std::size_t(i)] == c) members.push_back(i);
        static const std::vector<float> blank(kPixels, 0.0f);
        for (int k = 0; k < per_row; ++k)
            tiles.push_back(k < std::int64_t(members.size())
                                ? data.row(members[std::size_t(std::int64_t(k) * std::int64_t(members.size()) / per_row)])
                                : blank.data());
    }
    if (!tiles.empty()) write_sheet(dir / "dbscan_cluster_strips.png", tiles, per_row);
    print(io.err, "Wrote %s\n", dir.string().c_str());
    return 0;
}

}  // namespace

Command add_explore_command(CLI::App& app, const Console& io) {
    const auto options = std::make_shared<ExploreOptions>();
    ExploreOptions& o = *options;
    CLI::App* c = app.add_subcommand("explore", "Latent scatter, k-means, k-NN distances and DBSCAN search");
    c->add_option("--checkpoint", o.checkpoint, "checkpoint.safetensors written by train")->required();
    c->add_option("--data", o.data, "Bitmaps .npy to encode")->required();
    c->add_option("--limit", o.limit, "Use only the first N drawings (0: all)")->check(non_negative());
    c->add_option("--out", o.out, "Output folder")->capture_default_str();
    c->add_option("--k-max", o.k_max, "Elbow plot for k = 1..k-max")->capture_default_str()->check(number_in(1, 1000));
    c->add_option("--mosaic-k", o.mosaic_k, "k of the decoded-centre mosaic")->capture_default_str()->check(number_in(1, 10000));
    c->add_option("--knn-k", o.knn_k, "k of the k-NN distance plot")->capture_default_str()->check(number_in(1, 10000));
    c->add_option("--trials", o.trials, "DBSCAN random-search trials")->capture_default_str()->check(number_in(1, 100000));
    c->add_option("--eps-min", o.eps_min, "Lower end of the eps search range")->capture_default_str()->check(positive());
    c->add_option("--eps-max", o.eps_max, "Upper end of the eps search range")->capture_default_str()->check(positive());
    c->add_option("--min-pts-min", o.min_pts_min, "Lower end of the minPts search range")->capture_default_str()->check(number_in(1, 1000000));
    c->add_option("--min-pts-max", o.min_pts_max, "Upper end of the minPts search range")->capture_default_str()->check(number_in(1, 1000000));
    c->add_option("--eps", o.eps, "Use this eps for the final clustering instead of the search's choice")->check(positive());
    c->add_option("--min-pts", o.min_pts, "and this minPts (counts the point itself)")->check(number_in(1, 1000000));
    c->add_option("--seed", o.seed, "Seed of k-means and of the search")->capture_default_str();
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    return [options, io] { return run_explore(*options, io); };
}

}  // namespace sheep
