// Hand-made bad input files (tests/data/bad_npy, tests/data/bad_safetensors, written by
// tests/data/make_bad_files.py) are each rejected with an ewe::Error that names the
// file, says what was expected and what was found; no crash, no other exception, and
// no allocation larger than kMaxAllocation on the way (sizes are checked against the
// file before anything is allocated). Files that are well-formed arrays but not Quick,
// Draw! bitmaps (width 100, NaN pixels, ...) are rejected by ewe::io::read_quickdraw_npy.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "ewe/io/npy.hpp"
#include "ewe/io/quickdraw.hpp"
#include "ewe/io/safetensors.hpp"

// Largest single operator-new request of this program: a reader that trusted a size
// field would ask for gigabytes here (the bad files are all under 16 KiB).
namespace {
std::atomic<std::size_t> largest_allocation{0};
void* counted_new(std::size_t n) {
    std::size_t seen = largest_allocation.load();
    while (n > seen && !largest_allocation.compare_exchange_weak(seen, n)) {
    }
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
}  // namespace
void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxAllocation = std::size_t(16) << 20;
const fs::path kData = fs::path(__FILE__).parent_path().parent_path() / "data";

// The message of the ewe::Error that f throws; a marker string when it throws
// something else or nothing (so the CHECKs below fail and show it).
std::string error_of(const std::function<void()>& f) {
    largest_allocation = 0;
    try {
        f();
    } catch (const ewe::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("<not an ewe::Error: ") + e.what() + ">";
    }
    return "<no error>";
}

struct Case {
    const char* file;
    std::vector<const char*> says;  // fragments the message must contain (expected / found)
};

void check_cases(const fs::path& dir, const std::vector<Case>& cases, const std::function<void(const fs::path&)>& read) {
    for (const Case& c : cases) {
        const fs::path path = dir / c.file;
        CAPTURE(path);
        REQUIRE(fs::exists(path));
        const std::string message = error_of([&] { read(path); });
        CAPTURE(message);
        CHECK(message.find(path.string()) != std::string::npos);
        for (const char* fragment : c.says) CHECK(message.find(fragment) != std::string::npos);
        CHECK(largest_allocation.load() < kMaxAllocation);
    }
}

// Every file of `dir` is named by some case (a new bad file needs its expected error).
void check_all_listed(const fs::path& dir, const std::vector<std::vector<Case>*>& lists) {
    std::set<std::string> listed;
    for (const auto* list : lists)
        for (const Case& c : *list) listed.insert(c.file);
    for (const auto& e : fs::directory_iterator(dir)) {
        CAPTURE(e.path());
        CHECK(listed.count(e.path().filename().string()) == 1);
    }
}

std::vector<Case> npy_library = {
    {"empty.npy", {"expected a .npy file (at least 10 bytes), found 0 bytes"}},
    {"magic_only.npy", {"expected a .npy file (at least 10 bytes), found 6 bytes"}},
    {"not_npy.npy", {"expected the magic string \\x93NUMPY, found something else (not a .npy file)"}},
    {"zip_not_npy.npy", {"expected the magic string \\x93NUMPY", "not a .npy file"}},
    {"header_cut.npy", {"header claims 118 bytes but the file has only 40"}},
    {"header_only.npy", {"shape and dtype need 3136 bytes of data, found 0 (truncated file)"}},
    {"truncated.npy", {"shape and dtype need 3136 bytes of data, found 1568 (truncated file)"}},
    {"trailing_bytes.npy", {"shape and dtype need 3136 bytes of data, found 3152 (trailing bytes)"}},
    {"version_9.npy", {"expected format version 1.0, 2.0 or 3.0, found 9.0"}},
    {"bad_fortran_order.npy", {"malformed header (expected True or False", "Maybe"}},
    {"missing_shape.npy", {"header must have 'descr', 'fortran_order' and 'shape', found:"}},
    {"unknown_key.npy", {"malformed header (unexpected key 'sheep'"}},
    {"unterminated_header.npy", {"malformed header (unterminated string"}},
    {"shape_beyond_file.npy", {"shape and dtype need 784000000 bytes of data, found 3136 (truncated file)"}},
    {"shape_beyond_memory.npy", {"shape and dtype need 862017116176384 bytes of data, found 3136 (truncated file)"}},
    {"shape_2pow62_elements.npy", {"need 4611686018427387904 bytes of data, found 3136 (truncated file)"}},
    {"shape_bytes_overflow.npy", {"shape overflows"}},
    {"shape_product_overflow.npy", {"shape overflows int64", "(4294967296, 4294967296, 16)"}},
    {"shape_zero_with_overflow.npy", {"shape overflows int64", "(4611686018427387904, 3, 0)"}},
    {"dim_overflows_int64.npy", {"dimension overflows int64", "99999999999999999999"}},
    {"negative_dim.npy", {"expected a non-negative integer dimension", "(-4, 784)"}},
    {"too_many_dims.npy", {"expected at most 6 dimensions, found 8"}},
    {"complex64.npy", {"expected dtype uint8, bool, int32, int64, float32 or float64, found '<c8'"}},
    {"unicode.npy", {"expected dtype uint8, bool, int32, int64, float32 or float64, found '<U4'"}},
    {"float16.npy", {"expected dtype uint8, bool, int32, int64, float32 or float64, found '<f2'"}},
    {"object.npy", {"expected a dtype like '<f4', found '|O'"}},
    {"structured.npy", {"expected a simple numeric dtype, found a structured dtype"}},
};

// Valid .npy files that read_quickdraw_npy must refuse.
std::vector<Case> npy_bitmaps = {
    {"uint8_width_100.npy", {"--data", "expected Quick, Draw! bitmaps of shape (N, 784) or (N, 28, 28), found (4, 100)"}},
    {"uint8_28x27.npy", {"--data", "expected Quick, Draw! bitmaps of shape (N, 784) or (N, 28, 28), found (4, 28, 27)"}},
    {"no_drawings.npy", {"--data", "the file holds no drawings (shape (0, 784))"}},
    {"int32_bitmaps.npy", {"--data", "expected dtype uint8 (0..255) or float32 (0..1), found int32"}},
    {"bool_bitmaps.npy", {"--data", "expected dtype uint8 (0..255) or float32 (0..1), found bool"}},
    {"columns_2pow40.npy", {"--data", "expected Quick, Draw! bitmaps of shape (N, 784) or (N, 28, 28), found (0, 1099511627776)"}},
    {"float32_nan.npy", {"--data", "non-finite value nan at drawing 1, pixel 3"}},
    {"float32_inf.npy", {"--data", "non-finite value inf at drawing 2, pixel 5"}},
    {"float32_above_one.npy", {"--data", "float32 bitmaps must lie in [0, 1], found 255 at drawing 0, pixel 7"}},
};

std::vector<Case> safetensors_library = {
    {"empty.safetensors", {"expected at least 8 bytes (the header length), found 0"}},
    {"short.safetensors", {"expected at least 8 bytes (the header length), found 3"}},
    {"not_safetensors.safetensors", {"does not fit a file of 38 bytes (not a safetensors file, or truncated)"}},
    {"npy_renamed.safetensors", {"does not fit a file of 144 bytes (not a safetensors file, or truncated)"}},
    {"header_len_huge.safetensors", {"header length 9223372036854775808 does not fit a file of 10 bytes"}},
    {"header_len_past_end.safetensors", {"header length 4096 does not fit a file of 16 bytes"}},
    {"header_only.safetensors", {"tensor 'w' has data_offsets [0, 24]", "lie outside the file (truncated?)"}},
    {"truncated.safetensors", {"tensor 'w' has data_offsets [0, 24]", "lie outside the file (truncated?)"}},
    {"bad_json.safetensors", {"malformed JSON header (expected ',' or '}'"}},
    {"unknown_dtype.safetensors", {"tensor 'w' has unknown dtype C64"}},
    {"string_dtype.safetensors", {"tensor 'w' has unknown dtype STR"}},
    {"offsets_disagree.safetensors", {"tensor 'w' has data_offsets [0, 20] that disagree with its shape"}},
    {"offsets_reversed.safetensors", {"tensor 'w' has data_offsets [24, 0] that disagree with its shape"}},
    {"offsets_past_end.safetensors", {"tensor 'w' has data_offsets [8, 32]", "lie outside the file"}},
    {"negative_dim.safetensors", {"malformed JSON header (expected a non-negative integer"}},
    {"dim_overflows_int64.safetensors", {"malformed JSON header (integer overflow"}},
    {"shape_overflow.safetensors", {"tensor 'w' has a shape whose element count overflows int64"}},
    {"shape_2pow62_elements.safetensors", {"tensor 'w' has data_offsets [0, 24] that disagree with its shape"}},
    {"missing_offsets.safetensors", {"tensor 'w' lacks dtype, shape or data_offsets"}},
    {"duplicate_tensor.safetensors", {"duplicate tensor 'w'"}},
    {"bad_unicode_escape.safetensors", {"malformed JSON header (bad \\u escape (expected four hex digits)"}},
    {"metadata_not_string.safetensors", {"malformed JSON header (expected '\"'"}},
};

}  // namespace

