// Test points shaped like a VAE's latent space (a tight blob, a looser one and a wide
// background, in equal shares), drawn from a seeded generator: the inputs of the
// clustering tests that compare the CUDA kernels with the CPU results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace ewe::test {

// n x d row-major points.
inline std::vector<double> latent_like(std::int64_t n, int d, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> x(static_cast<std::size_t>(n) * d);
    for (std::int64_t i = 0; i < n; ++i) {
        const int kind = static_cast<int>(rng() % 3);
        for (int k = 0; k < d; ++k)
            x[i * d + k] = kind == 0 ? 0.1 * normal(rng) - 1 : kind == 1 ? 0.2 * normal(rng) + 1 : 1.5 * normal(rng);
    }
    return x;
}

}  // namespace ewe::test
