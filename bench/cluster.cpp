// Clustering benchmarks on synthetic 2-D data shaped like a VAE latent space (Gaussian
// blobs, curved filaments, a diffuse N(0, 1.5^2) background): DBSCAN at the reference
// setting (eps 0.05, min_pts 50) and across eps, scaling to 1M points, the 100-trial
// DBSCAN parameter search, k-means (k = 100, one init) and k-NN distances.
// Points/s are reported next to time. `--write_data=FILE.npy` writes the 126,121-point
// set (float64) for bench/compare/cluster_reference.py and exits.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "ewe/cluster/dbscan.hpp"
#include "ewe/cluster/kmeans.hpp"
#include "ewe/io/npy.hpp"

namespace {

constexpr std::int64_t kLatentPoints = 126121;

// n points, fully determined by n and seed (SplitMix64 + Box-Muller).
std::vector<double> latent_space(std::int64_t n, std::uint64_t seed = 2024) {
    ewe::cluster::detail::SplitMix64 rng{seed};
    auto uniform = [&] { return rng.uniform(); };
    auto normal = [&] {
        const double u1 = 1.0 - uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    };
    struct Blob { double x, y, sx, sy, weight; };
    struct Filament { double x0, y0, x1, y1, x2, y2, width, weight; };
    std::vector<Blob> blobs;
    std::vector<Filament> filaments;
    double total = 0;
    for (int b = 0; b < 12; ++b) {
        blobs.push_back({-2.5 + 5 * uniform(), -2.5 + 5 * uniform(), 0.05 + 0.2 * uniform(), 0.05 + 0.2 * uniform(),
                         0.5 + uniform()});
        total += blobs.back().weight;
    }
    std::vector<double> x(static_cast<std::size_t>(n) * 2);
    for (int f = 0; f < 6; ++f)
        filaments.push_back({-3 + 6 * uniform(), -3 + 6 * uniform(), -3 + 6 * uniform(), -3 + 6 * uniform(),
                             -3 + 6 * uniform(), -3 + 6 * uniform(), 0.015 + 0.03 * uniform(), 0.5 + uniform()});
    double ftotal = 0;
    for (const auto& f : filaments) ftotal += f.weight;
    for (std::int64_t i = 0; i < n; ++i) {
        const double kind = uniform();
        double px, py;
        if (kind < 0.6) {  // blobs
            double r = uniform() * total;
            std::size_t b = 0;
            while (b + 1 < blobs.size() && r > blobs[b].weight) r -= blobs[b++].weight;
            px = blobs[b].x + blobs[b].sx * normal();
            py = blobs[b].y + blobs[b].sy * normal();
        } else if (kind < 0.85) {  // filaments: quadratic Bezier curves with Gaussian width
            double r = uniform() * ftotal;
            std::size_t k = 0;
            while (k + 1 < filaments.size() && r > filaments[k].weight) r -= filaments[k++].weight;
            const Filament& f = filaments[k];
            const double t = uniform(), s = 1 - t;
            px = s * s * f.x0 + 2 * s * t * f.x1 + t * t * f.x2 + f.width * normal();
            py = s * s * f.y0 + 2 * s * t * f.y1 + t * t * f.y2 + f.width * normal();
        } else {  // diffuse background
            px = 1.5 * normal();
            py = 1.5 * normal();
        }
        x[2 * i] = px;
        x[2 * i + 1] = py;
    }
    return x;
}

const std::vector<double>& data(std::int64_t n) {
    static std::vector<std::pair<std::int64_t, std::vector<double>>> cache;
    for (const auto& [m, v] : cache)
        if (m == n) return v;
    cache.emplace_back(n, latent_space(n));
    return cache.back().second;
}

void BM_Dbscan(benchmark::State& state) {
    const double eps = static_cast<double>(state.range(0)) / 1000.0;
    const std::int64_t min_pts = state.range(1);
    const std::int64_t n = state.range(2);
    const std::vector<double>& x = data(n);
    ewe::cluster::DbscanResult r;
    for (auto _ : state) {
        r = ewe::cluster::dbscan(x.data(), n, 2, ewe::cluster::DbscanOptions{eps, min_pts});
        benchmark::DoNotOptimize(r.labels.data());
    }
    state.counters["clusters"] = r.n_clusters;
    state.counters["noise"] = static_cast<double>(r.n_noise);
    state.counters["points/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}
// eps (in 1/1000), min_pts, n
BENCHMARK(BM_Dbscan)->Args({50, 50, kLatentPoints})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Dbscan)
    ->ArgsProduct({{5, 20, 200, 500}, {50}, {kLatentPoints}})
    ->Args({500, 300, kLatentPoints})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Dbscan)->ArgsProduct({{50}, {50}, {250000, 500000, 1000000}})->Unit(benchmark::kMillisecond)->UseRealTime();

// The k-d tree path on the same data, for comparison with the grid.
void BM_DbscanKdTree(benchmark::State& state) {
    const std::vector<double>& x = data(kLatentPoints);
    for (auto _ : state) {
        auto r = ewe::cluster::dbscan(x.data(), kLatentPoints, 2,
                                      ewe::cluster::DbscanOptions{0.05, 50, ewe::cluster::DbscanIndex::kdtree});
        benchmark::DoNotOptimize(r.labels.data());
    }
    state.counters["points/s"] = benchmark::Counter(kLatentPoints, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DbscanKdTree)->Unit(benchmark::kMillisecond)->UseRealTime();

// 100 random trials: eps uniform in [0.005, 0.5], min_pts uniform in [5, 300].
std::vector<ewe::cluster::DbscanTrial> search_trials() {
    ewe::cluster::detail::SplitMix64 rng{7};
    std::vector<ewe::cluster::DbscanTrial> trials;
    for (int t = 0; t < 100; ++t) {
        const double eps = 0.005 + (0.5 - 0.005) * rng.uniform();
        const std::int64_t min_pts = 5 + static_cast<std::int64_t>(rng.uniform() * 296);
        trials.push_back({eps, min_pts});
    }
    return trials;
}

void BM_DbscanSearch100(benchmark::State& state) {
    const std::vector<double>& x = data(kLatentPoints);
    const auto trials = search_trials();
    for (auto _ : state) {
        auto r = ewe::cluster::dbscan_search(x.data(), kLatentPoints, 2, trials);
        benchmark::DoNotOptimize(r.data());
    }
    state.counters["trials/s"] = benchmark::Counter(100, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DbscanSearch100)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(3);

void BM_KMeans(benchmark::State& state) {
    const std::int64_t k = state.range(0);
    const std::vector<double>& x = data(kLatentPoints);
    ewe::cluster::KMeansResult r;
    for (auto _ : state) {
        r = ewe::cluster::kmeans(x.data(), kLatentPoints, 2, ewe::cluster::KMeansOptions{}.set_k(k).set_seed(0));
        benchmark::DoNotOptimize(r.labels.data());
    }
    state.counters["inertia"] = r.inertia;
    state.counters["iterations"] = r.iterations;
    state.counters["points/s"] = benchmark::Counter(kLatentPoints, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_KMeans)->Arg(100)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_KMeansLloyd(benchmark::State& state) {
    const std::vector<double>& x = data(kLatentPoints);
    for (auto _ : state) {
        auto r = ewe::cluster::kmeans(x.data(), kLatentPoints, 2,
                                      ewe::cluster::KMeansOptions{}.set_k(100).set_algorithm(ewe::cluster::KMeansAlgorithm::lloyd));
        benchmark::DoNotOptimize(r.labels.data());
    }
}
BENCHMARK(BM_KMeansLloyd)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_KnnDistances(benchmark::State& state) {
    const std::vector<double>& x = data(kLatentPoints);
    for (auto _ : state) {
        auto r = ewe::cluster::knn_distances(x.data(), kLatentPoints, 2, static_cast<int>(state.range(0)));
        benchmark::DoNotOptimize(r.data());
    }
    state.counters["points/s"] = benchmark::Counter(kLatentPoints, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_KnnDistances)->Arg(49)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.rfind("--write_data=", 0) == 0) {
            const std::string path = arg.substr(std::strlen("--write_data="));
            const std::vector<double>& x = data(kLatentPoints);
            ewe::io::write_npy(path, x.data(), ewe::Shape{kLatentPoints, 2});
            std::cout << "wrote " << path << " (" << kLatentPoints << " x 2 float64)\n";
            return 0;
        }
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
