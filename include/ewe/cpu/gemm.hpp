// The float matrix product of the CPU convolutions on AVX-512: C (+)= A B, with A read
// through any row and column strides (so A may be a transposed matrix) and B row-major,
// optionally with bias and ReLU fused into the store of the last block of the sum.
// Register-blocked outer products: a tile of C of up to kTileRows (8) rows x up to five
// vectors of 16 columns stays in registers while k streams through, one broadcast of A
// per row (read straight from A: a row-major A along its tile's rows at once) and one
// load of B per vector per step. A C at most five vectors wide (the convolutions' 10 to
// 80 channels) is one panel as wide as C, with fewer rows as it widens (4 vectors x 6
// rows, 5 x 5), so each value of A is read once per depth block; a wider C goes in
// panels of three vectors across each tile of 8 rows. k is cut into blocks of
// kDepthBlock so a block of B (kDepthBlock x n) stays in L2 while every row tile of C
// passes over it. bench_cpu_layers measures it per layer. The order of the sums depends
// on the shapes only, so results are the same on any thread. Single-threaded: the CPU
// backend calls it inside its parallel items. Compiled only where the compiler targets
// AVX-512F (EWE_ARCH native on such a CPU); elsewhere (EWE_ARCH=portable, AVX2 CPUs)
// ewe::cpu::kHasGemmKernel is false and the backend keeps Eigen's products, the
// portable path. Checked against a double-precision reference in tests/nn/test_gemm.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// GCC's unroll hint for the tile loops; nvcc's front end, which reads this header in the
// CUDA programs' host code, does not know the pragma, so it is left out there.
// EWE_GEMM_INLINE: the tile helpers below are always inlined (their accumulators must
// stay in registers), where the compiler is GCC-like; nvcc's front end is left without.
#if defined(__CUDACC__) || !defined(__GNUC__)
#define EWE_GEMM_UNROLL(n)
#define EWE_GEMM_INLINE inline
#else
#define EWE_GEMM_UNROLL(n) _Pragma(#n)
#define EWE_GEMM_INLINE inline __attribute__((always_inline))
#endif

