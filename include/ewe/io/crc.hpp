// Table-driven reflected CRC-32 of any polynomial: CRC-32 (ISO-HDLC, 0xEDB88320) for
// PNG chunks and CRC-32C (Castagnoli, 0x82F63B78) for TFRecord framing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace ewe::io {

template <std::uint32_t ReflectedPolynomial>
std::uint32_t reflected_crc32(const void* data, std::size_t n, std::uint32_t crc = 0) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ ReflectedPolynomial : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    const auto* p = static_cast<const unsigned char*>(data);
    crc = ~crc;
    for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

inline std::uint32_t crc32(const void* data, std::size_t n, std::uint32_t crc = 0) {
    return reflected_crc32<0xEDB88320u>(data, n, crc);
}

inline std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) {
    return reflected_crc32<0x82F63B78u>(data, n, crc);
}

}  // namespace ewe::io
