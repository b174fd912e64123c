// Content fingerprints: 64-bit FNV-1a of bytes, and of a host tensor's element type,
// shape and elements, to record what data a run was trained on and to recognise it
// when the run is resumed (as text: hash_text, parse_hash_text). FNV-1a catches other
// data, not an adversary: it is not a cryptographic hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"

namespace ewe::io {

inline constexpr std::uint64_t kFnv1aOffsetBasis = 0xcbf29ce484222325ull;
inline constexpr std::uint64_t kFnv1aPrime = 0x100000001b3ull;

// FNV-1a of `n` bytes, continuing from `hash` (the offset basis for a new hash).
inline std::uint64_t fnv1a64(const void* data, std::size_t n, std::uint64_t hash = kFnv1aOffsetBasis) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * kFnv1aPrime;
    return hash;
}

// FNV-1a of the element type (its size and kind: float, signed or unsigned integer),
// the rank, each dimension (int64, this machine's byte order) and the elements' bytes of
// a host tensor: equal for equal contents, different (but for a 2^-64 chance) when an
// element, the shape or the element type differs.
template <class T>
std::uint64_t content_hash(TensorView<const T> t) {
    EWE_REQUIRE(t.numel() == 0 || t.device() == Device::cpu, "content_hash: the tensor is on ", to_string(t.device()),
                "; copy it to the host first");
    const std::int64_t element_size = sizeof(T), rank = t.shape().rank();
    const std::int64_t kind = std::is_floating_point_v<T> ? 2 : std::is_signed_v<T> ? 1 : 0;
    std::uint64_t hash = fnv1a64(&element_size, sizeof element_size);
    hash = fnv1a64(&kind, sizeof kind, hash);
    hash = fnv1a64(&rank, sizeof rank, hash);
    for (int a = 0; a < t.shape().rank(); ++a) {
        const std::int64_t dim = t.shape()[a];
        hash = fnv1a64(&dim, sizeof dim, hash);
    }
    return fnv1a64(t.data(), std::size_t(t.numel()) * sizeof(T), hash);
}

// A hash as text: "0x" and 16 hexadecimal digits.
inline std::string hash_text(std::uint64_t hash) {
    char text[24];
    std::snprintf(text, sizeof text, "0x%016llx", static_cast<unsigned long long>(hash));
    return text;
}

// hash_text read back; anything else (and 0, which no hash is recorded as) is an
// ewe::Error "WHAT = 'TEXT' is not 0x and 16 hexadecimal digits".
inline std::uint64_t parse_hash_text(const std::string& text, const std::string& what) {
    char* end = nullptr;
    const std::uint64_t hash = std::strtoull(text.c_str(), &end, 16);
    if (text.size() != 18 || text.rfind("0x", 0) != 0 || *end != '\0' || hash == 0)
        fail(what, " = '", text, "' is not 0x and 16 hexadecimal digits");
    return hash;
}

}  // namespace ewe::io
