// Procedural sheep doodles (ewe/data/procedural_sheep.hpp), the data behind
// `sheep_vae train` without a download: byte for byte what the example program drew
// before the generator moved into the library (CRC-32 of its output at commit 4f59139),
// each drawing keyed by (seed, index) alone, inked and blank in the Quick, Draw! layout.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include <ewe/data/procedural_sheep.hpp>
#include <ewe/io/crc.hpp>
#include <ewe/io/quickdraw.hpp>

namespace {

std::uint32_t crc_of(const std::vector<std::uint8_t>& bytes) { return ewe::io::crc32(bytes.data(), bytes.size()); }

}  // namespace

TEST_CASE("procedural_sheep: the same bytes as the example's generator drew (README's first command: 1000, seed 42)") {
    CHECK(crc_of(ewe::procedural_sheep(1000, 42)) == 0x2b125b08u);
    CHECK(crc_of(ewe::procedural_sheep(16, 3)) == 0xc22c082fu);
    CHECK(crc_of(ewe::procedural_sheep(64, 0)) == 0x84469abfu);
}

TEST_CASE("procedural_sheep: 784 bytes a drawing, keyed by (seed, index): a prefix of more, other for another seed") {
    const std::vector<std::uint8_t> few = ewe::procedural_sheep(5, 7), more = ewe::procedural_sheep(9, 7);
    REQUIRE(few.size() == 5 * 784);
    REQUIRE(more.size() == 9 * 784);
    CHECK(std::equal(few.begin(), few.end(), more.begin()));
    CHECK(ewe::procedural_sheep(5, 8) != few);
    CHECK(ewe::procedural_sheep(0, 7).empty());
    // Every drawing has ink and background, and full-strength strokes.
    for (std::int64_t i = 0; i < 9; ++i) {
        const auto first = more.begin() + i * 784, last = first + 784;
        CHECK(std::count(first, last, std::uint8_t(0)) > 392);
        CHECK(*std::max_element(first, last) == 255);
    }
    // In the layout of the Quick, Draw! files: the model's input in [0, 1].
    const ewe::Tensor<float> x = ewe::io::quickdraw_images(more.data(), 9);
    CHECK(x.shape() == ewe::Shape{9, 28, 28, 1});
    CHECK(*std::max_element(x.data(), x.data() + x.numel()) == 1.0f);
}
