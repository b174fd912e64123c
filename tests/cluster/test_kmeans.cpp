// k-means: hand-checked cases, monotone inertia, determinism, Hamerly == Lloyd,
// empty-cluster relocation, the elbow helper and argument errors.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "ewe/cluster/kmeans.hpp"

using namespace ewe::cluster;

namespace {

std::vector<double> blobs(std::int64_t n, int d, int centers, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> mu(centers * d);
    for (double& v : mu) v = 10.0 * normal(rng);
    std::vector<double> x(n * d);
    for (std::int64_t i = 0; i < n; ++i) {
        const int c = static_cast<int>(rng() % centers);
        for (int a = 0; a < d; ++a) x[i * d + a] = mu[c * d + a] + normal(rng);
    }
    return x;
}

}  // namespace

TEST_CASE("two obvious groups") {
    const std::vector<double> x = {0, 0, 0, 1, 1, 0, 10, 10, 10, 11, 11, 10};
    const KMeansResult r = kmeans(x.data(), 6, 2, KMeansOptions{}.set_k(2).set_seed(3));
    CHECK(r.labels[0] == r.labels[1]);
    CHECK(r.labels[1] == r.labels[2]);
    CHECK(r.labels[3] == r.labels[4]);
    CHECK(r.labels[4] == r.labels[5]);
    CHECK(r.labels[0] != r.labels[3]);
    const int a = r.labels[0];
    CHECK(r.centers[a * 2] == doctest::Approx(1.0 / 3));
    CHECK(r.centers[a * 2 + 1] == doctest::Approx(1.0 / 3));
    // Each group: 2/9 + 5/9 + 5/9 = 4/3 around (1/3, 1/3).
    CHECK(r.inertia == doctest::Approx(8.0 / 3).epsilon(1e-12));
}

TEST_CASE("k = 1: the centre is the mean and inertia the total sum of squares") {
    const std::vector<double> x = {1, 2, 3, 4, 5, 9};
    const KMeansResult r = kmeans(x.data(), 6, 1, KMeansOptions{}.set_k(1));
    CHECK(r.centers[0] == doctest::Approx(4.0));
    CHECK(r.inertia == doctest::Approx(9 + 4 + 1 + 0 + 1 + 25));
    CHECK(r.labels == std::vector<std::int32_t>(6, 0));
}

TEST_CASE("inertia never above its initialisation; same seed, same result") {
    for (int d : {1, 2, 8}) {
        const std::vector<double> x = blobs(3000, d, 12, 5 + d);
        for (std::uint64_t seed : {0u, 1u, 2u}) {
            const KMeansOptions o = KMeansOptions{}.set_k(10).set_seed(seed);
            const KMeansResult a = kmeans(x.data(), 3000, d, o);
            const KMeansResult b = kmeans(x.data(), 3000, d, o);
            CHECK(a.inertia <= a.init_inertia);
            CHECK(a.iterations >= 1);
            CHECK(a.labels == b.labels);
            CHECK(a.centers == b.centers);
            CHECK(a.inertia == b.inertia);
            CHECK(a.iterations == b.iterations);
        }
    }
}

TEST_CASE("Hamerly gives the Lloyd result") {
    for (int d : {2, 3, 8}) {
        const std::vector<double> x = blobs(4000, d, 20, 40 + d);
        const KMeansOptions o = KMeansOptions{}.set_k(25).set_seed(9).set_tol(0);
        const KMeansResult h = kmeans(x.data(), 4000, d, KMeansOptions(o).set_algorithm(KMeansAlgorithm::hamerly));
        const KMeansResult l = kmeans(x.data(), 4000, d, KMeansOptions(o).set_algorithm(KMeansAlgorithm::lloyd));
        CHECK(h.labels == l.labels);
        CHECK(h.iterations == l.iterations);
        CHECK(h.inertia == doctest::Approx(l.inertia).epsilon(1e-12));
    }
}

TEST_CASE("Hamerly without the sorted centre table (k > 2048) gives the Lloyd result") {
    const std::vector<double> x = blobs(2500, 2, 50, 3);
    const KMeansOptions o = KMeansOptions{}.set_k(2049).set_seed(1).set_max_iter(3);
    const KMeansResult h = kmeans(x.data(), 2500, 2, KMeansOptions(o).set_algorithm(KMeansAlgorithm::hamerly));
    const KMeansResult l = kmeans(x.data(), 2500, 2, KMeansOptions(o).set_algorithm(KMeansAlgorithm::lloyd));
    CHECK(h.labels == l.labels);
    CHECK(h.inertia == doctest::Approx(l.inertia).epsilon(1e-12));
}

