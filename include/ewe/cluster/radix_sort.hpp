// ewe::cluster::detail::radix_sort: a stable least-significant-digit radix sort of
// (64-bit key, 32-bit index) pairs by key, 11 bits per pass; the DBSCAN grid
// (ewe/cluster/dbscan_grid.hpp) sorts its points into cells with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ewe::cluster::detail {

inline void radix_sort(std::vector<std::uint64_t>& keys, std::vector<std::int32_t>& index, int bits) {
    constexpr int kDigit = 11;
    const std::size_t n = keys.size();
    std::vector<std::uint64_t> k2(n);
    std::vector<std::int32_t> i2(n);
    for (int shift = 0; shift < bits; shift += kDigit) {
        std::size_t count[(1 << kDigit) + 1] = {};
        for (std::size_t i = 0; i < n; ++i) ++count[((keys[i] >> shift) & ((1u << kDigit) - 1)) + 1];
        for (int b = 0; b < (1 << kDigit); ++b) count[b + 1] += count[b];
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t to = count[(keys[i] >> shift) & ((1u << kDigit) - 1)]++;
            k2[to] = keys[i];
            i2[to] = index[i];
        }
        keys.swap(k2);
        index.swap(i2);
    }
}

}  // namespace ewe::cluster::detail
