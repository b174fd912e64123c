// A k-d tree over points in any dimension (Bentley 1975; median split on the widest
// side, leaves of at most 16 points): radius queries with early exit and k-nearest-
// neighbour queries. Distances are Euclidean; "within r" means squared distance
// <= r*r, the squared distance summed over dimensions in order in double precision
// (each step one fused multiply-add, on the host as on a GPU; see detail::sq_step).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <queue>
#include <vector>

#include "ewe/core/error.hpp"

namespace ewe::cluster {

namespace detail {

// Below this many points a thread team costs more than it saves (OpenMP `if` clauses).
constexpr std::int64_t kParallelMin = 20000;

// One step of a squared distance: s + t*t rounded once (a fused multiply-add), so that
// host code, vectorised loops and CUDA kernels (whose fma is also correctly rounded)
// give the same bits. std::fma is exact-then-rounded on every host build: one FMA
// instruction with -mfma / -march=native, a libm call otherwise. (Plain `s + t * t`
// rounds the product first when the host has no FMA: tests/cluster/test_sq_step_rounding.cpp.)
#if defined(__CUDACC__)
__host__ __device__
#endif
inline double sq_step(double s, double t) {
    return std::fma(t, t, s);
}

// Squared Euclidean distance, summed in dimension order (the one definition used by
// every clustering routine here, so that all index structures agree bit for bit).
inline double sqdist(const double* a, const double* b, int d) {
    double s = 0;
    for (int k = 0; k < d; ++k) s = sq_step(s, a[k] - b[k]);
    return s;
}

// Copies n x d points of any arithmetic type into doubles, rejecting NaN and infinity.
template <class T>
std::vector<double> to_double_points(const T* x, std::int64_t n, int d, const char* who) {
    EWE_REQUIRE(n >= 0 && d >= 1, who, ": expected n >= 0 points of dimension d >= 1, found n = ", n, ", d = ", d);
    EWE_REQUIRE(n < std::numeric_limits<std::int32_t>::max(), who, ": at most 2^31 - 2 points, found ", n);
    std::vector<double> out(static_cast<std::size_t>(n) * d);
    for (std::int64_t i = 0; i < n * d; ++i) {
        out[i] = static_cast<double>(x[i]);
        if (!std::isfinite(out[i]))
            fail(who, ": expected finite coordinates, found ", out[i], " at row ", i / d, ", column ", i % d);
    }
    return out;
}

}  // namespace detail

class KdTree {
public:
    static constexpr int kLeafSize = 16;

    KdTree() = default;
    // Builds over n x d row-major points (copied and permuted into tree order).
    KdTree(const double* points, std::int64_t n, int d) : n_(n), d_(d) {
        order_.resize(n);
        std::iota(order_.begin(), order_.end(), 0);
        if (n > 0) {
            nodes_.reserve(static_cast<std::size_t>(2 * (n / kLeafSize + 1)));
            build(points, 0, static_cast<std::int32_t>(n));
        }
        pts_.resize(static_cast<std::size_t>(n) * d);
        for (std::int64_t p = 0; p < n; ++p)
            std::copy(points + static_cast<std::int64_t>(order_[p]) * d, points + (order_[p] + 1) * static_cast<std::int64_t>(d),
                      pts_.begin() + p * d);
    }

    std::int64_t size() const { return n_; }
    int dim() const { return d_; }
    // Point at tree position p, and the original row it came from.
    const double* point(std::int64_t p) const { return pts_.data() + p * d_; }
    std::int32_t original(std::int64_t p) const { return order_[p]; }

    // Calls visit(p) for every tree position p with sqdist(q, point(p)) <= r2, until
    // visit returns false. Returns false when stopped early.
    template <class Visit>
    bool radius(const double* q, double r2, Visit&& visit) const {
        if (nodes_.empty()) return true;
        std::int32_t stack[128];
        int top = 0;
        stack[top++] = 0;
        while (top > 0) {
            const Node& node = nodes_[stack[--top]];
            if (box_sqdist(node, q) > r2) continue;
            if (node.left < 0) {
                for (std::int32_t p = node.begin; p < node.end; ++p)
                    if (detail::sqdist(q, point(p), d_) <= r2 && !visit(p)) return false;
            } else {
                stack[top++] = node.right;
                stack[top++] = node.left;
            }
        }
        return true;
    }