namespace ewe::cpu {

#if defined(__AVX512F__)

inline constexpr bool kHasGemmKernel = true;

namespace gemm_detail {

constexpr int kTileRows = 8;
constexpr int kLanes = 16;
constexpr int kTileVectors = 3;  // the panels of a C wider than five vectors
constexpr std::int64_t kDepthBlock = 128;

inline __mmask16 lanes(std::int64_t count) {
    return count >= kLanes ? __mmask16(0xffff) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1u);
}

// A tile's accumulators, Rows x Vectors vectors of 16 columns of C at c (rows ldc apart,
// the last vector masked to `cols`): set from C (load_c) or to zero.
template <int Rows, int Vectors>
EWE_GEMM_INLINE void start_tile(__m512 (&acc)[Rows][Vectors], __mmask16 (&mask)[Vectors], const float* c,
                                std::int64_t ldc, std::int64_t cols, bool load_c) {
    for (int v = 0; v < Vectors; ++v) mask[v] = lanes(cols - v * kLanes);
EWE_GEMM_UNROLL(GCC unroll 12)
    for (int r = 0; r < Rows; ++r)
EWE_GEMM_UNROLL(GCC unroll 5)
        for (int v = 0; v < Vectors; ++v)
            acc[r][v] = load_c ? _mm512_maskz_loadu_ps(mask[v], c + r * ldc + v * kLanes) : _mm512_setzero_ps();
}

// The tile's accumulators stored to C, plus bias (Vectors * 16 values, or null) and
// then ReLU if asked.
template <int Rows, int Vectors>
EWE_GEMM_INLINE void finish_tile(const __m512 (&acc)[Rows][Vectors], const __mmask16 (&mask)[Vectors], float* c,
                                 std::int64_t ldc, const float* bias, bool relu) {
EWE_GEMM_UNROLL(GCC unroll 5)
    for (int v = 0; v < Vectors; ++v) {
        const __m512 add = bias ? _mm512_maskz_loadu_ps(mask[v], bias + v * kLanes) : _mm512_setzero_ps();
EWE_GEMM_UNROLL(GCC unroll 12)
        for (int r = 0; r < Rows; ++r) {
            __m512 out = _mm512_add_ps(acc[r][v], add);
            if (relu) out = _mm512_max_ps(out, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(c + r * ldc + v * kLanes, mask[v], out);
        }
    }
}

// The Rows x (Vectors * 16, the last vector masked to `cols`) tile of C at c:
// C (+)= A B over `depth`, with A(r, p) = a[r * a_rs + p * a_cs] and
// B(p, j) = b[p * ldb + j]; then bias and ReLU if given. Each step broadcasts one A
// value per row straight from A (a row-major A is read along its Rows rows at once).
template <int Rows, int Vectors>
void tile(std::int64_t depth, const float* a, std::int64_t a_rs, std::int64_t a_cs, const float* b,
          std::int64_t ldb, float* c, std::int64_t ldc, std::int64_t cols, bool load_c, const float* bias,
          bool relu) {
    __mmask16 mask[Vectors];
    __m512 acc[Rows][Vectors];
    start_tile(acc, mask, c, ldc, cols, load_c);
    // a_at(r, p): A(r, p) of the tile.
    const auto sum = [&](auto a_at) {
        for (std::int64_t p = 0; p < depth; ++p) {
            __m512 bv[Vectors];
EWE_GEMM_UNROLL(GCC unroll 5)
            for (int v = 0; v < Vectors; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], b + p * ldb + v * kLanes);
EWE_GEMM_UNROLL(GCC unroll 12)
            for (int r = 0; r < Rows; ++r) {
                const __m512 av = _mm512_set1_ps(a_at(r, p));
EWE_GEMM_UNROLL(GCC unroll 5)
                for (int v = 0; v < Vectors; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
            }
        }
    };
    const float* row[Rows];
    for (int r = 0; r < Rows; ++r) row[r] = a + r * a_rs;
    if (a_rs == 1) sum([&](int r, std::int64_t p) { return a[p * a_cs + r]; });
    else if (a_cs == 1) sum([&](int r, std::int64_t p) { return row[r][p]; });
    else sum([&](int r, std::int64_t p) { return row[r][p * a_cs]; });
    finish_tile(acc, mask, c, ldc, bias, relu);
}

// Rows of a tile of Vectors vectors: as many as the 32 vector registers hold beside
// the Vectors loads of B and one broadcast, at most kTileRows.
template <int Vectors>
constexpr int tile_rows_for() {
    return std::min(kTileRows, (32 - Vectors - 1) / Vectors);
}

// tile<Rows, Vectors> for a runtime row count (1..Rows).
template <int Vectors, int Rows = tile_rows_for<Vectors>()>
void tile_rows(int rows, std::int64_t depth, const float* a, std::int64_t a_rs, std::int64_t a_cs, const float* b,
               std::int64_t ldb, float* c, std::int64_t ldc, std::int64_t cols, bool load_c, const float* bias,
               bool relu) {
    if constexpr (Rows > 0) {
        if (rows == Rows) return tile<Rows, Vectors>(depth, a, a_rs, a_cs, b, ldb, c, ldc, cols, load_c, bias, relu);
        return tile_rows<Vectors, Rows - 1>(rows, depth, a, a_rs, a_cs, b, ldb, c, ldc, cols, load_c, bias, relu);
    }
}

// Runs block(panel_vectors, i0, rows, j0, cols, d0, depth, last) over C (m x n) and a
// depth of `total`, the way every product here walks its tiles: the depth in blocks of
// depth_block (last: the final one); within each, a C at most five vectors wide as one
// panel as wide as C (tiles down the rows), a wider one in panels of kTileVectors
// vectors (the last one narrower) across each tile of kTileRows rows. panel_vectors is a
// std::integral_constant of the tile's vectors; rows and cols are the tile's.
template <class Block>
EWE_GEMM_INLINE void for_each_tile(std::int64_t m, std::int64_t n, std::int64_t total, std::int64_t depth_block,
                                   Block&& block) {
    const std::int64_t vectors = (n + kLanes - 1) / kLanes;
    for (std::int64_t d0 = 0; d0 < total; d0 += depth_block) {
        const std::int64_t depth = std::min(depth_block, total - d0);
        const bool last = d0 + depth == total;
        const auto one_panel = [&](auto panel_vectors) {
            constexpr int kRows = tile_rows_for<decltype(panel_vectors)::value>();
            for (std::int64_t i0 = 0; i0 < m; i0 += kRows)
                block(panel_vectors, i0, int(std::min<std::int64_t>(kRows, m - i0)), 0, n, d0, depth, last);
        };
        switch (vectors) {
            case 1: one_panel(std::integral_constant<int, 1>{}); continue;
            case 2: one_panel(std::integral_constant<int, 2>{}); continue;
            case 4: one_panel(std::integral_constant<int, 4>{}); continue;
            case 5: one_panel(std::integral_constant<int, 5>{}); continue;
            default: break;
        }
        for (std::int64_t i0 = 0; i0 < m; i0 += kTileRows) {
            const int rows = int(std::min<std::int64_t>(kTileRows, m - i0));
            for (std::int64_t j0 = 0; j0 < n; j0 += kTileVectors * kLanes) {
                const std::int64_t cols = std::min<std::int64_t>(kTileVectors * kLanes, n - j0);
                if (cols > 2 * kLanes) block(std::integral_constant<int, 3>{}, i0, rows, j0, cols, d0, depth, last);
                else if (cols > kLanes) block(std::integral_constant<int, 2>{}, i0, rows, j0, cols, d0, depth, last);
                else block(std::integral_constant<int, 1>{}, i0, rows, j0, cols, d0, depth, last);
            }
        }
    }
}

}  // namespace gemm_detail

// C (m x n, rows ldc apart) = A B (accumulate: C + A B) with A (m x k) at
// a[i * a_rs + p * a_cs] and B (k x n) row-major, rows ldb apart. bias (n values, or
// null) and relu apply to the result: C = max(0, C + A B + bias) when both are given.
// k must be positive.
inline void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t a_rs, std::int64_t a_cs,
                 const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate,
                 const float* bias = nullptr, bool relu = false) {
    using namespace gemm_detail;
    for_each_tile(m, n, k, kDepthBlock,
                  [&](auto panel_vectors, std::int64_t i0, int rows, std::int64_t j0, std::int64_t cols,
                      std::int64_t k0, std::int64_t depth, bool last) {
                      tile_rows<decltype(panel_vectors)::value>(
                          rows, depth, a + i0 * a_rs + k0 * a_cs, a_rs, a_cs, b + k0 * ldb + j0, ldb, c + i0 * ldc + j0,
                          ldc, cols, accumulate || k0 > 0, last && bias != nullptr ? bias + j0 : nullptr, last && relu);
                  });
}

#else

inline constexpr bool kHasGemmKernel = false;

#endif

}  // namespace ewe::cpu
