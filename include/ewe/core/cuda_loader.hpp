// Loads the CUDA backend module (libewe_cuda.so) the first time a program asks for
// Device::cuda, as ONNX Runtime loads its CUDA execution provider: a CPU-only run never
// maps cudart, cuBLAS, cuBLASLt or cuDNN (their load-time initialization alone cost
// 150 MB of resident memory). Context(Device::cuda), a device Tensor and ewe::copy call
// load_cuda_backend() when no backend is installed yet.
//
// Where the module is looked for, first found first served:
//   1. $EWE_CUDA_BACKEND, a path to the module file, when set (then nothing else);
//   2. libewe_cuda.so next to the running executable (/proc/self/exe), then in ../lib
//      relative to it; then next to the binary holding this code, when that is a shared
//      library elsewhere (dladdr);
//   3. the plain name, so that the dynamic loader's search applies: LD_LIBRARY_PATH,
//      then the RUNPATH of the binary calling dlopen (a program linking the ewe::cuda
//      CMake target has the module's folder there), then the system's folders.
// The first candidate file that exists is the one used: if it cannot be loaded (a
// missing cuDNN, say) or is refused, that is the error, naming every path tried and
// dlerror(). The module is opened RTLD_NOW | RTLD_LOCAL and never closed; its one
// exported symbol, kCudaBackendEntryPoint, returns a CudaBackendModule record whose ABI
// number, ewe version and table sizes must equal this program's (ewe/core/
// cuda_hooks.hpp), and whose tables the loader then installs in this program's hook
// statics (the module has installed them in its own). Loading happens once per
// process, thread-safe; a failure is remembered and reported again on every later use.
#pragma once

#include <cstdlib>
#include <string>
#include <vector>

#include "ewe/core/cuda_hooks.hpp"
#include "ewe/core/error.hpp"

#if __has_include(<dlfcn.h>) && __has_include(<unistd.h>)
#include <dlfcn.h>
#include <unistd.h>
#define EWE_HAS_DLOPEN 1
#endif

namespace ewe::detail {

inline constexpr const char* kCudaBackendFile = "libewe_cuda.so";

// The folder of `path` ("" when it has none).
inline std::string folder_of(const std::string& path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// Where to look for the module, in order (see the top of the file).
inline std::vector<std::string> cuda_backend_candidates() {
    if (const char* env = std::getenv("EWE_CUDA_BACKEND"); env != nullptr && *env != '\0') return {env};
    std::vector<std::string> candidates;
#if defined(EWE_HAS_DLOPEN)
    std::string exe_folder;
    char buffer[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
    if (n > 0) {
        exe_folder = folder_of(std::string(buffer, std::size_t(n)));
        candidates.push_back(exe_folder + "/" + kCudaBackendFile);
        candidates.push_back(exe_folder + "/../lib/" + kCudaBackendFile);
    }
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(&cuda_backend_candidates), &info) != 0 && info.dli_fname != nullptr &&
        info.dli_fname[0] == '/') {
        const std::string own_folder = folder_of(info.dli_fname);
        if (own_folder != exe_folder) candidates.push_back(own_folder + "/" + kCudaBackendFile);
    }
#endif
    candidates.push_back(kCudaBackendFile);
    return candidates;
}

// Opens the module (uncached: load_cuda_backend() below is the once-per-process door)
// and checks its record; throws ewe::Error saying what was tried and why it failed.
inline const CudaBackendModule* open_cuda_backend() {
    const std::vector<std::string> candidates = cuda_backend_candidates();
    const bool from_env = std::getenv("EWE_CUDA_BACKEND") != nullptr && *std::getenv("EWE_CUDA_BACKEND") != '\0';
    std::string tried;
    const auto fail_with = [&](const std::string& path, const std::string& why) {
        if (!tried.empty()) tried += "; ";
        tried += (from_env ? "EWE_CUDA_BACKEND=" : "") + path + " (" + why + ")";
        fail("the CUDA backend ", kCudaBackendFile, " could not be loaded: tried ", tried,
             "; link the program to ewe::cuda (CMake: find_package(ewe COMPONENTS cuda), an ewe configured "
             "with EWE_WITH_CUDA) or set EWE_CUDA_BACKEND to the module's path");
    };
#if defined(EWE_HAS_DLOPEN)
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        const std::string& path = candidates[i];
        const bool plain_name = path.find('/') == std::string::npos;
        if (!plain_name && ::access(path.c_str(), F_OK) != 0) {
            if (from_env || i + 1 == candidates.size()) fail_with(path, "no such file");
            if (!tried.empty()) tried += "; ";
            tried += path + " (no such file)";
            continue;
        }
        (void)::dlerror();
        void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
            const char* why = ::dlerror();
            fail_with(path, std::string("dlopen: ") + (why != nullptr ? why : "unknown error"));
        }
        void* symbol = ::dlsym(handle, kCudaBackendEntryPoint);
        if (symbol == nullptr) fail_with(path, std::string("it has no entry point ") + kCudaBackendEntryPoint);
        const CudaBackendModule* record = reinterpret_cast<CudaBackendEntryPoint>(symbol)();
        const CudaBackendModule expected = cuda_backend_record(nullptr, nullptr);
        if (record == nullptr) fail_with(path, std::string(kCudaBackendEntryPoint) + " returned no record");
        if (record->abi != expected.abi || record->ewe_version != expected.ewe_version ||
            record->memory_hooks_size != expected.memory_hooks_size ||
            record->context_hooks_size != expected.context_hooks_size) {
            fail_with(path, concat("refused: built for CUDA backend ABI ", record->abi, " of ewe version ",
                                   record->ewe_version, " (hook tables of ", record->memory_hooks_size, " and ",
                                   record->context_hooks_size, " bytes), but this program has ABI ", expected.abi,
                                   " of ewe version ", expected.ewe_version, " (", expected.memory_hooks_size,
                                   " and ", expected.context_hooks_size,
                                   " bytes); use the module built with this program's ewe"));
        }
        if (record->context_hooks == nullptr || record->memory_hooks == nullptr)
            fail_with(path, "refused: its record has no hook tables");
        return record;
    }
#endif
    fail_with(kCudaBackendFile, "this platform cannot load modules (no dlopen)");
    return nullptr;
}

// Installs the CUDA backend from the module, once per process; throws ewe::Error,
// "<who>: the CUDA backend libewe_cuda.so could not be loaded: ...", when it cannot.
// A no-op when a backend is installed already (ewe/cuda/backend_registration.cu
// compiled into the program, or an earlier load).
inline void load_cuda_backend(const char* who) {
    struct Load {
        bool ok = false;
        std::string error;
    };
    static const Load load = [] {
        Load l;
        if (cuda_context_hooks() != nullptr && cuda_memory_hooks() != nullptr) {
            l.ok = true;
            return l;
        }
        try {
            const CudaBackendModule* record = open_cuda_backend();
            install_cuda_hooks(record->context_hooks, record->memory_hooks);
            l.ok = true;
        } catch (const Error& e) {
            l.error = e.what();
        }
        return l;
    }();
    if (!load.ok) fail(who, ": ", load.error);
}

}  // namespace ewe::detail
