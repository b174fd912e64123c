// sheep_vae: entry point of the sheep VAE example; the program is the sheep_vae_cli
// library (include/sheep_vae/sheep_vae.hpp, src/), which tests run in-process.
#include <iostream>

#include "sheep_vae/sheep_vae.hpp"

int main(int argc, char** argv) { return sheep_vae_main(argc, argv, std::cout, std::cerr); }
