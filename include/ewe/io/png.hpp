// PNG writer with no zlib dependency (RFC 2083 PNG, RFC 1950 zlib, RFC 1951 deflate):
// 8-bit grayscale or RGB, filter type 0, one zlib stream of fixed-Huffman deflate
// blocks with greedy LZ77 matching (hash of 3 bytes), CRC32 per chunk, Adler32.
// Files are written atomically (ewe/io/atomic_file.hpp): the old file or the new one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/atomic_file.hpp"
#include "ewe/io/crc.hpp"

namespace ewe::io {

inline std::uint32_t adler32(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint32_t a = 1, b = 0;
    for (std::size_t i = 0; i < n; ++i) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return (b << 16) | a;
}

namespace detail {

class BitWriter {
public:
    std::vector<std::uint8_t> bytes;
    // Appends the low `n` bits of v, least significant first (deflate's bit order).
    void bits(std::uint32_t v, int n) {
        for (int i = 0; i < n; ++i) {
            if (used_ == 0) bytes.push_back(0);
            bytes.back() |= std::uint8_t(((v >> i) & 1u) << used_);
            used_ = (used_ + 1) & 7;
        }
    }
    // A Huffman code of `n` bits, most significant bit first.
    void code(std::uint32_t c, int n) {
        for (int i = n - 1; i >= 0; --i) bits((c >> i) & 1u, 1);
    }

private:
    int used_ = 0;
};

// Fixed Huffman code of literal/length symbol s (RFC 1951 3.2.6).
inline void fixed_literal(BitWriter& w, int s) {
    if (s < 144) w.code(0x30 + s, 8);
    else if (s < 256) w.code(0x190 + (s - 144), 9);
    else if (s < 280) w.code(s - 256, 7);
    else w.code(0xC0 + (s - 280), 8);
}

inline void fixed_match(BitWriter& w, int length, int distance) {
    static constexpr int kLenBase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                         35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static constexpr int kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static constexpr int kDistBase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                          257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static constexpr int kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    int l = 28;
    while (kLenBase[l] > length) --l;
    fixed_literal(w, 257 + l);
    w.bits(std::uint32_t(length - kLenBase[l]), kLenExtra[l]);
    int d = 29;
    while (kDistBase[d] > distance) --d;
    w.code(std::uint32_t(d), 5);
    w.bits(std::uint32_t(distance - kDistBase[d]), kDistExtra[d]);
}

}  // namespace detail

// A zlib stream (RFC 1950) of `data`: one final fixed-Huffman deflate block with
// greedy LZ77 matches (window 32 KiB, lengths 3..258).
inline std::vector<std::uint8_t> zlib_compress(const std::vector<std::uint8_t>& data) {
    detail::BitWriter w;
    w.bits(0x78, 8);
    w.bits(0x01, 8);  // CMF/FLG: deflate, 32K window, (0x7801 % 31 == 0)
    w.bits(1, 1);     // BFINAL
    w.bits(1, 2);     // BTYPE = 01, fixed Huffman
    constexpr int kHashBits = 15, kWindow = 32768;
    std::vector<std::int64_t> head(std::size_t(1) << kHashBits, -1);
    const std::size_t n = data.size();
    auto hash = [&](std::size_t i) {
        return (std::uint32_t(data[i]) << 10 ^ std::uint32_t(data[i + 1]) << 5 ^ data[i + 2]) & ((1u << kHashBits) - 1);
    };
    std::size_t i = 0;
    while (i < n) {
        int best = 0;
        std::size_t best_dist = 0;
        if (i + 3 <= n) {
            const std::uint32_t h = hash(i);
            const std::int64_t cand = head[h];
            head[h] = std::int64_t(i);
            if (cand >= 0 && i - std::size_t(cand) <= kWindow) {
                const std::size_t max_len = std::min<std::size_t>(258, n - i);
                std::size_t len = 0;
                while (len < max_len && data[std::size_t(cand) + len] == data[i + len]) ++len;
                if (len >= 3) best = int(len), best_dist = i - std::size_t(cand);
            }
        }
        if (best >= 3) {
            detail::fixed_match(w, best, int(best_dist));
            for (std::size_t k = i + 1; k < i + std::size_t(best) && k + 3 <= n; ++k) head[hash(k)] = std::int64_t(k);
            i += std::size_t(best);
        } else {
            detail::fixed_literal(w, data[i]);
            ++i;
        }
    }
    detail::fixed_literal(w, 256);  // end of block
    std::vector<std::uint8_t> out = std::move(w.bytes);
    const std::uint32_t a = adler32(data.data(), data.size());
    for (int b = 3; b >= 0; --b) out.push_back(std::uint8_t(a >> (8 * b)));
    return out;
}

// Encodes an 8-bit image (`channels` 1 = gray, 3 = RGB, 4 = RGBA; rows top to bottom)
// as PNG bytes.
inline std::vector<std::uint8_t> encode_png(int width, int height, int channels, const std::uint8_t* pixels) {
    EWE_REQUIRE(width > 0 && height > 0, "encode_png: expected a positive size, found ", width, "x", height);
    EWE_REQUIRE(channels == 1 || channels == 3 || channels == 4, "encode_png: channels must be 1, 3 or 4, found ",
                channels);
    std::vector<std::uint8_t> raw;
    raw.reserve(std::size_t(height) * (std::size_t(width) * channels + 1));
    for (int y = 0; y < height; ++y) {
        raw.push_back(0);  // filter: none
        const std::uint8_t* row = pixels + std::size_t(y) * width * channels;
        raw.insert(raw.end(), row, row + std::size_t(width) * channels);
    }
    std::vector<std::uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    auto chunk = [&](const char* type, const std::vector<std::uint8_t>& body) {
        const std::uint32_t n = std::uint32_t(body.size());
        for (int b = 3; b >= 0; --b) png.push_back(std::uint8_t(n >> (8 * b)));
        std::vector<std::uint8_t> typed(type, type + 4);
        typed.insert(typed.end(), body.begin(), body.end());
        png.insert(png.end(), typed.begin(), typed.end());
        const std::uint32_t c = crc32(typed.data(), typed.size());
        for (int b = 3; b >= 0; --b) png.push_back(std::uint8_t(c >> (8 * b)));
    };
    std::vector<std::uint8_t> ihdr;
    for (std::uint32_t v : {std::uint32_t(width), std::uint32_t(height)})
        for (int b = 3; b >= 0; --b) ihdr.push_back(std::uint8_t(v >> (8 * b)));
    const std::uint8_t color = channels == 1 ? 0 : channels == 3 ? 2 : 6;
    ihdr.insert(ihdr.end(), {8, color, 0, 0, 0});
    chunk("IHDR", ihdr);
    chunk("IDAT", zlib_compress(raw));
    chunk("IEND", {});
    return png;
}

inline void write_png(const std::filesystem::path& path, int width, int height, int channels,
                      const std::uint8_t* pixels) {
    const std::vector<std::uint8_t> png = encode_png(width, height, channels, pixels);
    write_file_atomically(path, "write_png", [&](std::ostream& out) {
        out.write(reinterpret_cast<const char*>(png.data()), std::streamsize(png.size()));
    });
}

}  // namespace ewe::io
