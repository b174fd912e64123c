// The bf16 matrix product of the CPU float backend's opt-in bf16 mode
// (ContextOptions::cpu_product_precision = CpuProductPrecision::bf16): C (+)= A B with A
// and B rounded to bfloat16 (to nearest, ties to even) and the products summed in fp32,
// as oneDNN's fpmath_mode=bf16 or PyTorch's set_float32_matmul_precision("medium") do.
// vdpbf16ps (AVX512_BF16) multiplies 16 pairs of bf16 values per fp32 lane and adds
// both products to the lane: twice the multiply-adds of an fp32 FMA per instruction. So
// A and B are packed into pairs along the depth k (the last pair padded with a zero
// where k is odd): B as rows of pairs, kp-th row holding (B(2kp, j), B(2kp+1, j)) for
// every column j (padded with zeros to whole vectors of 16 columns); A with each row's
// pairs in a 32-bit word that the kernel broadcasts. gemm_bf16 takes either operand
// packed already (Bf16PackedA, Bf16PackedB: the backend packs a filter once per op
// call, and ewe/cpu/im2col_bf16.hpp writes patch rows packed) or as floats, which it
// packs into per-thread buffers that grow to the largest product and stay. The tiles,
// panels and depth blocks are gemm()'s (ewe/cpu/gemm.hpp, whose gemm_detail helpers set
// up, store and walk the tiles for both): a tile of C of up to 8 rows x up to five
// vectors stays in registers while the pairs stream through. The order of the sums
// depends on the shapes only, so results are the same on any thread. Single-threaded,
// called inside the backend's parallel items. Compiled where the compiler targets
// AVX512_BF16 (EWE_ARCH native on such a CPU); elsewhere ewe::cpu::kHasBf16GemmKernel is
// false and ewe::Context refuses the mode. Checked against a double-precision product of
// the bf16-rounded inputs in tests/nn/test_gemm_bf16.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

#include "ewe/cpu/gemm.hpp"

namespace ewe::cpu {

// x rounded to the nearest bfloat16 (ties to even) and widened back to float, as the
// kernel reads it; NaN stays NaN. The reference the tests compare with (for normal
// floats: vcvtne2ps2bf16 also reads denormals as 0, which CPU contexts flush anyway).
inline float round_to_bf16(float x) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) bits |= 0x00400000u;  // NaN: keep it a (quiet) NaN
    else bits += 0x7fffu + ((bits >> 16) & 1u);
    bits &= 0xffff0000u;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

// The packed operands' columns (B) and rows (a transposed A) come in vectors of this many.
inline constexpr std::int64_t kBf16PackLanes = 16;

// The operands of gemm_bf16 packed into bf16 pairs along the depth k (the odd
// depth's last pair padded with a zero). A: the pair (i, kp) at words[i * rs + kp * cs]
// (rs == 1 or cs == 1). B: the kp-th row of pairs at words + kp * ld, ld at least n
// rounded up to whole vectors of 16 (the columns past n zero).
struct Bf16PackedA {
    const std::uint32_t* words;
    std::int64_t rs, cs;
};
struct Bf16PackedB {
    const std::uint32_t* words;
    std::int64_t ld;
};

// The pairs of a depth of k, and the words per row of a packed B of n columns.
inline std::int64_t bf16_pairs(std::int64_t k) { return (k + 1) / 2; }
inline std::int64_t bf16_packed_width(std::int64_t n) {
    return (n + kBf16PackLanes - 1) / kBf16PackLanes * kBf16PackLanes;
}
// The words of a packed B (k x n) and of a packed A (m x k).
inline std::int64_t bf16_packed_b_words(std::int64_t k, std::int64_t n) { return bf16_pairs(k) * bf16_packed_width(n); }
inline std::int64_t bf16_packed_a_words(std::int64_t m, std::int64_t k) {
    return bf16_pairs(k) * (m + kBf16PackLanes);
}

#if defined(__AVX512BF16__) && defined(__AVX512BW__)

inline constexpr bool kHasBf16GemmKernel = true;

