// A model refused for memory (ewe::OutOfMemory, ewe/core/memory.hpp) told in a program's
// words: build_within_memory builds a model and, when it does not fit, names the setting
// to lower: the one that sets the model's size when its parameters and gradients alone
// do not fit, else the one that sets its batch.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "ewe/core/error.hpp"
#include "ewe/core/memory.hpp"

namespace ewe {

// The settings a refusal names: what sets the model's size ("--width" and its value as
// text) and its batch ("--batch", the batch), and what a batch's rows are ("drawings").
struct ModelSizeSettings {
    std::string size_flag, size_value;
    std::string batch_flag;
    std::int64_t batch = 0;
    std::string rows = "samples";
};

// make() (a model for batches of `settings.batch` rows), its ewe::OutOfMemory turned into an
// ewe::Error: "--width 16: the model's parameters and gradients alone need 3.1 GiB, but 1.0
// GiB are available (MemAvailable, or EWE_MEMORY_LIMIT when lower); lower --width", or
// "--batch 16: a model for batches of 16 drawings needs 1.2 GiB (parameters ...), but ...;
// lower --batch (or --width)".
template <class Make>
auto build_within_memory(Make&& make, const ModelSizeSettings& settings) -> decltype(std::forward<Make>(make)()) {
    try {
        return std::forward<Make>(make)();
    } catch (const OutOfMemory& e) {
        const std::string available = format_bytes(e.available()) + " are available (MemAvailable, or "
                                      "EWE_MEMORY_LIMIT when lower)";
        if (e.needed().fixed() > e.available())
            fail(settings.size_flag, " ", settings.size_value, ": the model's parameters and gradients alone need ",
                 format_bytes(e.needed().fixed()), ", but ", available, "; lower ", settings.size_flag);
        fail(settings.batch_flag, " ", settings.batch, ": a model for batches of ", settings.batch, " ", settings.rows,
             " needs ", e.needed().describe(), ", but ", available, "; lower ", settings.batch_flag, " (or ",
             settings.size_flag, ")");
    }
}

}  // namespace ewe
