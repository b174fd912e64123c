// Philox4x32-10 counter-based random numbers (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC'11), usable on host and device, so the CPU and
// CUDA paths draw identical streams from the same (seed, stream, offset).
//
// Convention used across ewe: element i of a draw takes counter
// {i / 4, stream, offset_lo, offset_hi} under key {seed_lo, seed_hi} and uses word
// i % 4 (normals use two words: counter {i / 2, ...}, words 2*(i%2) and 2*(i%2)+1).
// Dropout and reparameterization draw element i of their tensor at index
// key.first_element + i, so a data-parallel rank holding rows [r, r + m) of a step's
// global batch sees the noise that one process training the whole batch sees.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define EWE_HOST_DEVICE __host__ __device__
#else
#define EWE_HOST_DEVICE
#endif

namespace ewe {

struct PhiloxKey {
    std::uint64_t seed = 0;
    std::uint32_t stream = 0;   // one per consumer (a dropout layer, the sampler, ...)
    std::uint64_t offset = 0;   // advances once per training step
    // Index in the step's whole draw of this tensor's element 0: 0 in one process; on a
    // data-parallel rank, (global index of the batch's row 0) * (elements per row).
    std::uint64_t first_element = 0;
};

struct Philox4x32 {
    std::uint32_t v[4];
};

EWE_HOST_DEVICE inline void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
    const std::uint64_t product = static_cast<std::uint64_t>(a) * b;
    hi = static_cast<std::uint32_t>(product >> 32);
    lo = static_cast<std::uint32_t>(product);
}

// Ten rounds of Philox4x32 on `counter` under a 64-bit key.
EWE_HOST_DEVICE inline Philox4x32 philox4x32_10(Philox4x32 counter, std::uint32_t key0, std::uint32_t key1) {
    constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
    constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
        std::uint32_t hi0, lo0, hi1, lo1;
        philox_mulhilo(kMul0, counter.v[0], hi0, lo0);
        philox_mulhilo(kMul1, counter.v[2], hi1, lo1);
        counter = Philox4x32{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
        key0 += kWeyl0;
        key1 += kWeyl1;
    }
    return counter;
}

// The block of four words that serves elements [4*block, 4*block + 4).
EWE_HOST_DEVICE inline Philox4x32 philox_block(const PhiloxKey& key, std::uint32_t block) {
    const Philox4x32 counter{{block, key.stream, static_cast<std::uint32_t>(key.offset),
                              static_cast<std::uint32_t>(key.offset >> 32)}};
    return philox4x32_10(counter, static_cast<std::uint32_t>(key.seed), static_cast<std::uint32_t>(key.seed >> 32));
}

// 32 random bits for element i.
EWE_HOST_DEVICE inline std::uint32_t philox_bits(const PhiloxKey& key, std::uint64_t i) {
    return philox_block(key, static_cast<std::uint32_t>(i / 4)).v[i % 4];
}

// Uniform in (0, 1]: 24 random bits, never 0 so that log() is finite.
EWE_HOST_DEVICE inline float philox_uniform_open0(std::uint32_t bits) {
    return static_cast<float>((bits >> 8) + 1u) * (1.0f / 16777216.0f);
}

// Dropout decision shared by both backends: element kept when its 24-bit draw is at
// or above rate * 2^24 (an exact integer comparison, so CPU and GPU agree bit for bit).
EWE_HOST_DEVICE inline bool philox_keep(const PhiloxKey& key, std::uint64_t i, std::uint32_t drop_threshold) {
    return (philox_bits(key, i) >> 8) >= drop_threshold;
}

inline std::uint32_t dropout_threshold(double rate) {
    return static_cast<std::uint32_t>(rate * 16777216.0);
}

// Standard normal for element i (Box-Muller, cosine branch), computed in float on both
// backends; the two backends may differ in the last ulps of log/cos.
EWE_HOST_DEVICE inline float philox_normal(const PhiloxKey& key, std::uint64_t i) {
    const Philox4x32 block = philox_block(key, static_cast<std::uint32_t>(i / 2));
    const unsigned word = static_cast<unsigned>(i % 2) * 2;
    const float u1 = philox_uniform_open0(block.v[word]);
    const float u2 = philox_uniform_open0(block.v[word + 1]);
    constexpr float kTwoPi = 6.28318530717958647692f;
#if defined(__CUDA_ARCH__)
    return sqrtf(-2.0f * logf(u1)) * cosf(kTwoPi * u2);
#else
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(kTwoPi * u2);
#endif
}

}  // namespace ewe
