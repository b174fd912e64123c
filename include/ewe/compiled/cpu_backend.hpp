// The CPU backend of ewe::compiled as a program linking it sees it: one function
// compiled in libewe_cpu.a (include/ewe/compiled/cpu_backend.cpp) that registers the
// backend with ewe::Context (ewe/core/cpu_hooks.hpp), called when the program starts.
// ewe/ops/ops.hpp includes this header under EWE_COMPILED_LIBRARY: a program that runs
// any op then references the function, so the linker takes the backend from the
// library, without the program compiling Eigen.
#pragma once

namespace ewe::detail {

void register_compiled_cpu_backend();  // libewe_cpu.a

inline const bool compiled_cpu_backend_registered = (register_compiled_cpu_backend(), true);

}  // namespace ewe::detail
