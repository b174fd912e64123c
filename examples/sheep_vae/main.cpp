// sheep_vae: entry point of the sheep VAE example; the program lives in app.hpp so
// that tests can run it in-process (tests/cpu/test_sheep_vae_cli.cpp). Compiled by the
// host compiler and linked to no CUDA library: --device cuda loads the CUDA backend
// module libewe_cuda.so (ewe/core/cuda_loader.hpp).
#include "app.hpp"

int main(int argc, char** argv) { return sheep_vae_main(argc, argv); }