TEST_CASE("bad .npy files: read_npy names the file, what it expected and what it found") {
    check_cases(kData / "bad_npy", npy_library, [](const fs::path& p) { ewe::io::read_npy(p); });
    check_all_listed(kData / "bad_npy", {&npy_library, &npy_bitmaps});
}

TEST_CASE("npy files that are not 28x28 bitmaps: read_quickdraw_npy refuses them") {
    // `who` is the program's flag (sheep_vae passes --data).
    const auto read = [](const fs::path& p) { (void)ewe::io::read_quickdraw_npy(p, 0, "--data"); };
    check_cases(kData / "bad_npy", npy_bitmaps, [&](const fs::path& p) { ewe::io::read_npy(p); read(p); });
    // Every bad file, including those read_npy refuses, fails in the reader with `who` first.
    std::vector<Case> all = npy_library;
    for (Case& c : all) c.says = {"--data: read_npy: "};
    check_cases(kData / "bad_npy", all, read);
}

TEST_CASE("bad .safetensors files: read_safetensors names the file, what it expected and what it found") {
    check_cases(kData / "bad_safetensors", safetensors_library, [](const fs::path& p) { ewe::io::read_safetensors(p); });
    check_all_listed(kData / "bad_safetensors", {&safetensors_library});
}

TEST_CASE("the fuzzers' crash inputs are rejected cleanly") {
    // tests/fuzz/corpus/*/crash-*: inputs that once crashed a reader (see docs/reliability.md).
    const fs::path corpus = kData.parent_path() / "fuzz" / "corpus";
    int seen = 0;
    for (const char* kind : {"npy", "safetensors"})
        for (const auto& e : fs::directory_iterator(corpus / kind)) {
            if (e.path().filename().string().rfind("crash-", 0) != 0) continue;
            CAPTURE(e.path());
            ++seen;
            const std::string message = error_of([&] {
                if (std::string(kind) == "npy") ewe::io::read_npy(e.path());
                else ewe::io::read_safetensors(e.path());
            });
            CHECK(message.find(e.path().string()) != std::string::npos);
            CHECK(largest_allocation.load() < kMaxAllocation);
        }
    CHECK(seen >= 3);
}

TEST_CASE("the allocation counter sees the readers' allocations") {
    // Guards the kMaxAllocation checks above against a counter that never counts.
    largest_allocation = 0;
    const ewe::io::NpyArray a = ewe::io::read_npy(kData / "bad_npy" / "uint8_width_100.npy");
    CHECK(a.bytes.size() == 400);
    CHECK(largest_allocation.load() >= 400);
}
