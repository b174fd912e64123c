// DBSCAN: hand-checked cases, invariants, and exact agreement of the grid and k-d tree
// indices with the O(n^2) scikit-learn-style reference on random data.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "ewe/cluster/dbscan.hpp"

using namespace ewe::cluster;

namespace {

using Labels = std::vector<std::int32_t>;

DbscanResult run(const std::vector<double>& x, int d, double eps, std::int64_t min_pts, DbscanIndex index) {
    return dbscan(x.data(), static_cast<std::int64_t>(x.size()) / d, d, DbscanOptions{eps, min_pts, index});
}

// Every index must give exactly the reference labels; returns the reference.
DbscanResult check_all(const std::vector<double>& x, int d, double eps, std::int64_t min_pts) {
    const DbscanResult ref = run(x, d, eps, min_pts, DbscanIndex::reference);
    for (DbscanIndex index : {DbscanIndex::automatic, DbscanIndex::grid, DbscanIndex::kdtree}) {
        const DbscanResult r = run(x, d, eps, min_pts, index);
        CHECK(r.labels == ref.labels);
        CHECK(r.core == ref.core);
        CHECK(r.n_clusters == ref.n_clusters);
        CHECK(r.n_noise == ref.n_noise);
    }
    return ref;
}

// Blobs, a filament and background, like a VAE latent space.
std::vector<double> latent_like(std::int64_t n, int d, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> uniform(-3.0, 3.0);
    std::vector<double> x(static_cast<std::size_t>(n) * d);
    for (std::int64_t i = 0; i < n; ++i) {
        const int kind = static_cast<int>(rng() % 4);
        for (int k = 0; k < d; ++k) {
            double v;
            if (kind == 0) v = 0.15 * normal(rng) + (k == 0 ? -1.0 : 0.5);
            else if (kind == 1) v = 0.1 * normal(rng) + (k == 0 ? 1.2 : -0.8);
            else if (kind == 2) v = k == 0 ? uniform(rng) / 2 : 0.03 * normal(rng) + 1.5;
            else v = uniform(rng);
            x[i * d + k] = v;
        }
    }
    return x;
}

}  // namespace

TEST_CASE("distance exactly eps is a neighbour") {
    // 0, 0.5, 1.0 on a line with eps = 0.5 (exact in binary): all three connect.
    const std::vector<double> x = {0.0, 0.5, 1.0};
    const DbscanResult r = check_all(x, 1, 0.5, 2);
    CHECK(r.labels == Labels{0, 0, 0});
    // min_pts = 3: only the middle point is core; the ends are its border points.
    const DbscanResult r3 = check_all(x, 1, 0.5, 3);
    CHECK(r3.core == std::vector<std::uint8_t>{0, 1, 0});
    CHECK(r3.labels == Labels{0, 0, 0});
    // Pythagorean 3-4-5 in 2-D: distance exactly 5.
    const std::vector<double> y = {0, 0, 3, 4};
    CHECK(check_all(y, 2, 5.0, 2).labels == Labels{0, 0});
    CHECK(check_all(y, 2, 4.999999, 2).labels == Labels{-1, -1});
}

TEST_CASE("d = 8 by hand: (0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0) is exactly 1 from the origin") {
    std::vector<double> x(3 * 8, 0.0);
    for (int k = 0; k < 4; ++k) x[8 + k] = 0.5;   // point 1
    for (int k = 0; k < 8; ++k) x[16 + k] = 5.0;  // point 2, far away
    CHECK(check_all(x, 8, 1.0, 2).labels == Labels{0, 0, -1});
    CHECK(check_all(x, 8, 0.999, 2).labels == Labels{-1, -1, -1});
    CHECK(check_all(x, 8, 1.0, 1).labels == Labels{0, 0, 1});
}

TEST_CASE("min_pts = 1: every point is core, isolated points are singleton clusters") {
    const std::vector<double> x = {0, 0, 10, 10, 0.1, 0, 20, 20};
    const DbscanResult r = check_all(x, 2, 0.5, 1);
    CHECK(r.labels == Labels{0, 1, 0, 2});
    CHECK(r.n_noise == 0);
    CHECK(r.n_clusters == 3);
}

TEST_CASE("duplicate points count separately") {
    const std::vector<double> x = {1, 1, 1, 1, 1, 1, 5, 5};
    const DbscanResult r = check_all(x, 2, 0.1, 3);
    CHECK(r.labels == Labels{0, 0, 0, -1});
    CHECK(check_all(x, 2, 0.1, 4).labels == Labels{-1, -1, -1, -1});
}

