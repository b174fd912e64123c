// ewe::compiled, part 1: the CPU backend (Eigen, on ewe's thread pool) for float and
// double, compiled once here. Files that link ewe::compiled include no Eigen: under
// EWE_COMPILED_LIBRARY ewe/ewe.hpp leaves out ewe/cpu/backend.hpp, and
// Context::backend<T>() reaches this code through detail::cpu_backend<T>()
// (declared in ewe/core/context.hpp).
#include "ewe/cpu/backend.hpp"

template ewe::Backend<float>& ewe::detail::cpu_backend<float>();
template ewe::Backend<double>& ewe::detail::cpu_backend<double>();
