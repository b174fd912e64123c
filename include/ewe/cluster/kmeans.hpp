// k-means with scikit-learn's conventions: greedy k-means++ seeding (Arthur &
// Vassilvitskii 2007; 2 + floor(ln k) candidates per step, keep the one that lowers the
// potential most), n_init restarts keeping the lowest inertia, tol relative to the mean
// per-feature variance, empty clusters moved to far-away points. Iterations are exact:
// Hamerly's bounds (SDM'10) for d <= 16, plain Lloyd otherwise.
//
// Determinism: for a given seed the result is the same for any thread count (sums run
// in fixed blocks, combined in order). Ties go to the lower centre index.
// Empty clusters: after an assignment, each empty cluster (in index order) takes the
// point that lies farthest from its own centre (lower index on ties; each point used
// once), which is removed from its old cluster, as scikit-learn's Lloyd does.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "ewe/cluster/kdtree.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"

namespace ewe::cluster {

enum class KMeansAlgorithm { automatic, lloyd, hamerly };

struct KMeansOptions {
    std::int64_t k = 8;
    int n_init = 1;           // restarts with different seeds; the lowest inertia wins
    int max_iter = 300;
    double tol = 1e-4;        // stop when the summed squared centre shift <= tol * mean feature variance
    std::uint64_t seed = 0;
    KMeansAlgorithm algorithm = KMeansAlgorithm::automatic;  // automatic: Hamerly for d <= 16, else Lloyd

    KMeansOptions& set_k(std::int64_t v) { k = v; return *this; }
    KMeansOptions& set_n_init(int v) { n_init = v; return *this; }
    KMeansOptions& set_max_iter(int v) { max_iter = v; return *this; }
    KMeansOptions& set_tol(double v) { tol = v; return *this; }
    KMeansOptions& set_seed(std::uint64_t v) { seed = v; return *this; }
    KMeansOptions& set_algorithm(KMeansAlgorithm v) { algorithm = v; return *this; }
};

struct KMeansResult {
    std::vector<std::int32_t> labels;  // per point: index of its (nearest) centre
    std::vector<double> centers;       // k x d, row-major
    double inertia = 0;                // sum of squared distances to the assigned centres
    int iterations = 0;                // centre updates of the winning run
    double init_inertia = 0;           // inertia of the winning run's k-means++ centres
    int best_init = 0;                 // which restart won
};

namespace detail {

// SplitMix64 (Steele, Lea & Flood 2014): tiny, fully specified, same stream everywhere.
struct SplitMix64 {
    std::uint64_t state;
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

constexpr std::int64_t kSumBlock = 4096;

// sum_i f(i) for i < n, in fixed blocks summed in order: the same bits for any thread count.
template <class F>
double blocked_sum(std::int64_t n, F&& f) {
    const std::int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
    std::vector<double> part(blocks, 0.0);
#pragma omp parallel for schedule(static) if (blocks > 4)
    for (std::int64_t b = 0; b < blocks; ++b) {
        double s = 0;
        const std::int64_t end = std::min(n, (b + 1) * kSumBlock);
        for (std::int64_t i = b * kSumBlock; i < end; ++i) s += f(i);
        part[b] = s;
    }
    double total = 0;
    for (double s : part) total += s;
    return total;
}

// Squared distance with the dimension known at compile time where it is small
// (D = 0: runtime d). Same summation order as sqdist.
template <int D>
inline double sqdist_d(const double* a, const double* b, int d) {
    if constexpr (D == 0) {
        return sqdist(a, b, d);
    } else {
        double s = 0;
        for (int k = 0; k < D; ++k) s = sq_step(s, a[k] - b[k]);
        return s;
    }
}

// Greedy k-means++ (D: compile-time dimension or 0). Block sums of the running
// potential make each draw O(n / block + block) and keep every sum deterministic.
template <int D>
std::vector<double> kmeans_plusplus_impl(const std::vector<double>& x, std::int64_t n, int d, std::int64_t k,
                                         SplitMix64& rng) {
    std::vector<double> centers(static_cast<std::size_t>(k) * d);
    const int trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
    const std::int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
    std::vector<double> closest(n, std::numeric_limits<double>::infinity()), block_sum(blocks);
    std::vector<double> partial(static_cast<std::size_t>(blocks) * trials);
    const double* X = x.data();

    // closest = min(closest, |x - c|^2); block sums of the result; returns the total.
    auto absorb = [&](const double* c) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
        for (std::int64_t b = 0; b < blocks; ++b) {
            const std::int64_t end = std::min(n, (b + 1) * kSumBlock);
            double sum = 0;
#pragma omp simd reduction(+ : sum)
            for (std::int64_t i = b * kSumBlock; i < end; ++i) {
                const double v = std::min(closest[i], sqdist_d<D>(X + i * d, c, d));
                closest[i] = v;
                sum += v;
            }
            block_sum[b] = sum;
        }
        double total = 0;
        for (double v : block_sum) total += v;
        return total;
    };
    // First index whose running potential reaches r (numpy.searchsorted, side 'left').
    auto draw = [&](double r) {
        double run = 0;
        std::int64_t b = 0;
        while (b + 1 < blocks && run + block_sum[b] < r) run += block_sum[b++];
        const std::int64_t end = std::min(n, (b + 1) * kSumBlock);
        for (std::int64_t i = b * kSumBlock; i < end; ++i) {
            run += closest[i];
            if (run >= r) return i;
        }
        return n - 1;
    };

