// The float matrix products of the CPU dense layers on AVX-512, built on gemm() of
// ewe/cpu/gemm.hpp (its 8 x 48 register tiles). The big layers' weight matrix W
// (62720 x 100 floats, 25 MB) fits in no cache, and at batch 8 each of its elements takes
// part in 8 multiply-adds: those products are bound by memory, so each reads W once, in
// long sequential runs, and writes each output once:
// - streamed_product: C = A B, B row-major (the forward x w; the weight gradient x^T d).
//   B in blocks of kDenseColumnBlock columns that every row tile of A uses while they are
//   in L2; for few rows of A and a shallow, wide B (the decoder's 100 -> 62720 forward
//   at batch 8) in groups of kDepthGroup whole rows of B instead; for a large C over a
//   short depth (the weight gradients at batch 8) through a buffer, with non-temporal
//   stores.
// - streamed_product_bt: C = A B^T, B row-major (the input gradient d w^T): for few rows
//   of A (both big layers at batch 8) dot products of rows of A and B, reading B in
//   memory order (the encoder's short rows one after another; the decoder's long rows
//   four at a time); otherwise B transposed a panel at a time (16 x 16 blocks
//   transposed in registers) for gemm().
// Each choice was measured on the seed model's shapes (the constants below say by how
// much). Single-threaded: the CPU backend (ewe/cpu/backend.hpp) cuts a layer into items
// fixed by the shapes and calls these inside them; the order of the sums depends on the
// shapes only. Compiled where ewe::cpu::kHasGemmKernel is (AVX-512F); elsewhere the
// backend keeps Eigen's products. Checked against a double-precision reference in
// tests/nn/test_dense_kernels.cpp; bench_cpu_layers measures them per layer.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ewe/cpu/gemm.hpp"

namespace ewe::cpu {

#if defined(__AVX512F__)

// GCC 12's intrinsics (_mm512_unpacklo_ps and the like, through _mm512_undefined_ps)
// trip its own -W(maybe-)uninitialized once inlined (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace dense_detail {

constexpr int kLanes = 16;
constexpr int kDotRows = 4;  // a tile of C = A B^T is kDotRows x kDotRows dot products
// dot_tile fetches B this many floats ahead of its reads (2 KB; 0.5 ms less of 2.8 on the
// encoder's input gradient at batch 8; 256 to 2048 all within noise of each other).
constexpr std::int64_t kDotPrefetch = 512;

inline __mmask16 first_lanes(std::int64_t count) {
    return count >= kLanes ? __mmask16(0xffff) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1u);
}

// One vector whose lane q is the sum of the 16 lanes of v[q]: pairs of vectors are
// interleaved and added at 32-bit, 64-bit, then 128-bit granularity (30 shuffles,
// 15 additions).
inline __m512 sum_lanes(const __m512 (&v)[kLanes]) {
    __m512 w[8], z[4];
    // w[t], per 128-bit lane: partial sums of v[2t], v[2t+1], v[2t], v[2t+1].
    for (int t = 0; t < 8; ++t)
        w[t] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * t], v[2 * t + 1]), _mm512_unpackhi_ps(v[2 * t], v[2 * t + 1]));
    // z[u], per 128-bit lane: the lane's sums of v[4u], ..., v[4u + 3].
    for (int u = 0; u < 4; ++u) {
        const __m512d lo = _mm512_castps_pd(w[2 * u]), hi = _mm512_castps_pd(w[2 * u + 1]);
        z[u] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi)), _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi)));
    }
    // 128-bit lane u of the result: the four lanes of z[u] added.
    const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], 0x88), _mm512_shuffle_f32x4(z[0], z[1], 0xdd));
    const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(z[2], z[3], 0x88), _mm512_shuffle_f32x4(z[2], z[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xdd));
}

