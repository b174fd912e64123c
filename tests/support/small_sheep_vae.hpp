// small_model_options(): a SheepVae small enough for gradient checks and exact replays
// (8x8 images, filters 2 and 3, units 6-5-4, a 2-D latent), shared by the tests that
// need the sheep architecture without its 12.9 million parameters.
#pragma once

#include <ewe/models/sheep_vae.hpp>

namespace ewe_test {

inline ewe::SheepVaeOptions small_model_options() {
    ewe::SheepVaeOptions options;
    options.image_size = 8;
    options.filters = {2, 3};
    options.units = {6, 5, 4};
    options.latent = 2;
    return options;
}

}  // namespace ewe_test
