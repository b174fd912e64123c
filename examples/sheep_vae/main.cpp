// sheep_vae: entry point of the sheep VAE example; the program is the sheep_vae_cli
// library (include/sheep_vae/sheep_vae.hpp, src/), which tests run in-process. With
// EWE_WITH_CUDA the ewe::cuda target links the CUDA backend in (--device cuda), and the
// explicit register_backend() call makes its absence a link error, not a run-time one.
#include <iostream>

#include <ewe/core/context.hpp>

#include "sheep_vae/sheep_vae.hpp"

int main(int argc, char** argv) {
#if defined(EWE_WITH_CUDA)
    ewe::cuda::register_backend();
#endif
    return sheep_vae_main(argc, argv, std::cout, std::cerr);
}
