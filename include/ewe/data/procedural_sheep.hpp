// Procedural sheep doodles: a synthetic stand-in for the Quick, Draw! sheep class, the
// images the SheepVae's defaults describe (ewe/models/sheep_vae.hpp), so that a program,
// a test or a benchmark trains on drawings without the download. 28x28 uint8 bitmaps (0
// background, 255 ink) in the layout of the Quick, Draw! numpy_bitmap files
// (io::quickdraw_images turns them into the model's input). A sheep is a woolly cloud
// body, a head, 0-4 legs of random length; some are black (filled body). Deterministic
// for a seed on every machine (Philox, no std:: distributions): `sheep_vae train`
// without data trains on procedural_sheep(1000, seed).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ewe/core/philox.hpp"

namespace ewe {

namespace detail {

class DoodleCanvas {
public:
    static constexpr int kSize = 28;

    // Anti-aliased stroke of width `w` from (x0, y0) to (x1, y1), in pixel units.
    void segment(double x0, double y0, double x1, double y1, double w) {
        const int lo_x = std::max(0, int(std::floor(std::min(x0, x1) - w - 1)));
        const int hi_x = std::min(kSize - 1, int(std::ceil(std::max(x0, x1) + w + 1)));
        const int lo_y = std::max(0, int(std::floor(std::min(y0, y1) - w - 1)));
        const int hi_y = std::min(kSize - 1, int(std::ceil(std::max(y0, y1) + w + 1)));
        const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
        for (int y = lo_y; y <= hi_y; ++y)
            for (int x = lo_x; x <= hi_x; ++x) {
                const double px = x + 0.5, py = y + 0.5;
                double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0.0;
                t = std::clamp(t, 0.0, 1.0);
                const double ex = x0 + t * dx - px, ey = y0 + t * dy - py;
                const double d = std::sqrt(ex * ex + ey * ey);
                ink(x, y, std::clamp(0.5 * w + 0.5 - d, 0.0, 1.0));
            }
    }
    void ink(int x, int y, double v) {
        if (x < 0 || y < 0 || x >= kSize || y >= kSize) return;
        double& p = pixels_[std::size_t(y) * kSize + std::size_t(x)];
        p = std::max(p, v);
    }
    void write(std::uint8_t* out) const {
        for (int i = 0; i < kSize * kSize; ++i) out[i] = std::uint8_t(std::lround(255.0 * std::clamp(pixels_[i], 0.0, 1.0)));
    }

private:
    std::vector<double> pixels_ = std::vector<double>(kSize * kSize, 0.0);
};

// Uniform doubles in [0, 1) from Philox stream (seed, sample).
class DoodleRandom {
public:
    DoodleRandom(std::uint64_t seed, std::uint64_t sample) : key_{seed, 0x5EEFu, sample} {}
    double uniform() { return double(ewe::philox_bits(key_, next_++)) / 4294967296.0; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    int integer(int lo, int hi) { return lo + int(uniform() * (hi - lo + 1)); }  // [lo, hi]

private:
    ewe::PhiloxKey key_;
    std::uint64_t next_ = 0;
};

// Draws sheep number `index` of the family `seed` into `out` (784 bytes, row-major).
inline void draw_procedural_sheep(std::uint64_t seed, std::uint64_t index, std::uint8_t* out) {
    constexpr double kPi = 3.14159265358979323846;
    DoodleRandom r(seed, index);
    DoodleCanvas c;
    const bool facing_left = r.uniform() < 0.5;
    const bool black = r.uniform() < 0.15;
    const double pen = r.uniform(1.1, 1.8);
    const double cx = r.uniform(12.5, 15.5), cy = r.uniform(11.0, 14.0);
    const double rx = r.uniform(6.0, 9.0), ry = r.uniform(4.0, 6.5);
    const int bumps = r.integer(7, 12);
    const double bump = r.uniform(0.08, 0.2);
    const double phase = r.uniform(0.0, 2 * kPi);
    auto radius = [&](double a) { return 1.0 + bump * std::abs(std::sin(0.5 * bumps * a + phase)); };
    // Woolly cloud outline: an ellipse with scalloped bumps.
    constexpr int kSteps = 72;
    double px = cx + rx * radius(0.0), py = cy;
    for (int s = 1; s <= kSteps; ++s) {
        const double a = 2 * kPi * s / kSteps;
        const double qx = cx + rx * radius(a) * std::cos(a), qy = cy + ry * radius(a) * std::sin(a);
        c.segment(px, py, qx, qy, pen);
        px = qx;
        py = qy;
    }
    if (black)  // a black sheep: fill the cloud
        for (int y = 0; y < DoodleCanvas::kSize; ++y)
            for (int x = 0; x < DoodleCanvas::kSize; ++x) {
                const double ux = (x + 0.5 - cx) / rx, uy = (y + 0.5 - cy) / ry;
                const double a = std::atan2(uy, ux);
                if (std::sqrt(ux * ux + uy * uy) < radius(a)) c.ink(x, y, 1.0);
            }
    // Head: a small ellipse on one side, slightly above the middle, with an eye.
    const double side = facing_left ? -1.0 : 1.0;
    const double hx = cx + side * (rx + r.uniform(0.5, 2.5)), hy = cy - r.uniform(0.0, 3.0);
    const double hr = r.uniform(1.8, 3.0), hry = hr * r.uniform(0.8, 1.3);
    double qx = hx + hr, qy = hy;
    for (int s = 1; s <= 24; ++s) {
        const double a = 2 * kPi * s / 24;
        const double nx = hx + hr * std::cos(a), ny = hy + hry * std::sin(a);
        c.segment(qx, qy, nx, ny, pen);
        qx = nx;
        qy = ny;
    }
    if (r.uniform() < 0.6) c.ink(int(hx + side * 0.8), int(hy - 0.5), 1.0);
    // Legs: none (about one in six), two or four, of random length.
    const double u = r.uniform();
    const int legs = u < 0.17 ? 0 : u < 0.45 ? 2 : 4;
    const double length = r.uniform(2.0, 8.0);
    for (int l = 0; l < legs; ++l) {
        const double t = legs == 2 ? (l == 0 ? -0.5 : 0.5) : -0.65 + 1.3 * l / 3.0;
        const double lx = cx + t * rx, top = cy + ry * 0.9;
        const double bottom = std::min(27.0, top + length * r.uniform(0.8, 1.2));
        c.segment(lx, top, lx + r.uniform(-0.8, 0.8), bottom, pen);
    }
    c.write(out);
}

}  // namespace detail

// `count` procedural sheep doodles (count x 784 bytes, row-major), the same for the same seed.
inline std::vector<std::uint8_t> procedural_sheep(std::int64_t count, std::uint64_t seed) {
    std::vector<std::uint8_t> out(std::size_t(count) * 784);
    for (std::int64_t i = 0; i < count; ++i) detail::draw_procedural_sheep(seed, std::uint64_t(i), out.data() + i * 784);
    return out;
}

}  // namespace ewe
