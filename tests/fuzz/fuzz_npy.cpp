// libFuzzer target for ewe::io::read_npy: any bytes must either read as an array whose
// shape, dtype and byte count agree, or be rejected with ewe::Error. Anything else (a
// crash, a sanitizer report, another exception, a huge allocation) is a finding.
// Arrays that read are converted to a tensor and written back, and must read back equal.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ewe/io/npy.hpp"
#include "fuzz_common.hpp"

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_npy: invariant violated: %s\n", what);
        std::abort();
    }
}

template <class T>
void round_trip(const ewe::io::NpyArray& a) {
    const auto again_path = ewe_fuzz::scratch("_again.npy");
    ewe::io::write_npy(again_path, reinterpret_cast<const T*>(a.bytes.data()), a.shape);
    const ewe::io::NpyArray b = ewe::io::read_npy(again_path);
    check(b.dtype == a.dtype && b.shape == a.shape && b.bytes == a.bytes, "write_npy then read_npy changes the array");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path = ewe_fuzz::scratch(".npy");
    ewe_fuzz::put(path, data, size);
    ewe::io::NpyArray a;
    try {
        a = ewe::io::read_npy(path);
    } catch (const ewe::Error& e) {
        check(std::strstr(e.what(), path.c_str()) != nullptr, "an error message does not name the file");
        return 0;
    }
    const std::int64_t n = a.numel();
    check(n >= 0, "negative element count");
    check(a.bytes.size() == static_cast<std::size_t>(n) * ewe::io::dtype_size(a.dtype), "byte count disagrees with shape");
    // The bytes (plus up to 4 KiB of header) came from the input, so the array is small.
    const ewe::Tensor<double> t = ewe::io::npy_to_tensor<double>(a, "fuzz");
    check(t.numel() == n, "npy_to_tensor changes the element count");
    switch (a.dtype) {
        case ewe::io::DType::u8: round_trip<std::uint8_t>(a); break;
        case ewe::io::DType::boolean: break;  // write_npy writes no bool dtype
        case ewe::io::DType::i32: round_trip<std::int32_t>(a); break;
        case ewe::io::DType::i64: round_trip<std::int64_t>(a); break;
        case ewe::io::DType::f32: round_trip<float>(a); break;
        case ewe::io::DType::f64: round_trip<double>(a); break;
    }
    return 0;
}
