// The CUDA backend as one translation unit that registers itself: compiled by nvcc,
// linked into a program whose other files may all be compiled by the host compiler
// (g++ at full speed, -march=native), it makes Context(Device::cuda) work there. The
// ewe::cuda CMake target adds this file to the sources of every target that links it
// (an INTERFACE source), so it is compiled once per program, with that program's CUDA
// architectures, and its object file goes to the linker directly: never an archive
// member that the linker could leave out.
//
// Registration happens twice over, on purpose: the static initializer below runs
// before main (GCC and Clang on ELF never defer it), and ewe::cuda::register_backend()
// is an ordinary function a program may also call (declared in ewe/core/context.hpp):
// the call makes a missing backend a link error, and keeps this object in a program
// that gets it from a static library (ewe::cuda linked PRIVATE into a static library:
// the program then links that library's copy of this object only if something uses
// it). Both run install_hooks() once.
//
// Only the CUDA side is here (ewe/cuda/hooks.cuh: no Eigen, no CPU backend), so no
// host-compiled inline function or template of the CPU path is instantiated by nvcc in
// the same program.
#include "ewe/cuda/hooks.cuh"

namespace ewe::cuda {

void register_backend() {
    static const bool installed = [] {
        detail::install_hooks();
        return true;
    }();
    (void)installed;
}

}  // namespace ewe::cuda

namespace {
[[maybe_unused]] const bool ewe_cuda_backend_registered = [] {
    ewe::cuda::register_backend();
    return true;
}();
}  // namespace
