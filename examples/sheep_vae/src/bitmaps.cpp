// Quick, Draw! bitmaps in and out: .npy files read by ewe::io::read_quickdraw_npy
// (load_bitmaps), the default data source ($EWE_DATA/sheep.npy or procedural sheep,
// ewe/data/procedural_sheep.hpp), drawings of another class planted among them
// (--plant) and sheets of drawings written as PNG.
#include "common.hpp"

#include <algorithm>
#include <cstdlib>

#include <ewe/data/procedural_sheep.hpp>
#include <ewe/io/image_sheet.hpp>
#include <ewe/io/quickdraw.hpp>

namespace sheep {

Bitmaps bitmaps_from_bytes(const std::uint8_t* bytes, std::int64_t n, std::string source) {
    return Bitmaps{ewe::io::quickdraw_images(bytes, n), std::move(source)};
}

Bitmaps load_bitmaps(const fs::path& path, std::int64_t limit, const std::string& flag) {
    return Bitmaps{ewe::io::read_quickdraw_npy(path, limit, flag), path.string()};
}

Bitmaps default_bitmaps(std::int64_t limit, std::uint64_t seed) {
    if (const char* dir = std::getenv("EWE_DATA"); dir && *dir) {
        const fs::path p = fs::path(dir) / "sheep.npy";
        if (fs::exists(p)) return load_bitmaps(p, limit, "$EWE_DATA/sheep.npy");
    }
    const std::int64_t n = limit > 0 ? limit : 1000;
    const auto bytes = ewe::procedural_sheep(n, seed);
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
