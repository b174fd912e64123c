// The CPU backend in double precision for header-only programs (gradient checks,
// double models): including this header in one file of the program registers it with
// ewe::Context when the program starts (ewe/core/cpu_hooks.hpp). ewe/cpu/backend.hpp
// registers only float, so that files computing in float do not compile the double
// backend too; a program linking ewe::compiled has both already.
#pragma once

#include "ewe/cpu/backend.hpp"

namespace ewe::cpu {

inline const bool double_backend_registered = (detail::install_cpu_backend(&backend_instance<double>()), true);

}  // namespace ewe::cpu
