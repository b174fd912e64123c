// ewe::cluster::detail::ConcurrentUnionFind: the disjoint sets of ewe/cluster/union_find.hpp
// for unite() calls from several threads at once, lock-free: a root is linked below a
// smaller root by compare-and-swap, so the partition it ends with does not depend on
// the order of the calls, and the root of a set is its smallest index.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

namespace ewe::cluster::detail {

struct ConcurrentUnionFind {
    std::vector<std::int32_t> parent;
    explicit ConcurrentUnionFind(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
    std::int32_t find(std::int32_t x) {
        while (true) {
            std::atomic_ref<std::int32_t> px(parent[x]);
            const std::int32_t p = px.load(std::memory_order_relaxed);
            if (p == x) return x;
            const std::int32_t gp = std::atomic_ref<std::int32_t>(parent[p]).load(std::memory_order_relaxed);
            if (gp != p) {
                std::int32_t expected = p;
                px.compare_exchange_weak(expected, gp, std::memory_order_relaxed);
            }
            x = gp;
        }
    }
    void unite(std::int32_t a, std::int32_t b) {
        while (true) {
            a = find(a);
            b = find(b);
            if (a == b) return;
            if (a < b) std::swap(a, b);
            std::int32_t expected = a;
            if (std::atomic_ref<std::int32_t>(parent[a]).compare_exchange_strong(expected, b, std::memory_order_acq_rel))
                return;
        }
    }
    // After all unions (single thread): every element points straight at its root.
    void flatten() {
        for (std::size_t x = 0; x < parent.size(); ++x) parent[x] = parent[parent[x]];
    }
};

}  // namespace ewe::cluster::detail
