// ewe::Device: where a tensor's memory lives and a context computes (the CPU, or the
// CUDA device of a context).
#pragma once

#include <cstdint>

namespace ewe {

enum class Device : std::uint8_t { cpu, cuda };

inline const char* to_string(Device device) { return device == Device::cpu ? "cpu" : "cuda"; }

}  // namespace ewe
