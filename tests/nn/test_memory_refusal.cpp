// build_within_memory (ewe/models/memory_refusal.hpp): a model that fits is returned as
// built; an ewe::OutOfMemory becomes an ewe::Error naming the size setting when the
// parameters and gradients alone exceed what is available, else the batch setting.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "error_of.hpp"
#include "ewe/models/memory_refusal.hpp"

using ewe_test::error_of;

TEST_CASE("build_within_memory: the model when it fits, else the setting to lower in the caller's words") {
    const ewe::ModelSizeSettings settings{"--size", "4", "--rows", 64, "images"};
    CHECK(ewe::build_within_memory([] { return std::string("built"); }, settings) == "built");
    ewe::MemoryEstimate needed;
    needed.parameters = 3000;
    needed.gradients = 2000;
    needed.activations = 1 << 20;
    const std::string available = " are available (MemAvailable, or EWE_MEMORY_LIMIT when lower)";
    const auto refused = [&](std::int64_t free_bytes) {
        return error_of([&] {
            ewe::build_within_memory([&]() -> int { throw ewe::OutOfMemory("no room", needed, free_bytes); }, settings);
        });
    };
    CHECK(refused(4000) == "--size 4: the model's parameters and gradients alone need " + ewe::format_bytes(5000) +
                               ", but " + ewe::format_bytes(4000) + available + "; lower --size");
    CHECK(refused(6000) == "--rows 64: a model for batches of 64 images needs " + needed.describe() + ", but " +
                               ewe::format_bytes(6000) + available + "; lower --rows (or --size)");
    // Other errors pass through unchanged.
    CHECK(error_of([&] { ewe::build_within_memory([]() -> int { ewe::fail("bad options"); }, settings); }) ==
          "bad options");
}
