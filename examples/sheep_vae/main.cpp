// sheep_vae: entry point of the sheep VAE example; the program is the sheep_vae_cli
// library (include/sheep_vae/sheep_vae.hpp, src/), which tests run in-process. It links
// no CUDA library: --device cuda loads the CUDA backend module libewe_cuda.so
// (ewe/core/cuda_loader.hpp).
#include <iostream>

#include "sheep_vae/sheep_vae.hpp"

int main(int argc, char** argv) { return sheep_vae_main(argc, argv, std::cout, std::cerr); }
