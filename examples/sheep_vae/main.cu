// sheep_vae compiled by nvcc: including <ewe/ewe.hpp> here installs the CUDA backend,
// so `--device cuda` works. Same program as main.cpp (the sheep_vae_cli library).
#include <iostream>

#include <ewe/ewe.hpp>

#include "sheep_vae/sheep_vae.hpp"

int main(int argc, char** argv) { return sheep_vae_main(argc, argv, std::cout, std::cerr); }
