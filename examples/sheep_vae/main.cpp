// sheep_vae: entry point of the sheep VAE example; the program lives in app.hpp so
// that tests can run it in-process (tests/cpu/test_sheep_vae_cli.cpp). Compiled by the
// host compiler; with EWE_WITH_CUDA the ewe::cuda target links the CUDA backend in
// (--device cuda), and the explicit register_backend() call makes its absence a link
// error rather than a run-time one.
#include "app.hpp"

int main(int argc, char** argv) {
#if defined(EWE_WITH_CUDA)
    ewe::cuda::register_backend();
#endif
    return sheep_vae_main(argc, argv);
}
