// Quick, Draw! bitmaps (the data set's numpy_bitmap .npy files, 28x28 drawings): uint8
// (N, 784) or (N, 28, 28) with 0..255 ink, or float32 of those shapes with values in
// [0, 1], read as float images (N, 28, 28, 1) in [0, 1] (uint8 v becomes v / 255). Every
// rejection is an ewe::Error naming the caller's `who` (e.g. a program's --data) and
// the file: not a regular file, not .npy, another shape or dtype, no drawings, a
// non-finite or out-of-range float. ewe::io::read_images_npy reads images of any shape
// and scale; this reader holds the data set's own contract.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>

#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/io/files.hpp"
#include "ewe/io/npy.hpp"

namespace ewe::io {

inline constexpr std::int64_t kQuickDrawSide = 28, kQuickDrawPixels = kQuickDrawSide * kQuickDrawSide;

// n drawings of 784 bytes (0 background, 255 ink) as images (n, 28, 28, 1) in [0, 1].
inline Tensor<float> quickdraw_images(const std::uint8_t* bytes, std::int64_t n) {
    Tensor<float> images(Shape{n, kQuickDrawSide, kQuickDrawSide, 1});
    for (std::int64_t i = 0; i < n * kQuickDrawPixels; ++i) images[i] = float(bytes[i]) / 255.0f;
    return images;
}

// The first `limit` drawings of `path` (all when limit is 0).
inline Tensor<float> read_quickdraw_npy(const std::filesystem::path& path, std::int64_t limit, const std::string& who) {
    const std::string file = path.string();
    if (file.empty()) fail(who, ": the path is empty (expected a .npy file of drawings)");
    require_file(path, who);
    NpyArray a;
    try {
        a = read_npy(path);
    } catch (const Error& e) {
        fail(who, ": ", e.what());
    }
    const Shape& s = a.shape;
    const bool flat = s.rank() == 2 && s[1] == kQuickDrawPixels;
    const bool square = s.rank() == 3 && s[1] == kQuickDrawSide && s[2] == kQuickDrawSide;
    if (!flat && !square)
        fail(who, ": ", file, ": expected Quick, Draw! bitmaps of shape (N, 784) or (N, 28, 28), found ", s);
    if (s[0] == 0) fail(who, ": ", file, ": the file holds no drawings (shape ", s, ")");
    if (a.dtype != DType::u8 && a.dtype != DType::f32)
        fail(who, ": ", file, ": expected dtype uint8 (0..255) or float32 (0..1), found ", to_string(a.dtype));
    const std::int64_t n = limit > 0 ? std::min<std::int64_t>(limit, s[0]) : s[0];
    if (a.dtype == DType::u8) return quickdraw_images(reinterpret_cast<const std::uint8_t*>(a.bytes.data()), n);
    Tensor<float> images(Shape{n, kQuickDrawSide, kQuickDrawSide, 1});
    const float* src = reinterpret_cast<const float*>(a.bytes.data());
    for (std::int64_t i = 0; i < n * kQuickDrawPixels; ++i) {
        const float v = src[i];
        if (!std::isfinite(v))
            fail(who, ": ", file, ": non-finite value ", v, " at drawing ", i / kQuickDrawPixels, ", pixel ",
                 i % kQuickDrawPixels);
        if (v < 0.0f || v > 1.0f)
            fail(who, ": ", file, ": float32 bitmaps must lie in [0, 1], found ", v, " at drawing ", i / kQuickDrawPixels,
                 ", pixel ", i % kQuickDrawPixels, " (uint8 files hold 0..255)");
        images[i] = v;
    }
    return images;
}

}  // namespace ewe::io