namespace bf16_detail {

constexpr int kLanes = int(kBf16PackLanes);
constexpr std::int64_t kDepthBlockPairs = gemm_detail::kDepthBlock / 2;

using gemm_detail::lanes;

// A grow-only buffer of 32-bit words (two bf16 values each), one per thread and use.
class PackBuffer {
public:
    std::uint32_t* reserve(std::int64_t words) {
        if (words > capacity_) {
            words_ = std::make_unique<std::uint32_t[]>(std::size_t(words));
            capacity_ = words;
        }
        return words_.get();
    }

private:
    std::unique_ptr<std::uint32_t[]> words_;
    std::int64_t capacity_ = 0;
};

// The 32 bf16 values of lo (first) and hi, interleaved: lo[0], hi[0], lo[1], hi[1], ...
inline __m512i interleave_pairs(__m512 lo, __m512 hi) {
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                           21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(order, __m512i(_mm512_cvtne2ps_pbh(hi, lo)));
}

// out[kp * ld_out + j] = the pair (X(2kp, j), X(2kp+1, j)) for kp < (depth + 1) / 2 and
// j < width (and zeros for j up to width rounded up to 16), X(p, j) = x[p * ld_x + j]:
// the layout of a packed B, and of a packed A stored transposed.
inline void pack_pairs_down(const float* x, std::int64_t ld_x, std::int64_t depth, std::int64_t width,
                            std::uint32_t* out, std::int64_t ld_out) {
    for (std::int64_t p = 0; p < depth; p += 2) {
        const float* even = x + p * ld_x;
        const float* odd = even + ld_x;
        std::uint32_t* row = out + p / 2 * ld_out;
        for (std::int64_t j = 0; j < width; j += kLanes) {
            const __mmask16 mask = lanes(width - j);
            const __m512 lo = _mm512_maskz_loadu_ps(mask, even + j);
            const __m512 hi = p + 1 < depth ? _mm512_maskz_loadu_ps(mask, odd + j) : _mm512_setzero_ps();
            _mm512_storeu_si512(row + j, interleave_pairs(lo, hi));
        }
    }
}

// out[i * ld_out + kp] = the pair (X(i, 2kp), X(i, 2kp+1)) for i < rows, X(i, p) =
// x[i * ld_x + p] (the odd depth's last pair padded with a zero): a row-major A packed.
inline void pack_pairs_along(const float* x, std::int64_t ld_x, std::int64_t rows, std::int64_t depth,
                             std::uint32_t* out, std::int64_t ld_out) {
    for (std::int64_t i = 0; i < rows; ++i) {
        const float* row = x + i * ld_x;
        for (std::int64_t p = 0; p < depth; p += 2 * kLanes) {
            const __m512 lo = _mm512_maskz_loadu_ps(lanes(depth - p), row + p);
            const __m512 hi = _mm512_maskz_loadu_ps(lanes(depth - p - kLanes), row + p + kLanes);
            _mm512_mask_storeu_epi32(out + i * ld_out + p / 2, lanes((depth - p + 1) / 2),
                                     __m512i(_mm512_cvtne2ps_pbh(hi, lo)));
        }
    }
}

// out (kp rows of ld_out words) from X^T (rows of x are columns of X, X(p, j) =
// x[j * ld_x + p]): the layout of pack_pairs_down, 16 columns x 16 pairs at a time,
// packed along x's rows then transposed as 32-bit words.
inline void pack_pairs_down_transposed(const float* x, std::int64_t ld_x, std::int64_t depth, std::int64_t width,
                                       std::uint32_t* out, std::int64_t ld_out) {
    const std::int64_t pairs = (depth + 1) / 2, padded = (width + kLanes - 1) / kLanes * kLanes;
    const __m512i column_of_block = _mm512_set_epi32(240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64, 48,
                                                     32, 16, 0);  // word c * 16 of the block, for c < 16
    alignas(64) std::uint32_t block[kLanes * kLanes];  // block[c * 16 + t]: column j + c, pair q + t
    for (std::int64_t j = 0; j < padded; j += kLanes) {
        const std::int64_t cols = std::min<std::int64_t>(kLanes, width - j);
        for (std::int64_t q = 0; q < pairs; q += kLanes) {
            const std::int64_t count = std::min<std::int64_t>(kLanes, pairs - q);
            std::fill(block, block + kLanes * kLanes, 0u);
            pack_pairs_along(x + j * ld_x + 2 * q, ld_x, cols, std::min(depth - 2 * q, 2 * count), block, kLanes);
            for (std::int64_t t = 0; t < count; ++t)
                _mm512_storeu_si512(out + (q + t) * ld_out + j, _mm512_i32gather_epi32(column_of_block, block + t, 4));
        }
    }
}

// The Rows x (Vectors * 16, the last masked to `cols`) tile of C at c: C (+)= A B over
// `pairs` pairs of depth, A's pair (r, kp) at a[r * a_rs + kp * a_cs], B's row of pairs
// kp at b + kp * ldb; then bias and ReLU if given.
template <int Rows, int Vectors>
void tile(std::int64_t pairs, const std::uint32_t* a, std::int64_t a_rs, std::int64_t a_cs, const std::uint32_t* b,
          std::int64_t ldb, float* c, std::int64_t ldc, std::int64_t cols, bool load_c, const float* bias, bool relu) {
    __mmask16 mask[Vectors];
    __m512 acc[Rows][Vectors];
    gemm_detail::start_tile(acc, mask, c, ldc, cols, load_c);
    for (std::int64_t p = 0; p < pairs; ++p) {
        __m512bh bv[Vectors];
EWE_GEMM_UNROLL(GCC unroll 5)
        for (int v = 0; v < Vectors; ++v) bv[v] = __m512bh(_mm512_loadu_si512(b + p * ldb + v * kLanes));
EWE_GEMM_UNROLL(GCC unroll 12)
        for (int r = 0; r < Rows; ++r) {
            const __m512bh av = __m512bh(_mm512_set1_epi32(int(a[r * a_rs + p * a_cs])));
EWE_GEMM_UNROLL(GCC unroll 5)
            for (int v = 0; v < Vectors; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
        }
    }
    gemm_detail::finish_tile(acc, mask, c, ldc, bias, relu);
}

// tile<Rows, Vectors> for a runtime row count (1..Rows).
template <int Vectors, int Rows = gemm_detail::tile_rows_for<Vectors>()>
void tile_rows(int rows, std::int64_t pairs, const std::uint32_t* a, std::int64_t a_rs, std::int64_t a_cs,
               const std::uint32_t* b, std::int64_t ldb, float* c, std::int64_t ldc, std::int64_t cols, bool load_c,
               const float* bias, bool relu) {
    if constexpr (Rows > 0) {
        if (rows == Rows) return tile<Rows, Vectors>(pairs, a, a_rs, a_cs, b, ldb, c, ldc, cols, load_c, bias, relu);
        return tile_rows<Vectors, Rows - 1>(rows, pairs, a, a_rs, a_cs, b, ldb, c, ldc, cols, load_c, bias, relu);
    }
}

}  // namespace bf16_detail

// B (k x n) at b[p * b_rs + j * b_cs] (b_cs == 1 or b_rs == 1) packed into out
// (bf16_packed_b_words(k, n) words).
inline Bf16PackedB pack_bf16_b(std::int64_t k, std::int64_t n, const float* b, std::int64_t b_rs, std::int64_t b_cs,
                               std::uint32_t* out) {
    const std::int64_t ld = bf16_packed_width(n);
    if (b_cs == 1) bf16_detail::pack_pairs_down(b, b_rs, k, n, out, ld);
    else bf16_detail::pack_pairs_down_transposed(b, b_cs, k, n, out, ld);
    return {out, ld};
}

// A (m x k) at a[i * a_rs + p * a_cs] (a_cs == 1 or a_rs == 1) packed into out
// (bf16_packed_a_words(m, k) words): a row-major A with each row's pairs side by side, a
// transposed A with the pairs of one depth for all rows side by side.
inline Bf16PackedA pack_bf16_a(std::int64_t m, std::int64_t k, const float* a, std::int64_t a_rs, std::int64_t a_cs,
                               std::uint32_t* out) {
    const std::int64_t pairs = bf16_pairs(k);
    if (a_cs == 1) {
        bf16_detail::pack_pairs_along(a, a_rs, m, k, out, pairs);
        return {out, pairs, 1};
    }
    bf16_detail::pack_pairs_down(a, a_cs, k, m, out, m + kBf16PackLanes);
    return {out, 1, m + kBf16PackLanes};
}

// C (m x n, rows ldc apart) = A B (accumulate: C + A B) from packed bf16 operands, summed
// in fp32; bias (n values, or null) and relu apply to the result in fp32:
// C = max(0, C + A B + bias). k must be positive.
inline void gemm_bf16(std::int64_t m, std::int64_t n, std::int64_t k, Bf16PackedA a, Bf16PackedB b, float* c,
                      std::int64_t ldc, bool accumulate, const float* bias = nullptr, bool relu = false) {
    using namespace bf16_detail;
    gemm_detail::for_each_tile(
        m, n, bf16_pairs(k), kDepthBlockPairs,
        [&](auto panel_vectors, std::int64_t i0, int rows, std::int64_t j0, std::int64_t cols, std::int64_t q0,
            std::int64_t depth, bool last) {
            tile_rows<decltype(panel_vectors)::value>(rows, depth, a.words + i0 * a.rs + q0 * a.cs, a.rs, a.cs,
                                                      b.words + q0 * b.ld + j0, b.ld, c + i0 * ldc + j0, ldc, cols,
                                                      accumulate || q0 > 0, last && bias != nullptr ? bias + j0 : nullptr,
                                                      last && relu);
        });
}

// The same with A (m x k) at a[i * a_rs + p * a_cs] (a_cs == 1 or a_rs == 1) packed
// here, into a per-thread buffer that grows to the largest A and stays.
inline void gemm_bf16(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t a_rs,
                      std::int64_t a_cs, Bf16PackedB b, float* c, std::int64_t ldc, bool accumulate,
                      const float* bias = nullptr, bool relu = false) {
    thread_local bf16_detail::PackBuffer a_buffer;
    gemm_bf16(m, n, k, pack_bf16_a(m, k, a, a_rs, a_cs, a_buffer.reserve(bf16_packed_a_words(m, k))), b, c, ldc,
              accumulate, bias, relu);
}

// The same with B (k x n) at b[p * b_rs + j * b_cs] (b_cs == 1 or b_rs == 1) packed here
// too, into another such buffer.
inline void gemm_bf16(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t a_rs,
                      std::int64_t a_cs, const float* b, std::int64_t b_rs, std::int64_t b_cs, float* c,
                      std::int64_t ldc, bool accumulate, const float* bias = nullptr, bool relu = false) {
    thread_local bf16_detail::PackBuffer b_buffer;
    gemm_bf16(m, n, k, a, a_rs, a_cs, pack_bf16_b(k, n, b, b_rs, b_cs, b_buffer.reserve(bf16_packed_b_words(k, n))),
              c, ldc, accumulate, bias, relu);
}

#else

inline constexpr bool kHasBf16GemmKernel = false;

#endif

}  // namespace ewe::cpu