    const std::int64_t first = std::min<std::int64_t>(static_cast<std::int64_t>(rng.uniform() * static_cast<double>(n)), n - 1);
    std::copy(X + first * d, X + first * d + d, centers.begin());
    double pot = absorb(X + first * d);
    std::vector<std::int64_t> cand(trials);
    for (std::int64_t c = 1; c < k; ++c) {
        for (int t = 0; t < trials; ++t) cand[t] = draw(rng.uniform() * pot);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
        for (std::int64_t b = 0; b < blocks; ++b) {
            const std::int64_t end = std::min(n, (b + 1) * kSumBlock);
            for (int t = 0; t < trials; ++t) {
                const double* xc = X + cand[t] * d;
                double sum = 0;
#pragma omp simd reduction(+ : sum)
                for (std::int64_t i = b * kSumBlock; i < end; ++i) sum += std::min(closest[i], sqdist_d<D>(X + i * d, xc, d));
                partial[b * trials + t] = sum;
            }
        }
        int best = 0;
        double best_pot = std::numeric_limits<double>::infinity();
        for (int t = 0; t < trials; ++t) {
            double total = 0;
            for (std::int64_t b = 0; b < blocks; ++b) total += partial[b * trials + t];
            if (total < best_pot) {
                best_pot = total;
                best = t;
            }
        }
        const double* xb = X + cand[best] * d;
        std::copy(xb, xb + d, centers.begin() + c * d);
        pot = absorb(xb);
    }
    return centers;
}

inline std::vector<double> kmeans_plusplus(const std::vector<double>& x, std::int64_t n, int d, std::int64_t k,
                                           SplitMix64& rng) {
    switch (d) {
        case 1: return kmeans_plusplus_impl<1>(x, n, d, k, rng);
        case 2: return kmeans_plusplus_impl<2>(x, n, d, k, rng);
        case 3: return kmeans_plusplus_impl<3>(x, n, d, k, rng);
        default: return kmeans_plusplus_impl<0>(x, n, d, k, rng);
    }
}

// For Hamerly's full search: per centre, the other centres by increasing distance.
struct CenterNeighbors {
    std::int64_t k = 0;
    std::vector<std::int32_t> order;  // k x (k - 1)
    std::vector<double> dist;         // matching distances
    std::vector<double> half;         // half the distance to the nearest other centre

