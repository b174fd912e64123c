// sheep_vae compiled by nvcc: including <ewe/ewe.hpp> here installs the CUDA backend,
// so `--device cuda` works. Same program as main.cpp (see app.hpp).
#include "app.hpp"

int main(int argc, char** argv) { return sheep_vae_main(argc, argv); }
