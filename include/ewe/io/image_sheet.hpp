// Image sheets: grayscale images with values in [0, 1] (1 = ink) tiled into one PNG
// as black ink on white, `columns` wide, 2-pixel white gutters, `scale` pixels per
// image pixel.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/png.hpp"

namespace ewe::io {

// Each of `images` points at height * width values, row-major.
inline void write_image_sheet(const std::filesystem::path& path, const std::vector<const float*>& images, int height,
                              int width, int columns, int scale = 2) {
    const int count = int(images.size());
    if (count == 0) fail("write_image_sheet: ", path.string(), ": no images to write");
    EWE_REQUIRE(height > 0 && width > 0 && scale > 0, "write_image_sheet: ", path.string(),
                ": height, width and scale must be positive");
    columns = std::max(1, std::min(columns, count));
    const int rows = (count + columns - 1) / columns, gutter = 2;
    const int cell_w = width * scale + gutter, cell_h = height * scale + gutter;
    const int w = columns * cell_w + gutter, h = rows * cell_h + gutter;
    std::vector<std::uint8_t> pixels(std::size_t(w) * std::size_t(h), 255);
    for (int k = 0; k < count; ++k) {
        const int ox = gutter + (k % columns) * cell_w, oy = gutter + (k / columns) * cell_h;
        for (int y = 0; y < height * scale; ++y)
            for (int x = 0; x < width * scale; ++x) {
                const float v = std::clamp(images[std::size_t(k)][(y / scale) * width + x / scale], 0.0f, 1.0f);
                pixels[std::size_t(oy + y) * std::size_t(w) + std::size_t(ox + x)] =
                    std::uint8_t(std::lround(255.0f * (1.0f - v)));
            }
    }
    write_png(path, w, h, 1, pixels.data());
}

}  // namespace ewe::io
