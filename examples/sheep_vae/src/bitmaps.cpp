// Quick, Draw! bitmaps in and out: .npy files checked and read as floats in [0, 1]
// (load_bitmaps), the default data source ($EWE_DATA/sheep.npy or procedural sheep),
// drawings of another class planted among them (--plant) and sheets of drawings
// written as PNG.
#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <ewe/io/files.hpp>
#include <ewe/io/image_sheet.hpp>
#include <ewe/io/npy.hpp>

namespace sheep {

Bitmaps bitmaps_from_bytes(const std::uint8_t* bytes, std::int64_t n, std::string source) {
    Bitmaps b{ewe::Tensor<float>(ewe::Shape{n, kSide, kSide, 1}), std::move(source)};
    for (std::int64_t i = 0; i < n * kPixels; ++i) b.images[i] = float(bytes[i]) / 255.0f;
    return b;
}

Bitmaps load_bitmaps(const fs::path& path, std::int64_t limit, const std::string& flag) {
    const std::string file = path.string();
    if (file.empty()) fail(flag, ": the path is empty (expected a .npy file of drawings)");
    ewe::io::require_file(path, flag);
    ewe::io::NpyArray a;
    try {
        a = ewe::io::read_npy(path);
    } catch (const ewe::Error& e) {
        fail(flag, ": ", e.what());
    }
    const ewe::Shape& s = a.shape;
    const bool flat = s.rank() == 2 && s[1] == kPixels;
    const bool square = s.rank() == 3 && s[1] == kSide && s[2] == kSide;
    if (!flat && !square)
        fail(flag, ": ", file, ": expected Quick, Draw! bitmaps of shape (N, 784) or (N, 28, 28), found ", s);
    if (s[0] == 0) fail(flag, ": ", file, ": the file holds no drawings (shape ", s, ")");
    if (a.dtype != ewe::io::DType::u8 && a.dtype != ewe::io::DType::f32)
        fail(flag, ": ", file, ": expected dtype uint8 (0..255) or float32 (0..1), found ", ewe::io::to_string(a.dtype));
    const std::int64_t n = limit > 0 ? std::min<std::int64_t>(limit, s[0]) : s[0];
    if (a.dtype == ewe::io::DType::u8)
        return bitmaps_from_bytes(reinterpret_cast<const std::uint8_t*>(a.bytes.data()), n, file);
    Bitmaps b{ewe::Tensor<float>(ewe::Shape{n, kSide, kSide, 1}), file};
    const float* src = reinterpret_cast<const float*>(a.bytes.data());
    for (std::int64_t i = 0; i < n * kPixels; ++i) {
        const float v = src[i];
        if (!std::isfinite(v))
            fail(flag, ": ", file, ": non-finite value ", v, " at drawing ", i / kPixels, ", pixel ", i % kPixels);
        if (v < 0.0f || v > 1.0f)
            fail(flag, ": ", file, ": float32 bitmaps must lie in [0, 1], found ", v, " at drawing ", i / kPixels,
                 ", pixel ", i % kPixels, " (uint8 files hold 0..255)");
        b.images[i] = v;
    }
    return b;
}

Bitmaps default_bitmaps(std::int64_t limit, std::uint64_t seed) {
    if (const char* dir = std::getenv("EWE_DATA"); dir && *dir) {
        const fs::path p = fs::path(dir) / "sheep.npy";
        if (fs::exists(p)) return load_bitmaps(p, limit, "$EWE_DATA/sheep.npy");
    }
    const std::int64_t n = limit > 0 ? limit : 1000;
    const auto bytes = procedural_sheep(n, seed);
    return bitmaps_from_bytes(bytes.data(), n, "procedural");
}

Planted plant_drawings(Bitmaps& data, const std::string& spec, const std::string& flag, std::ostream& log) {
    const std::size_t colon = spec.rfind(':');
    char* end = nullptr;
    const long long k = colon == std::string::npos ? 0 : std::strtoll(spec.c_str() + colon + 1, &end, 10);
    if (colon == std::string::npos || colon == 0 || k <= 0 || *end != '\0')
        fail(flag, ": expected OTHER.npy:N with N > 0, found '", spec, "'");
    Planted planted{spec.substr(0, colon), 0};
    Bitmaps other = load_bitmaps(planted.file, k, flag);
    planted.count = other.count();
    if (planted.count < k)
        print(log, "%s: %s holds only %lld drawings, planting all of them\n", flag.c_str(), planted.file.c_str(),
              (long long)planted.count);
    ewe::Tensor<float> all(ewe::Shape{data.count() + planted.count, kSide, kSide, 1});
    std::copy_n(data.images.data(), data.images.numel(), all.data());
    std::copy_n(other.images.data(), other.images.numel(), all.data() + data.images.numel());
    data.images = std::move(all);
    return planted;
}

void write_sheet(const fs::path& path, const std::vector<const float*>& drawings, int columns) {
    ewe::io::write_image_sheet(path, drawings, int(kSide), int(kSide), columns);
}

}  // namespace sheep
