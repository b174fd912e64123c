// libFuzzer target for ewe::io::read_safetensors: any bytes must either read as a file
// whose every tensor lies inside the data buffer with a byte count matching dtype and
// shape, or be rejected with ewe::Error. Anything else is a finding. Files that read are
// copied out tensor by tensor, written back, and must read back equal.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "ewe/io/safetensors.hpp"
#include "fuzz_common.hpp"

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_safetensors: invariant violated: %s\n", what);
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path = ewe_fuzz::scratch(".safetensors");
    ewe_fuzz::put(path, data, size);
    ewe::io::SafetensorsFile f;
    try {
        f = ewe::io::read_safetensors(path);
    } catch (const ewe::Error& e) {
        check(std::strstr(e.what(), path.c_str()) != nullptr, "an error message does not name the file");
        return 0;
    }
    std::vector<ewe::io::SafetensorsEntry> entries;
    for (const auto& [name, t] : f.tensors) {
        check(t.begin <= t.end && t.end <= f.data.size(), "tensor bytes outside the data buffer");
        const std::size_t item = ewe::io::detail::safetensors_item(t.dtype);
        check(item != 0, "unknown dtype accepted");
        // Every dimension and every partial product must fit int64 (ewe::Shape's type).
        std::int64_t count = 1;
        for (std::int64_t d : t.shape) {
            check(d >= 0, "negative dimension accepted");
            check(d == 0 || count <= std::numeric_limits<std::int64_t>::max() / d, "shape overflows int64");
            count *= d;
        }
        check(static_cast<std::size_t>(count) * item == t.end - t.begin, "byte count disagrees with shape");
        if (t.dtype == "F32") {
            std::vector<float> out(static_cast<std::size_t>(count));
            f.copy_to(name, out.data(), out.size());
        }
        entries.push_back({name, t.dtype, t.shape, f.data.data() + t.begin, t.end - t.begin});
    }
    const auto again_path = ewe_fuzz::scratch("_again.safetensors");
    ewe::io::write_safetensors(again_path, entries, f.metadata);
    const ewe::io::SafetensorsFile g = ewe::io::read_safetensors(again_path);
    check(g.metadata == f.metadata && g.tensors.size() == f.tensors.size(), "write then read changes the file");
    for (const auto& [name, t] : f.tensors) {
        const auto it = g.tensors.find(name);
        check(it != g.tensors.end() && it->second.dtype == t.dtype && it->second.shape == t.shape, "tensor changed");
        check(t.end == t.begin ||
                  std::memcmp(g.data.data() + it->second.begin, f.data.data() + t.begin, t.end - t.begin) == 0,
              "tensor bytes changed");
    }
    return 0;
}
