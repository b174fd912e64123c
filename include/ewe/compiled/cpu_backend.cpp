// ewe::compiled, part 1: the CPU backend (Eigen, on ewe's thread pool) for float and
// double, compiled once here. Files that link ewe::compiled include no Eigen: under
// EWE_COMPILED_LIBRARY ewe/ewe.hpp leaves out ewe/cpu/backend.hpp, and ewe/ops/ops.hpp
// includes ewe/compiled/cpu_backend.hpp, whose call of the function below registers
// this backend with ewe::Context when the program starts.
#include "ewe/cpu/backend.hpp"
#include "ewe/cpu/double_backend.hpp"

#include "ewe/compiled/cpu_backend.hpp"

void ewe::detail::register_compiled_cpu_backend() {
    install_cpu_backend(&cpu::backend_instance<float>());
    install_cpu_backend(&cpu::backend_instance<double>());
}