    void build(const std::vector<double>& centers, std::int64_t kk, int d, bool sorted) {
        k = kk;
        half.assign(k, std::numeric_limits<double>::infinity());
        if (!sorted) {  // large k: no k x k table
            for (std::int64_t a = 0; a < k; ++a)
                for (std::int64_t b = a + 1; b < k; ++b) {
                    const double h = 0.5 * std::sqrt(sqdist(&centers[a * d], &centers[b * d], d));
                    half[a] = std::min(half[a], h);
                    half[b] = std::min(half[b], h);
                }
            return;
        }
        std::vector<double> all(static_cast<std::size_t>(k) * k);
        for (std::int64_t a = 0; a < k; ++a)
            for (std::int64_t b = a; b < k; ++b)
                all[a * k + b] = all[b * k + a] = std::sqrt(sqdist(&centers[a * d], &centers[b * d], d));
        for (std::int64_t a = 0; a < k; ++a)
            for (std::int64_t b = 0; b < k; ++b)
                if (a != b) half[a] = std::min(half[a], 0.5 * all[a * k + b]);
        order.resize(static_cast<std::size_t>(k) * (k - 1));
        dist.resize(order.size());
        for (std::int64_t a = 0; a < k; ++a) {
            std::int32_t* o = order.data() + a * (k - 1);
            std::int64_t m = 0;
            for (std::int64_t b = 0; b < k; ++b)
                if (b != a) o[m++] = static_cast<std::int32_t>(b);
            std::sort(o, o + (k - 1), [&](std::int32_t u, std::int32_t v) {
                return all[a * k + u] != all[a * k + v] ? all[a * k + u] < all[a * k + v] : u < v;
            });
            for (std::int64_t j = 0; j < k - 1; ++j) dist[a * (k - 1) + j] = all[a * k + o[j]];
        }
    }
};

// Nearest centre (squared distance d1; ties to the lower index) and a lower bound on
// the distance to every other centre, scanning the centres around the current one
// (`a`, at squared distance s_a) in order of distance and stopping once the triangle
// inequality rules the rest out.
inline void nearest_pruned(const double* xi, const double* centers, int d, const CenterNeighbors& nb, std::int32_t a,
                           double s_a, std::int32_t& best, double& d1, double& lower) {
    best = a;
    d1 = s_a;
    double d2 = std::numeric_limits<double>::infinity();
    const double u = std::sqrt(s_a);
    const std::int32_t* o = nb.order.data() + a * (nb.k - 1);
    const double* od = nb.dist.data() + a * (nb.k - 1);
    for (std::int64_t j = 0; j < nb.k - 1; ++j) {
        // d(x, c_j) >= |c_a - c_j| - u: once that exceeds the second best, stop.
        if (od[j] - u > std::sqrt(d2) * (1 + 1e-9) + 1e-12 * (od[j] + u)) break;
        const std::int32_t c = o[j];
        const double s = sqdist(xi, centers + static_cast<std::int64_t>(c) * d, d);
        if (s < d1 || (s == d1 && c < best)) {
            d2 = d1;
            d1 = s;
            best = c;
        } else if (s < d2) {
            d2 = s;
        }
    }
    lower = std::sqrt(d2);
}

// Nearest and second-nearest centre (squared distances); ties to the lower index.
inline void nearest_two(const double* xi, const double* centers, std::int64_t k, int d, std::int32_t& best, double& d1,
                        double& d2) {
    best = 0;
    d1 = d2 = std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j < k; ++j) {
        const double s = sqdist(xi, centers + j * d, d);
        if (s < d1) {
            d2 = d1;
            d1 = s;
            best = static_cast<std::int32_t>(j);
        } else if (s < d2) {
            d2 = s;
        }
    }
}

// Lloyd assignment of every point: labels and squared distances to the nearest centre.
inline void assign_lloyd(const std::vector<double>& x, std::int64_t n, int d, const std::vector<double>& centers,
                         std::int64_t k, std::int32_t* labels, double* mind2) {
#pragma omp parallel for schedule(static) if (n * k > 50 * kParallelMin)
    for (std::int64_t i = 0; i < n; ++i) {
        std::int32_t best = 0;
        double b = std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < k; ++j) {
            const double s = sqdist(&x[i * d], &centers[j * d], d);
            if (s < b) {
                b = s;
                best = static_cast<std::int32_t>(j);
            }
        }
        labels[i] = best;
        mind2[i] = b;
    }
}

// New centres = means of their points, after moving empty clusters to far points (see
// the top of the file). `dist2` receives each point's squared distance to its centre
// when a cluster is empty; it and `labels` are updated for moved points. Returns the summed squared centre shift.
inline double update_centers(const std::vector<double>& x, std::int64_t n, int d, std::int64_t k,
                             std::vector<std::int32_t>& labels, std::vector<double>& dist2, std::vector<double>& centers,
                             std::vector<double>& shift) {
    std::vector<std::int64_t> count(k, 0);
    for (std::int64_t i = 0; i < n; ++i) ++count[labels[i]];
    std::vector<std::int64_t> empty;
    for (std::int64_t j = 0; j < k; ++j)
        if (count[j] == 0) empty.push_back(j);
    if (!empty.empty()) {
        // Exact distances to the current centres (Hamerly keeps only bounds).
        for (std::int64_t i = 0; i < n; ++i) dist2[i] = sqdist(&x[i * d], &centers[labels[i] * d], d);
        std::vector<std::int64_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        const std::size_t m = std::min<std::size_t>(empty.size(), static_cast<std::size_t>(n));
        std::partial_sort(order.begin(), order.begin() + m, order.end(), [&](std::int64_t a, std::int64_t b) {
            return dist2[a] != dist2[b] ? dist2[a] > dist2[b] : a < b;
        });
        for (std::size_t e = 0; e < m; ++e) {
            const std::int64_t i = order[e];
            if (count[labels[i]] <= 1) continue;  // would empty another cluster
            --count[labels[i]];
            labels[i] = static_cast<std::int32_t>(empty[e]);
            ++count[empty[e]];
            dist2[i] = 0;
        }
    }
    std::vector<double> sum(static_cast<std::size_t>(k) * d, 0.0);
    for (std::int64_t i = 0; i < n; ++i)
        for (int a = 0; a < d; ++a) sum[labels[i] * d + a] += x[i * d + a];
    double total = 0;
    shift.assign(k, 0.0);
    for (std::int64_t j = 0; j < k; ++j) {
        if (count[j] == 0) continue;  // still empty (fewer distinct points than k): keep the centre
        double s2 = 0;
        for (int a = 0; a < d; ++a) {
            const double c = sum[j * d + a] / static_cast<double>(count[j]);
            const double t = c - centers[j * d + a];
            s2 += t * t;
            centers[j * d + a] = c;
        }
        shift[j] = std::sqrt(s2);
        total += s2;
    }
    return total;
}

