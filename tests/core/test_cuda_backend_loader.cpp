// The loader of the CUDA backend module (ewe/core/cuda_loader.hpp), on any machine:
// where it looks, the error that names the paths tried, a module of another ABI or
// without the entry point refused, and (ewe built with CUDA) the real libewe_cuda.so
// loaded: dlopen, entry point and ABI check succeed without a GPU, the hooks are then
// installed, and Context(Device::cuda) fails with the module's own "no CUDA device is
// available" ewe::Error, thrown in the module and caught here as ewe::Error. On a
// machine with a GPU the same case instead makes a context and round-trips a tensor
// through the device. This program links no CUDA library.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "ewe/ewe.hpp"

using namespace ewe;

namespace {

// Sets EWE_CUDA_BACKEND for the scope.
struct BackendVariable {
    explicit BackendVariable(const char* value) { ::setenv("EWE_CUDA_BACKEND", value, 1); }
    ~BackendVariable() { ::unsetenv("EWE_CUDA_BACKEND"); }
};

std::string open_error() {
    try {
        (void)detail::open_cuda_backend();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("EWE_VERSION is the version CMake's project() names") {
    const std::string version = std::to_string(EWE_VERSION_MAJOR) + "." + std::to_string(EWE_VERSION_MINOR) + "." +
                                std::to_string(EWE_VERSION_PATCH);
    CHECK(version == EWE_TEST_PROJECT_VERSION);
}

TEST_CASE("the module is looked for next to the program, in ../lib, then by the loader's search") {
    ::unsetenv("EWE_CUDA_BACKEND");
    const std::vector<std::string> c = detail::cuda_backend_candidates();
    REQUIRE(c.size() >= 3);
    CHECK(c[0].ends_with("/tests/libewe_cuda.so"));
    CHECK(c[1].ends_with("/tests/../lib/libewe_cuda.so"));
    CHECK(c.back() == "libewe_cuda.so");
    const BackendVariable env("/somewhere/libewe_cuda.so");
    CHECK(detail::cuda_backend_candidates() == std::vector<std::string>{"/somewhere/libewe_cuda.so"});
}

TEST_CASE("EWE_CUDA_BACKEND naming a missing file: the error names it and what to do") {
    const BackendVariable env("/nonexistent/libewe_cuda.so");
    const std::string what = open_error();
    INFO(what);
    CHECK(contains(what, "the CUDA backend libewe_cuda.so could not be loaded: tried "
                         "EWE_CUDA_BACKEND=/nonexistent/libewe_cuda.so (no such file)"));
    CHECK(contains(what, "link the program to ewe::cuda (CMake: find_package(ewe COMPONENTS cuda)"));
    CHECK(contains(what, "or set EWE_CUDA_BACKEND to the module's path"));
}

TEST_CASE("a file that is no module: dlopen's error is passed on") {
    const BackendVariable env(EWE_TEST_SOURCE_FILE);
    const std::string what = open_error();
    INFO(what);
    CHECK(contains(what, std::string("EWE_CUDA_BACKEND=") + EWE_TEST_SOURCE_FILE + " (dlopen: "));
}

TEST_CASE("a module without the entry point is refused") {
    const BackendVariable env(EWE_TEST_FAKE_BACKEND_NO_ENTRY);
    const std::string what = open_error();
    INFO(what);
    CHECK(contains(what, "(it has no entry point ewe_cuda_backend_v1)"));
}

TEST_CASE("a module of another ABI is refused, naming both") {
    const BackendVariable env(EWE_TEST_FAKE_BACKEND_WRONG_ABI);
    const std::string what = open_error();
    INFO(what);
    CHECK(contains(what, "refused: built for CUDA backend ABI " + std::to_string(detail::kCudaBackendAbi + 1)));
    CHECK(contains(what, "but this program has ABI " + std::to_string(detail::kCudaBackendAbi)));
    CHECK(detail::cuda_context_hooks() == nullptr);
}

#if defined(EWE_TEST_CUDA_BACKEND)
TEST_CASE("the real module loads; without a GPU its own error reaches the program as ewe::Error") {
    const BackendVariable env(EWE_TEST_CUDA_BACKEND);
    REQUIRE(detail::cuda_context_hooks() == nullptr);
    REQUIRE(detail::cuda_memory_hooks() == nullptr);
    bool gpu = false;
    try {
        Context ctx(Device::cuda);
        gpu = true;
        const Tensor<float> host = Tensor<float>::from(Shape{3}, {1.5f, -2.0f, 4.0f});
        const Tensor<float> device = host.to(Device::cuda);
        const Tensor<float> back = device.to(Device::cpu);
        for (std::int64_t i = 0; i < 3; ++i) CHECK(back[i] == host[i]);
        MESSAGE("a CUDA device is available: the module made a context and round-tripped a tensor");
    } catch (const Error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK_FALSE(gpu);
        CHECK(what.starts_with("ewe::Context(Device::cuda): no CUDA device is available ("));
    }
    // Loaded and installed in this program's hook statics either way.
    CHECK(detail::cuda_context_hooks() != nullptr);
    CHECK(detail::cuda_memory_hooks() != nullptr);
    if (!gpu) {
        // The memory hooks too run in the module; their CUDA error is an ewe::Error here.
        CHECK_THROWS_AS(Tensor<float>(Shape{4}, Device::cuda), Error);
    }
}
#endif
