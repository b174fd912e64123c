// ewe's version, as project(ewe VERSION ...) in CMakeLists.txt says (tests/core/
// test_cuda_backend_loader.cpp checks that the two agree). The CUDA backend module
// (libewe_cuda.so) reports the version it was built from, and ewe refuses a module of
// another version (ewe/core/cuda_loader.hpp).
#pragma once

#define EWE_VERSION_MAJOR 0
#define EWE_VERSION_MINOR 1
#define EWE_VERSION_PATCH 0
// 10000 * major + 100 * minor + patch.
#define EWE_VERSION (EWE_VERSION_MAJOR * 10000 + EWE_VERSION_MINOR * 100 + EWE_VERSION_PATCH)