TEST_CASE("large enough for the parallel paths: deterministic, Hamerly == Lloyd") {
    const std::int64_t n = 30000;
    const std::vector<double> x = blobs(n, 2, 30, 21);
    const KMeansOptions o = KMeansOptions{}.set_k(30).set_seed(2);
    const KMeansResult a = kmeans(x.data(), n, 2, KMeansOptions(o).set_algorithm(KMeansAlgorithm::hamerly));
    const KMeansResult b = kmeans(x.data(), n, 2, KMeansOptions(o).set_algorithm(KMeansAlgorithm::hamerly));
    const KMeansResult l = kmeans(x.data(), n, 2, KMeansOptions(o).set_algorithm(KMeansAlgorithm::lloyd));
    CHECK(a.labels == b.labels);
    CHECK(a.inertia == b.inertia);
    CHECK(a.labels == l.labels);
    CHECK(a.inertia <= a.init_inertia);
}

TEST_CASE("n_init keeps the lowest inertia") {
    const std::vector<double> x = blobs(2000, 2, 15, 77);
    const KMeansResult one = kmeans(x.data(), 2000, 2, KMeansOptions{}.set_k(15).set_seed(4));
    const KMeansResult many = kmeans(x.data(), 2000, 2, KMeansOptions{}.set_k(15).set_seed(4).set_n_init(6));
    CHECK(many.inertia <= one.inertia);
    CHECK(many.best_init >= 0);
    CHECK(many.best_init < 6);
}

TEST_CASE("empty cluster moves to the farthest point") {
    // Three points; centre 2 attracts nobody.
    const std::vector<double> x = {0, 1, 10};
    std::vector<std::int32_t> labels = {0, 0, 1};
    std::vector<double> centers = {0.5, 10, 100};
    std::vector<double> dist2 = {0.25, 0.25, 0};
    std::vector<double> shift;
    detail::update_centers(x, 3, 1, 3, labels, dist2, centers, shift);
    // Point 0 (first among the two farthest) leaves cluster 0 for the empty cluster 2.
    CHECK(labels == std::vector<std::int32_t>{2, 0, 1});
    CHECK(centers == std::vector<double>{1, 10, 0});
}

TEST_CASE("k = n and duplicate points") {
    const std::vector<double> x = {0, 0, 1, 1, 1, 1, 2, 2};
    const KMeansResult r = kmeans(x.data(), 4, 2, KMeansOptions{}.set_k(4));
    CHECK(r.inertia == doctest::Approx(0.0));
    const KMeansResult r3 = kmeans(x.data(), 4, 2, KMeansOptions{}.set_k(3));
    CHECK(r3.inertia == doctest::Approx(0.0));
}

TEST_CASE("float input") {
    const std::vector<double> x = blobs(1000, 2, 5, 1);
    const std::vector<float> f(x.begin(), x.end());
    const KMeansResult r = kmeans(f.data(), 1000, 2, KMeansOptions{}.set_k(5));
    CHECK(r.labels.size() == 1000);
}

TEST_CASE("elbow") {
    const std::vector<double> x = blobs(1500, 2, 4, 8);
    const auto curve = kmeans_elbow(x.data(), 1500, 2, 1, 6, KMeansOptions{}.set_n_init(2));
    REQUIRE(curve.size() == 6);
    CHECK(curve[0].k == 1);
    CHECK(curve[5].k == 6);
    CHECK(curve[3].inertia < curve[0].inertia);
    CHECK(curve[3].inertia < curve[1].inertia);
}

TEST_CASE("bad arguments") {
    const std::vector<double> x = {0, 1, 2};
    CHECK_THROWS_AS(kmeans(x.data(), 3, 1, KMeansOptions{}.set_k(4)), ewe::Error);
    CHECK_THROWS_AS(kmeans(x.data(), 3, 1, KMeansOptions{}.set_k(0)), ewe::Error);
    CHECK_THROWS_AS(kmeans(x.data(), 3, 1, KMeansOptions{}.set_k(2).set_n_init(0)), ewe::Error);
    CHECK_THROWS_AS(kmeans(x.data(), 0, 1, KMeansOptions{}.set_k(1)), ewe::Error);
}