TEST_CASE("all noise, one cluster, empty input") {
    const std::vector<double> spread = {0, 0, 1, 0, 2, 0, 3, 0};
    const DbscanResult noise = check_all(spread, 2, 0.5, 2);
    CHECK(noise.labels == Labels{-1, -1, -1, -1});
    CHECK(noise.n_clusters == 0);
    CHECK(noise.n_noise == 4);
    const DbscanResult one = check_all(spread, 2, 1.0, 2);
    CHECK(one.labels == Labels{0, 0, 0, 0});
    const std::vector<double> none;
    const DbscanResult empty = check_all(none, 2, 1.0, 2);
    CHECK(empty.labels.empty());
    CHECK(empty.n_clusters == 0);
}

TEST_CASE("border point joins the first cluster (lowest number) that reaches it") {
    // Two core groups on a line, a border point between them within eps of both.
    // Group A (indices 1..3) is discovered first because index 1 < index 4.
    const std::vector<double> x = {1.0, 0.0, 0.05, 0.1, 0.2, 2.0, 1.95, 1.9, 1.8};
    const DbscanResult r = check_all(x, 1, 0.85, 4);
    CHECK(r.core == std::vector<std::uint8_t>{0, 1, 1, 1, 1, 1, 1, 1, 1});
    CHECK(r.labels == Labels{0, 0, 0, 0, 0, 1, 1, 1, 1});
    // Same geometry, the right group listed first: now it is cluster 0 and takes the border.
    const std::vector<double> y = {1.0, 2.0, 1.95, 1.9, 1.8, 0.0, 0.05, 0.1, 0.2};
    CHECK(check_all(y, 1, 0.85, 4).labels == Labels{0, 0, 0, 0, 0, 1, 1, 1, 1});
}

TEST_CASE("clusters are numbered by their smallest core index") {
    const std::vector<double> x = {10, 0, 10.1, 0.1, 0.2, 10.2};
    CHECK(check_all(x, 1, 0.15, 2).labels == Labels{0, 1, 0, 1, 1, 0});
}

TEST_CASE("random data: grid and k-d tree equal the reference for d = 1, 2, 3, 8") {
    for (int d : {1, 2, 3, 8}) {
        for (std::uint64_t seed = 1; seed <= 2; ++seed) {
            const std::vector<double> x = latent_like(450, d, seed * 17 + d);
            for (double eps : {0.03, 0.1, 0.3, 1.0, 4.0})
                for (std::int64_t min_pts : {1, 2, 5, 20, 100}) {
                    CAPTURE(d);
                    CAPTURE(eps);
                    CAPTURE(min_pts);
                    check_all(x, d, eps, min_pts);
                }
        }
    }
}

TEST_CASE("large enough for the parallel paths: grid equals k-d tree") {
    // Above detail::kParallelMin points, counting, merging (lock-free union-find) and
    // border labelling run on several threads.
    const std::int64_t n = 30000;
    const std::vector<double> x = latent_like(n, 2, 123);
    for (double eps : {0.02, 0.08})
        for (std::int64_t min_pts : {4, 30}) {
            CAPTURE(eps);
            CAPTURE(min_pts);
            const DbscanResult g = run(x, 2, eps, min_pts, DbscanIndex::grid);
            const DbscanResult k = run(x, 2, eps, min_pts, DbscanIndex::kdtree);
            CHECK(g.labels == k.labels);
            CHECK(g.core == k.core);
            CHECK(g.n_clusters > 1);
        }
}

TEST_CASE("random integer lattice data with many exact ties at distance eps") {
    std::mt19937_64 rng(7);
    for (int d : {2, 3}) {
        std::vector<double> x(600 * d);
        for (double& v : x) v = static_cast<double>(rng() % 12);
        for (double eps : {1.0, 2.0, std::sqrt(2.0)})
            for (std::int64_t min_pts : {2, 4, 7}) check_all(x, d, eps, min_pts);
    }
}