// One k-means run from given centres with Lloyd or Hamerly iterations. Leaves labels
// consistent with the final centres. `assign_all(centers, labels, dist2)` is Lloyd's
// assignment of every point (assign_lloyd here; a CUDA kernel in kmeans_gpu).
template <class AssignAll>
void kmeans_iterate(const std::vector<double>& x, std::int64_t n, int d, std::int64_t k, double tol_abs,
                    int max_iter, bool hamerly, AssignAll& assign_all, KMeansResult& r) {
    std::vector<double>& centers = r.centers;
    r.labels.assign(n, 0);
    std::vector<double> dist2(n), shift;
    std::vector<double> upper, lower;  // Hamerly's bounds (distances, not squared)
    CenterNeighbors neighbors;
    const bool use_pruned = k <= 2048;
    if (hamerly) {
        upper.resize(n);
        lower.resize(n);
#pragma omp parallel for schedule(static) if (n * k > 50 * kParallelMin)
        for (std::int64_t i = 0; i < n; ++i) {
            double d1, d2;
            nearest_two(&x[i * d], centers.data(), k, d, r.labels[i], d1, d2);
            dist2[i] = d1;
            upper[i] = std::sqrt(d1);
            lower[i] = std::sqrt(d2);
        }
    } else {
        assign_all(centers, r.labels, dist2);
    }
    r.init_inertia = blocked_sum(n, [&](std::int64_t i) { return dist2[i]; });
    r.iterations = 0;
    std::vector<std::int32_t> previous;
    while (r.iterations < max_iter) {
        previous = r.labels;
        const double moved = update_centers(x, n, d, k, r.labels, dist2, centers, shift);
        ++r.iterations;
        std::int64_t changed = 0;
        if (hamerly) {
            neighbors.build(centers, k, d, use_pruned);
            const std::vector<double>& half = neighbors.half;
            std::int64_t far1 = 0;
            for (std::int64_t j = 1; j < k; ++j)
                if (shift[j] > shift[far1]) far1 = j;
            double far2 = 0;
            for (std::int64_t j = 0; j < k; ++j)
                if (j != far1) far2 = std::max(far2, shift[j]);
#pragma omp parallel for schedule(static) reduction(+ : changed) if (n > kParallelMin)
            for (std::int64_t i = 0; i < n; ++i) {
                const std::int32_t a = r.labels[i];
                const bool moved_point = previous[i] != a;  // relocated to an empty cluster: bounds are stale
                changed += moved_point;
                upper[i] = moved_point ? std::numeric_limits<double>::infinity() : upper[i] + shift[a];
                lower[i] = moved_point ? 0.0 : lower[i] - (a == far1 ? far2 : shift[far1]);
                const double m = std::max(half[a], lower[i]);
                // Bounds carry rounding error; shave a relative 1e-12 off the test.
                if (upper[i] * (1 + 1e-12) < m) continue;
                const double s_a = sqdist(&x[i * d], &centers[a * d], d);
                upper[i] = std::sqrt(s_a);
                if (upper[i] * (1 + 1e-12) < m) {
                    dist2[i] = s_a;
                    continue;
                }
                std::int32_t best;
                double d1, d2;
                if (use_pruned) {
                    nearest_pruned(&x[i * d], centers.data(), d, neighbors, a, s_a, best, d1, lower[i]);
                } else {
                    nearest_two(&x[i * d], centers.data(), k, d, best, d1, d2);
                    lower[i] = std::sqrt(d2);
                }
                changed += best != a;
                r.labels[i] = best;
                dist2[i] = d1;
                upper[i] = std::sqrt(d1);
            }
        } else {
            assign_all(centers, r.labels, dist2);
            for (std::int64_t i = 0; i < n; ++i) changed += previous[i] != r.labels[i];
        }
        if (changed == 0 || moved <= tol_abs) break;
    }
    r.inertia = blocked_sum(n, [&](std::int64_t i) { return sqdist(&x[i * d], &centers[r.labels[i] * d], d); });
}