// The rows x cols (each at most kDotRows) tile of C at c: C(i, j) (+)= the dot product of
// A's row i (a + i * lda) and B's row j (b + j * ldb) over k, 16 lanes of k at a time
// (the last masked), each of the 16 products in its own register, summed across lanes
// at the end. B's rows are fetched kDotPrefetch floats ahead of the reads (the next
// tiles' rows where B's rows are short and adjacent, farther along them where long).
// The accumulators are copied before sum_lanes takes them by reference: otherwise GCC
// keeps them in memory and stores all 16 on every step (2x slower).
inline void dot_tile(int rows, int cols, std::int64_t k, const float* a, std::int64_t lda, const float* b,
                     std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
    const float* a_row[kDotRows];
    const float* b_row[kDotRows];
    for (int i = 0; i < kDotRows; ++i) {  // missing rows repeat row 0; their sums are not stored
        a_row[i] = a + (i < rows ? i : 0) * lda;
        b_row[i] = b + (i < cols ? i : 0) * ldb;
    }
    __m512 acc[kLanes];
EWE_GEMM_UNROLL(GCC unroll 16)
    for (int q = 0; q < kLanes; ++q) acc[q] = _mm512_setzero_ps();
    for (std::int64_t p = 0; p < k; p += kLanes) {
        const __mmask16 mask = first_lanes(k - p);
        __m512 bv[kDotRows];
EWE_GEMM_UNROLL(GCC unroll 4)
        for (int j = 0; j < kDotRows; ++j) {
            // an address, not a pointer into B: past B's end it fetches nothing useful, harmlessly
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(b_row[j] + p) +
                                                       kDotPrefetch * sizeof(float)),
                         _MM_HINT_T0);
            bv[j] = _mm512_maskz_loadu_ps(mask, b_row[j] + p);
        }
EWE_GEMM_UNROLL(GCC unroll 4)
        for (int i = 0; i < kDotRows; ++i) {
            const __m512 av = _mm512_maskz_loadu_ps(mask, a_row[i] + p);
EWE_GEMM_UNROLL(GCC unroll 4)
            for (int j = 0; j < kDotRows; ++j) acc[i * kDotRows + j] = _mm512_fmadd_ps(av, bv[j], acc[i * kDotRows + j]);
        }
    }
    __m512 products[kLanes];
EWE_GEMM_UNROLL(GCC unroll 16)
    for (int q = 0; q < kLanes; ++q) products[q] = acc[q];
    const __m512 sums = sum_lanes(products);  // 128-bit lane i: C(i, 0..3)
    if (rows == kDotRows && cols == kDotRows) {
        __m128 row_sums[kDotRows] = {_mm512_castps512_ps128(sums), _mm512_extractf32x4_ps(sums, 1),
                                     _mm512_extractf32x4_ps(sums, 2), _mm512_extractf32x4_ps(sums, 3)};
EWE_GEMM_UNROLL(GCC unroll 4)
        for (int i = 0; i < kDotRows; ++i) {
            float* out = c + i * ldc;
            _mm_storeu_ps(out, accumulate ? _mm_add_ps(_mm_loadu_ps(out), row_sums[i]) : row_sums[i]);
        }
        return;
    }
    alignas(64) float values[kLanes];
    _mm512_store_ps(values, sums);
    for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) {
            float& out = c[i * ldc + j];
            out = accumulate ? out + values[i * kDotRows + j] : values[i * kDotRows + j];
        }
}

