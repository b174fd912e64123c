// ewe::cluster::detail::UnionFind: disjoint sets of the indices 0..n-1 with path halving,
// for one thread (ConcurrentUnionFind, ewe/cluster/concurrent_union_find.hpp, takes
// unite() calls from several). The root of a set is its smallest index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

namespace ewe::cluster::detail {

struct UnionFind {
    std::vector<std::int32_t> parent;
    explicit UnionFind(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
    std::int32_t find(std::int32_t x) {
        while (parent[x] != x) {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        return x;
    }
    // Points every element straight at its root (then parent[] is read-only safe).
    void flatten() {
        for (std::size_t x = 0; x < parent.size(); ++x) parent[x] = parent[parent[x]];
    }
    void unite(std::int32_t a, std::int32_t b) {
        a = find(a);
        b = find(b);
        if (a == b) return;
        if (a < b) std::swap(a, b);
        parent[a] = b;
    }
};

}  // namespace ewe::cluster::detail
