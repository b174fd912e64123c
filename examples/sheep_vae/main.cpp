// sheep_vae: entry point of the sheep VAE example; the program lives in app.hpp so
// that tests can run it in-process (tests/cpu/test_sheep_vae_cli.cpp).
#include "app.hpp"

int main(int argc, char** argv) { return sheep_vae_main(argc, argv); }