// out (cols x rows, rows ld_out apart) = the transpose of in (rows x cols, rows ld_in
// apart), rows and cols at most 16: loaded as 16 zmm rows (missing ones zero), then
// interleaved pairwise at 32-, 64- and 128-bit granularity.
inline void transpose_block(const float* in, std::int64_t ld_in, std::int64_t rows, std::int64_t cols, float* out,
                            std::int64_t ld_out) {
    const __mmask16 col_mask = first_lanes(cols), row_mask = first_lanes(rows);
    __m512 r[kLanes], t[kLanes];  // all loops unrolled, so that both stay in registers
EWE_GEMM_UNROLL(GCC unroll 16)
    for (int i = 0; i < kLanes; ++i)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(col_mask, in + i * ld_in) : _mm512_setzero_ps();
    // t[2k] lane L: M[2k][4L], M[2k+1][4L], M[2k][4L+1], M[2k+1][4L+1]; t[2k+1] the same for 4L+2, 4L+3.
EWE_GEMM_UNROLL(GCC unroll 8)
    for (int k = 0; k < kLanes / 2; ++k) {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    // r[4k + c] lane L: rows 4k..4k+3 of column 4L + c.
EWE_GEMM_UNROLL(GCC unroll 4)
    for (int k = 0; k < kLanes / 4; ++k) {
        const __m512d t0 = _mm512_castps_pd(t[4 * k]), t1 = _mm512_castps_pd(t[4 * k + 1]),
                      t2 = _mm512_castps_pd(t[4 * k + 2]), t3 = _mm512_castps_pd(t[4 * k + 3]);
        r[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        r[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        r[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        r[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    // Column 4L + c gathers lane L of r[c], r[4 + c], r[8 + c], r[12 + c].
EWE_GEMM_UNROLL(GCC unroll 4)
    for (int c = 0; c < 4; ++c) {
        const __m512 low0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), high0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xee);
        const __m512 low1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44),
                     high1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xee);
        t[c] = _mm512_shuffle_f32x4(low0, low1, 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(low0, low1, 0xdd);
        t[8 + c] = _mm512_shuffle_f32x4(high0, high1, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(high0, high1, 0xdd);
    }
EWE_GEMM_UNROLL(GCC unroll 16)
    for (int j = 0; j < kLanes; ++j)
        if (j < cols) _mm512_mask_storeu_ps(out + j * ld_out, row_mask, t[j]);
}

// dst[i] = src[i] for i in [0, count), with non-temporal stores from dst's first 64-byte
// boundary on: the lines are written without being read into the cache first.
inline void stream_copy(float* dst, const float* src, std::int64_t count) {
    std::int64_t i = 0;
    for (; i < count && reinterpret_cast<std::uintptr_t>(dst + i) % 64 != 0; ++i) dst[i] = src[i];
    for (; i + kLanes <= count; i += kLanes) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
    for (; i < count; ++i) dst[i] = src[i];
}

}  // namespace dense_detail

// Columns of B per block of streamed_product: a block of k rows (100 rows: 77 KB) stays
// in L2 while every row tile of A passes over it.
inline constexpr std::int64_t kDenseColumnBlock = 192;
// The panel of panel_product_bt: kDensePanelDepth x kDensePanelColumns floats (56 KB;
// 112 columns: the 100 features of the big layers in one panel).
inline constexpr std::int64_t kDensePanelDepth = 128;
inline constexpr std::int64_t kDensePanelColumns = 112;
// streamed_product_bt takes dot products when A has at most kDotProductRows rows
// (at batch 8 faster than transposed panels: the encoder's 62720 -> 100 1.7x, the
// decoder's 100 -> 62720, whose panels read 100 rows of w at once, 1.3x), transposed
// panels otherwise.
inline constexpr std::int64_t kDotProductRows = 16;
// A product over at most kStreamedStoreDepth (the batch: a weight gradient X^T D) whose
// C has at least kStreamedStoreSize values (larger than half an L2, so it would not stay
// in cache) is computed kStoreRows rows x kDenseColumnBlock columns at a time into a
// buffer on the stack and copied out with non-temporal stores: memory then sees only
// C's writes, not also a read of each line before it (1.5x faster at batch 8).
inline constexpr std::int64_t kStreamedStoreDepth = 16;
inline constexpr std::int64_t kStreamedStoreSize = std::int64_t(1) << 17;
inline constexpr std::int64_t kStoreRows = 16;
// A product of at most kDepthGroupRows rows of A and a shallow, wide B (k at most
// kDepthBlockedAbove: the decoder's 100 -> 62720 at batch 8) runs instead over groups of
// kDepthGroup whole rows of B: 8 sequential streams through memory instead of k short
// strided ones (2x faster at batch 8), C's tiles re-read from L1/L2 once per group. At
// batch 64 the column blocks are faster.
inline constexpr std::int64_t kDepthGroupRows = 16;
inline constexpr std::int64_t kDepthBlockedAbove = 128;
inline constexpr std::int64_t kDepthGroup = 8;

// C (m x n, rows ldc apart) = A B (accumulate: C + A B), A (m x k) at
// a[i * a_rs + p * a_cs], B (k x n) row-major, rows ldb apart. A row-major A
// (a_rs != 1) is packed by gemm() once per block of B: callers that pass many blocks
// transpose it first (a_rs == 1).
inline void streamed_product(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t a_rs,
                             std::int64_t a_cs, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                             bool accumulate) {
    if (!accumulate && k <= kStreamedStoreDepth && m * n >= kStreamedStoreSize) {
        alignas(64) float buffer[kStoreRows * kDenseColumnBlock];
        for (std::int64_t j0 = 0; j0 < n; j0 += kDenseColumnBlock) {
            const std::int64_t cols = std::min(kDenseColumnBlock, n - j0);
            for (std::int64_t i0 = 0; i0 < m; i0 += kStoreRows) {
                const std::int64_t rows = std::min(kStoreRows, m - i0);
                gemm(rows, cols, k, a + i0 * a_rs, a_rs, a_cs, b + j0, ldb, buffer, cols, false);
                if (cols == ldc) dense_detail::stream_copy(c + i0 * ldc, buffer, rows * cols);  // whole rows: one run
                else
                    for (std::int64_t r = 0; r < rows; ++r)
                        dense_detail::stream_copy(c + (i0 + r) * ldc + j0, buffer + r * cols, cols);
            }
        }
        _mm_sfence();  // the streamed lines reach memory before anyone reads C
        return;
    }
    if (m <= kDepthGroupRows && k <= kDepthBlockedAbove && a_rs == 1) {
        for (std::int64_t p0 = 0; p0 < k; p0 += kDepthGroup)
            gemm(m, n, std::min(kDepthGroup, k - p0), a + p0 * a_cs, a_rs, a_cs, b + p0 * ldb, ldb, c, ldc,
                 accumulate || p0 > 0);
        return;
    }
    for (std::int64_t j0 = 0; j0 < n; j0 += kDenseColumnBlock)
        gemm(m, std::min(kDenseColumnBlock, n - j0), k, a, a_rs, a_cs, b + j0, ldb, c + j0, ldc, accumulate);
}

// out (cols x rows, rows ld_out apart) = the transpose of in (rows x cols, rows ld_in apart).
inline void transpose(const float* in, std::int64_t ld_in, std::int64_t rows, std::int64_t cols, float* out,
                      std::int64_t ld_out) {
    using dense_detail::kLanes;
    for (std::int64_t i0 = 0; i0 < rows; i0 += kLanes)
        for (std::int64_t j0 = 0; j0 < cols; j0 += kLanes)
            dense_detail::transpose_block(in + i0 * ld_in + j0, ld_in, std::min<std::int64_t>(kLanes, rows - i0),
                                          std::min<std::int64_t>(kLanes, cols - j0), out + j0 * ld_out + i0, ld_out);
}

// C (m x n, rows ldc apart) = A B^T (accumulate: C + A B^T), A (m x k) and B (n x k)
// row-major, rows lda and ldb apart, as dot products of rows, in tiles of kDotRows rows
// of A x kDotRows rows of B: B is read row by row, in memory order, and each of its
// vectors feeds kDotRows multiply-adds.
inline void dot_product_bt(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
                           const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
    using dense_detail::kDotRows;
    for (std::int64_t j0 = 0; j0 < n; j0 += kDotRows)
        for (std::int64_t i0 = 0; i0 < m; i0 += kDotRows)
            dense_detail::dot_tile(int(std::min<std::int64_t>(kDotRows, m - i0)),
                                   int(std::min<std::int64_t>(kDotRows, n - j0)), k, a + i0 * lda, lda, b + j0 * ldb, ldb,
                                   c + i0 * ldc + j0, ldc, accumulate);
}

// The same product through gemm(): B^T transposed a kDensePanelDepth x
// kDensePanelColumns panel at a time into a buffer on the stack, each panel used by
// every row tile of A before the next is made.
inline void panel_product_bt(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
                             const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
    alignas(64) float panel[kDensePanelDepth * kDensePanelColumns];
    for (std::int64_t j0 = 0; j0 < n; j0 += kDensePanelColumns) {
        const std::int64_t cols = std::min(kDensePanelColumns, n - j0);
        for (std::int64_t p0 = 0; p0 < k; p0 += kDensePanelDepth) {
            const std::int64_t depth = std::min(kDensePanelDepth, k - p0);
            transpose(b + j0 * ldb + p0, ldb, cols, depth, panel, cols);
            gemm(m, cols, depth, a + p0, lda, 1, panel, cols, c + j0, ldc, accumulate || p0 > 0);
        }
    }
}

// C (m x n, rows ldc apart) = A B^T (accumulate: C + A B^T), A (m x k) and B (n x k)
// row-major, rows lda and ldb apart: dot products for few rows of A, else panels.
inline void streamed_product_bt(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
                                const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
    if (m <= kDotProductRows) dot_product_bt(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    else panel_product_bt(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif

}  // namespace ewe::cpu