TEST_CASE("invariants on a larger set") {
    const int d = 2;
    const std::vector<double> x = latent_like(4000, d, 99);
    const double eps = 0.08, eps2 = eps * eps;
    const DbscanResult r = run(x, d, eps, 10, DbscanIndex::automatic);
    const std::int64_t n = 4000;
    auto near = [&](std::int64_t i, std::int64_t j) {
        const double a = x[i * d] - x[j * d], b = x[i * d + 1] - x[j * d + 1];
        return a * a + b * b <= eps2;
    };
    // Count violations rather than asserting per pair (16M pairs).
    std::int64_t unlabelled_core = 0, split_core = 0, unreached_border = 0, missed_noise = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        if (r.core[i]) {
            unlabelled_core += r.labels[i] < 0;
            for (std::int64_t j = 0; j < n; ++j) split_core += r.core[j] && near(i, j) && r.labels[i] != r.labels[j];
        } else if (r.labels[i] >= 0) {
            bool reached = false;
            for (std::int64_t j = 0; j < n && !reached; ++j) reached = r.core[j] && r.labels[j] == r.labels[i] && near(i, j);
            unreached_border += !reached;
        } else {
            for (std::int64_t j = 0; j < n; ++j) missed_noise += r.core[j] && near(i, j);
        }
    }
    CHECK(unlabelled_core == 0);    // every core point is in a cluster
    CHECK(split_core == 0);         // core points within eps share a label
    CHECK(unreached_border == 0);   // a border point lies within eps of a core point of its cluster
    CHECK(missed_noise == 0);       // noise has no core point within eps
    CHECK(std::count(r.core.begin(), r.core.end(), 1) > 100);
    CHECK(r.n_clusters > 1);
}

TEST_CASE("float input gives the same labels as double input") {
    const std::vector<double> x = latent_like(1000, 2, 5);
    std::vector<float> f(x.begin(), x.end());
    std::vector<double> widened(f.begin(), f.end());
    const DbscanResult a = dbscan(f.data(), 1000, 2, DbscanOptions{0.1, 8});
    const DbscanResult b = dbscan(widened.data(), 1000, 2, DbscanOptions{0.1, 8, DbscanIndex::reference});
    CHECK(a.labels == b.labels);
}

TEST_CASE("search equals single runs") {
    const std::vector<double> x = latent_like(2000, 2, 3);
    std::vector<DbscanTrial> trials;
    for (double eps : {0.02, 0.1, 0.5})
        for (std::int64_t m : {3, 10, 50}) trials.push_back({eps, m});
    trials.push_back({0.1, 300});
    const auto results = dbscan_search(x.data(), 2000, 2, trials, true);
    REQUIRE(results.size() == trials.size());
    for (std::size_t i = 0; i < trials.size(); ++i) {
        const DbscanResult r = run(x, 2, trials[i].eps, trials[i].min_pts, DbscanIndex::reference);
        CHECK(results[i].labels == r.labels);
        CHECK(results[i].n_clusters == r.n_clusters);
        CHECK(results[i].n_noise == r.n_noise);
        CHECK(results[i].eps == trials[i].eps);
    }
}

TEST_CASE("k-NN distances") {
    const std::vector<double> x = {0, 0, 1, 0, 3, 0, 3, 4};
    const auto k1 = knn_distances(x.data(), 4, 2, 1);
    CHECK(k1 == std::vector<double>{1, 1, 2, 4});
    const auto k2 = knn_distances(x.data(), 4, 2, 2);
    CHECK(k2 == std::vector<double>{3, 2, 3, std::sqrt(20.0)});
    // Against brute force on random data.
    const std::vector<double> y = latent_like(500, 3, 11);
    const auto k5 = knn_distances(y.data(), 500, 3, 5);
    for (int i = 0; i < 500; ++i) {
        std::vector<double> dist;
        for (int j = 0; j < 500; ++j)
            if (j != i) dist.push_back(std::sqrt(detail::sqdist(&y[i * 3], &y[j * 3], 3)));
        std::nth_element(dist.begin(), dist.begin() + 4, dist.end());
        CHECK(k5[i] == dist[4]);
    }
}

TEST_CASE("bad arguments throw ewe::Error") {
    const std::vector<double> x = {0, 0, 1, 1};
    CHECK_THROWS_AS(dbscan(x.data(), 2, 2, DbscanOptions{0.0, 2}), ewe::Error);
    CHECK_THROWS_AS(dbscan(x.data(), 2, 2, DbscanOptions{-1.0, 2}), ewe::Error);
    CHECK_THROWS_AS(dbscan(x.data(), 2, 2, DbscanOptions{1.0, 0}), ewe::Error);
    const std::vector<double> bad = {0, NAN};
    CHECK_THROWS_AS(dbscan(bad.data(), 1, 2, DbscanOptions{1.0, 1}), ewe::Error);
    CHECK_THROWS_AS(knn_distances(x.data(), 2, 2, 2), ewe::Error);
}