    // Squared distances to the k nearest points (ascending) with their tree positions;
    // `skip` (a tree position, or -1) is left out, e.g. the query point itself.
    void knn(const double* q, int k, std::int64_t skip, std::vector<std::pair<double, std::int32_t>>& heap) const {
        heap.clear();
        if (k <= 0 || nodes_.empty()) return;
        auto worst = [&] { return static_cast<int>(heap.size()) < k ? std::numeric_limits<double>::infinity() : heap.front().first; };
        knn_node(0, q, k, skip, heap, worst);
        std::sort_heap(heap.begin(), heap.end());
    }

private:
    struct Node {
        std::int32_t begin, end, left, right;
    };

    double box_sqdist(const Node& node, const double* q) const {
        const std::size_t id = static_cast<std::size_t>(&node - nodes_.data());
        const double* lo = lo_.data() + id * d_;
        const double* hi = hi_.data() + id * d_;
        double s = 0;
        for (int k = 0; k < d_; ++k) {
            const double t = q[k] < lo[k] ? lo[k] - q[k] : (q[k] > hi[k] ? q[k] - hi[k] : 0.0);
            s = detail::sq_step(s, t);  // same rounding as sqdist: never above a member's distance
        }
        return s;
    }

    std::int32_t build(const double* points, std::int32_t begin, std::int32_t end) {
        const std::int32_t id = static_cast<std::int32_t>(nodes_.size());
        nodes_.push_back({begin, end, -1, -1});
        lo_.resize(lo_.size() + d_, std::numeric_limits<double>::infinity());
        hi_.resize(hi_.size() + d_, -std::numeric_limits<double>::infinity());
        double* lo = lo_.data() + static_cast<std::size_t>(id) * d_;
        double* hi = hi_.data() + static_cast<std::size_t>(id) * d_;
        for (std::int32_t p = begin; p < end; ++p) {
            const double* x = points + static_cast<std::int64_t>(order_[p]) * d_;
            for (int k = 0; k < d_; ++k) {
                lo[k] = std::min(lo[k], x[k]);
                hi[k] = std::max(hi[k], x[k]);
            }
        }
        if (end - begin <= kLeafSize) return id;
        int axis = 0;
        for (int k = 1; k < d_; ++k)
            if (hi[k] - lo[k] > hi[axis] - lo[axis]) axis = k;
        if (hi[axis] == lo[axis]) return id;  // all points equal: one (large) leaf
        const std::int32_t mid = begin + (end - begin) / 2;
        std::nth_element(order_.begin() + begin, order_.begin() + mid, order_.begin() + end,
                         [&](std::int32_t a, std::int32_t b) {
                             return points[static_cast<std::int64_t>(a) * d_ + axis] < points[static_cast<std::int64_t>(b) * d_ + axis];
                         });
        const std::int32_t left = build(points, begin, mid);
        const std::int32_t right = build(points, mid, end);
        nodes_[id].left = left;
        nodes_[id].right = right;
        return id;
    }

    template <class Worst>
    void knn_node(std::int32_t id, const double* q, int k, std::int64_t skip,
                  std::vector<std::pair<double, std::int32_t>>& heap, Worst& worst) const {
        const Node& node = nodes_[id];
        if (node.left < 0) {
            for (std::int32_t p = node.begin; p < node.end; ++p) {
                if (p == skip) continue;
                const double d2 = detail::sqdist(q, point(p), d_);
                if (d2 < worst()) {
                    if (static_cast<int>(heap.size()) == k) {
                        std::pop_heap(heap.begin(), heap.end());
                        heap.pop_back();
                    }
                    heap.emplace_back(d2, p);
                    std::push_heap(heap.begin(), heap.end());
                }
            }
            return;
        }
        const double dl = box_sqdist(nodes_[node.left], q), dr = box_sqdist(nodes_[node.right], q);
        const std::int32_t first = dl <= dr ? node.left : node.right, second = dl <= dr ? node.right : node.left;
        if (std::min(dl, dr) < worst()) knn_node(first, q, k, skip, heap, worst);
        if (std::max(dl, dr) < worst()) knn_node(second, q, k, skip, heap, worst);
    }

    std::int64_t n_ = 0;
    int d_ = 0;
    std::vector<Node> nodes_;
    std::vector<double> lo_, hi_;
    std::vector<std::int32_t> order_;
    std::vector<double> pts_;
};

}  // namespace ewe::cluster