inline double kmeans_tolerance(const std::vector<double>& x, std::int64_t n, int d, double tol) {
    if (n == 0) return 0;
    double total = 0;
    for (int a = 0; a < d; ++a) {
        double mean = 0, var = 0;
        for (std::int64_t i = 0; i < n; ++i) mean += x[i * d + a];
        mean /= static_cast<double>(n);
        for (std::int64_t i = 0; i < n; ++i) var += (x[i * d + a] - mean) * (x[i * d + a] - mean);
        total += var / static_cast<double>(n);
    }
    return tol * total / d;
}

inline void check_kmeans_args(const KMeansOptions& o, std::int64_t n, const char* who) {
    EWE_REQUIRE(o.k >= 1 && o.k <= n, who, ": k must be in [1, n] = [1, ", n, "], found ", o.k);
    EWE_REQUIRE(o.n_init >= 1, who, ": n_init must be >= 1, found ", o.n_init);
    EWE_REQUIRE(o.max_iter >= 1, who, ": max_iter must be >= 1, found ", o.max_iter);
    EWE_REQUIRE(o.tol >= 0 && std::isfinite(o.tol), who, ": tol must be >= 0, found ", o.tol);
}

// The seed of restart r: a different stream per restart.
inline SplitMix64 restart_rng(std::uint64_t seed, int restart) {
    SplitMix64 g{seed ^ (0xD1B54A32D192ED03ull * static_cast<std::uint64_t>(restart + 1))};
    g.next();
    return g;
}

// The n_init restarts (k-means++ seeding, then kmeans_iterate); the lowest inertia wins.
template <class AssignAll>
KMeansResult kmeans_restarts(const std::vector<double>& x, std::int64_t n, int d, const KMeansOptions& options,
                             bool hamerly, AssignAll&& assign_all) {
    const double tol_abs = kmeans_tolerance(x, n, d, options.tol);
    KMeansResult best;
    for (int r = 0; r < options.n_init; ++r) {
        SplitMix64 rng = restart_rng(options.seed, r);
        KMeansResult run;
        run.centers = kmeans_plusplus(x, n, d, options.k, rng);
        kmeans_iterate(x, n, d, options.k, tol_abs, options.max_iter, hamerly, assign_all, run);
        run.best_init = r;
        if (r == 0 || run.inertia < best.inertia) best = std::move(run);
    }
    return best;
}

}  // namespace detail

// k-means of n points of dimension d (row-major).
template <class T>
KMeansResult kmeans(const T* points, std::int64_t n, int d, const KMeansOptions& options) {
    const std::vector<double> x = detail::to_double_points(points, n, d, "kmeans");
    detail::check_kmeans_args(options, n, "kmeans");
    const bool hamerly = options.algorithm == KMeansAlgorithm::hamerly ||
                         (options.algorithm == KMeansAlgorithm::automatic && d <= 16);
    return detail::kmeans_restarts(x, n, d, options, hamerly,
                                   [&](const std::vector<double>& centers, std::vector<std::int32_t>& labels,
                                       std::vector<double>& dist2) {
                                       detail::assign_lloyd(x, n, d, centers, options.k, labels.data(), dist2.data());
                                   });
}

template <class T>
KMeansResult kmeans(TensorView<const T> points, const KMeansOptions& options) {
    EWE_REQUIRE(points.rank() == 2 && points.device() == Device::cpu, "kmeans: expected an (n, d) host tensor, found ",
                points.shape(), " on ", to_string(points.device()));
    return kmeans(points.data(), points.dim(0), static_cast<int>(points.dim(1)), options);
}

// The elbow curve: the best inertia for every k in [k_min, k_max] (other options as given).
struct ElbowPoint {
    std::int64_t k;
    double inertia;
};
template <class T>
std::vector<ElbowPoint> kmeans_elbow(const T* points, std::int64_t n, int d, std::int64_t k_min, std::int64_t k_max,
                                     KMeansOptions options = {}) {
    EWE_REQUIRE(1 <= k_min && k_min <= k_max && k_max <= n, "kmeans_elbow: expected 1 <= k_min <= k_max <= n = ", n,
                ", found [", k_min, ", ", k_max, "]");
    std::vector<ElbowPoint> out;
    for (std::int64_t k = k_min; k <= k_max; ++k) out.push_back({k, kmeans(points, n, d, options.set_k(k)).inertia});
    return out;
}

}  // namespace ewe::cluster
