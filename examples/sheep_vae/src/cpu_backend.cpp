// ewe's CPU backend (Eigen, on ewe's thread pool) compiled once for the whole program: the other
// files include ewe's headers without ewe/cpu/backend.hpp and reach it through
// Context::backend<float>() (ewe/core/context.hpp declares detail::cpu_backend).
#include <ewe/cpu/backend.hpp>

template ewe::Backend<float>& ewe::detail::cpu_backend<float>();
