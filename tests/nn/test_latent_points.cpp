// The latent points a VAE's decoder is given (ewe/models/vae_inference.hpp): latent_grid
// covers [-range, range]^2 in image-sheet order (x rising along a row, y falling down the
// rows); latent_draws is centre + sd * N(0, I), the same for the same seed, another for
// another seed, and refuses a missing centre.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <ewe/core/error.hpp>
#include <ewe/models/vae_inference.hpp>

TEST_CASE("latent_grid: g x g points over [-range, range]^2, x left to right, y top to bottom") {
    const std::vector<double> z = ewe::latent_grid<double>(3, 2.0);
    REQUIRE(z.size() == 18);
    const std::vector<double> expected = {-2, 2, 0, 2, 2, 2, -2, 0, 0, 0, 2, 0, -2, -2, 0, -2, 2, -2};
    for (std::size_t i = 0; i < z.size(); ++i) CHECK(z[i] == expected[i]);
    const std::vector<float> one = ewe::latent_grid<float>(1, 3.0);
    REQUIRE(one.size() == 2);
    CHECK(one[0] == -3.0f);
    CHECK(one[1] == 3.0f);
    CHECK_THROWS_AS(ewe::latent_grid<float>(0, 1.0), ewe::Error);
    CHECK_THROWS_AS(ewe::latent_grid<float>(2, 0.0), ewe::Error);
}

TEST_CASE("latent_draws: centre + sd * N(0, I), reproducible from the seed") {
    const std::int64_t n = 4000;
    const std::vector<double> center = {1.5, -2.0};
    const std::vector<float> z = ewe::latent_draws<float>(n, center, 0.5, 7);
    REQUIRE(z.size() == std::size_t(2 * n));
    for (std::size_t k = 0; k < 2; ++k) {
        double mean = 0, sq = 0;
        for (std::int64_t i = 0; i < n; ++i) mean += z[std::size_t(2 * i) + k];
        mean /= double(n);
        for (std::int64_t i = 0; i < n; ++i) sq += std::pow(z[std::size_t(2 * i) + k] - mean, 2);
        CHECK(std::abs(mean - center[k]) < 0.05);                  // 0.5 / sqrt(4000) = 0.008 standard error
        CHECK(std::abs(std::sqrt(sq / double(n)) - 0.5) < 0.03);
    }
    CHECK(ewe::latent_draws<float>(n, center, 0.5, 7) == z);
    CHECK(ewe::latent_draws<float>(n, center, 0.5, 8) != z);
    const std::vector<float> at_center = ewe::latent_draws<float>(3, center, 0.0, 7);
    CHECK(at_center == std::vector<float>{1.5f, -2.0f, 1.5f, -2.0f, 1.5f, -2.0f});
    CHECK_THROWS_AS(ewe::latent_draws<float>(3, {}, 1.0, 7), ewe::Error);
}
