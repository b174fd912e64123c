// load_reference_set (ewe/anomaly/reference_set.hpp): a saved set loads as ReferenceSet::load
// gives it when the program asked for nothing or for the set's own k and grid, and a
// different k or grid is refused naming the caller's flag, both values and what to do.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <unistd.h>

#include "error_of.hpp"
#include "small_sheep_vae.hpp"
#include "ewe/anomaly/reference_set.hpp"
#include "ewe/models/sheep_vae.hpp"

using namespace ewe;
using namespace ewe::anomaly;
using ewe_test::error_of;

TEST_CASE("load_reference_set: the saved set when k and grid agree, a clear refusal when they do not") {
    Context ctx;
    SheepVae<double> vae(ctx, ewe_test::small_model_options(), 4, 11);
    Tensor<double> images(Shape{10, 8, 8, 1});
    for (std::int64_t i = 0; i < images.numel(); ++i) images[i] = double((i * 5 + i / 64) % 11) / 10.0;
    const ReferenceSet set = ReferenceSet::fit<double>(ctx, vae, images.view(), EnsembleOptions::for_sheep_vae(2, 3, 2));
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("ewe_test_load_reference_set_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::filesystem::path path = dir / "reference.safetensors";
    set.save(path);

    const EnsembleScores expected = ReferenceSet::load(path).score<double>(ctx, vae, images.view());
    for (const SavedReferenceRequest& agreeing : {SavedReferenceRequest{}, SavedReferenceRequest{3, 2}}) {
        const ReferenceSet loaded = load_reference_set(path, agreeing);
        CHECK(loaded.options().k == 3);
        CHECK(loaded.options().knn_tap.grid == 2);
        CHECK(loaded.size() == 10);
        CHECK(loaded.score<double>(ctx, vae, images.view()).ensemble == expected.ensemble);
    }
    CHECK(error_of([&] { load_reference_set(path, {4, std::nullopt, "--neighbours", "--cells", "refit it"}); }) ==
          "--neighbours 4: the reference set " + path.string() +
              " was fitted with neighbours = 3; leave --neighbours out to use it, or refit it");
    CHECK(error_of([&] { load_reference_set(path, {std::nullopt, 5}); }) ==
          "--grid 5: the reference set " + path.string() +
              " was fitted with grid = 2; leave --grid out to use it, or fit a new set");
    std::filesystem::remove_all(dir);
}
