// im2col (ewe/cpu/im2col.hpp) for the bf16 mode's products (ewe/cpu/gemm_bf16.hpp):
// the patch rows written straight in gemm_bf16_packed's pair layouts, so that the
// block's fp32 patch matrix is never stored and read back. Two patch rows at a time go
// through a buffer of 2 K floats (in L1) and are rounded to bf16 from there: as the A
// of a product (the rows' pairs along the depth K: the forward convolution and the
// transposed convolution's data gradient) and/or as its B (a pair of rows per row of
// pairs: the filter gradients, whose depth is the block's patch rows). The values and
// their pairs are those gemm_bf16 packs from the fp32 block, so results are identical.
// On the calling thread, inside the backend's parallel items.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ewe/cpu/gemm_bf16.hpp"
#include "ewe/cpu/im2col.hpp"

namespace ewe::cpu {

#if defined(__AVX512BF16__) && defined(__AVX512BW__)

// Rows [first, last) of g's patch matrix P (rows x K, rows = last - first) rounded to
// bf16: into a (when not null) as the packed A of rows x K (bf16_packed_a_words(rows,
// K) words, Bf16PackedA{a, bf16_pairs(K), 1}), and into b (when not null) as the packed
// B of K columns and depth rows (bf16_pairs(rows) rows of bf16_packed_width(K) words).
// buffer: 2 g.gemm_k() floats.
inline void im2col_bf16(const ConvGeometry& g, const float* x, std::int64_t first, std::int64_t last, float* buffer,
                        std::uint32_t* a, std::uint32_t* b) {
    const std::int64_t K = g.gemm_k(), pairs = bf16_pairs(K), ldb = bf16_packed_width(K);
    for (std::int64_t m = first; m < last; m += 2) {
        const std::int64_t rows = std::min<std::int64_t>(2, last - m);
        im2col(g, x, m, m + rows, buffer);
        if (a != nullptr) bf16_detail::pack_pairs_along(buffer, K, rows, K, a + (m - first) * pairs, pairs);
        if (b != nullptr) bf16_detail::pack_pairs_down(buffer, K, rows, K, b + (m - first) / 2 * ldb, ldb);
    }
}

#endif

}  // namespace ewe::cpu
