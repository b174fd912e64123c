// Return-code checks for the CUDA runtime, cuDNN and cuBLAS(Lt): every call the
// CUDA backend makes goes through one of these macros, which turn a failure into an
// ewe::Error naming the call, the file and line, and the library's own message
// (kernel launches: detail::check_launch, through kernels::launch_1d).
// The *_WARN variants are for destructors, which must not throw: they print instead.
// A runtime call that fails (also one inside cuDNN or cuBLAS) leaves its error as the
// thread's "last error"; every path here clears it once reported, so the next launch
// check (cudaGetLastError) cannot blame an unrelated kernel for it.
#pragma once

#include <cstdio>

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "ewe/core/error.hpp"

namespace ewe::cuda::detail {

[[noreturn]] inline void throw_cuda(cudaError_t status, const char* call, const char* file, int line) {
    (void)cudaGetLastError();  // reported here, so not again at the next launch
    fail("CUDA error ", static_cast<int>(status), " (", cudaGetErrorName(status), ": ", cudaGetErrorString(status),
         ") in ", call, " at ", file, ":", line);
}
[[noreturn]] inline void throw_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
    (void)cudaGetLastError();  // a runtime error behind it goes with this report
    fail("cuDNN error ", static_cast<int>(status), " (", cudnnGetErrorString(status), ") in ", call, " at ", file,
         ":", line);
}
[[noreturn]] inline void throw_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
    (void)cudaGetLastError();  // a runtime error behind it goes with this report
    fail("cuBLAS error ", static_cast<int>(status), " (", cublasGetStatusName(status), ": ",
         cublasGetStatusString(status), ") in ", call, " at ", file, ":", line);
}

// After a <<<...>>> launch: launch-configuration errors (and earlier asynchronous
// errors that are still pending) surface here, naming the kernel.
inline void check_launch(const char* kernel, const char* file, int line) {
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess)
        fail("CUDA error ", static_cast<int>(status), " (", cudaGetErrorName(status), ": ",
             cudaGetErrorString(status), ") at the launch of ", kernel, " at ", file, ":", line);
}

}  // namespace ewe::cuda::detail

#define EWE_CUDA_CHECK(call)                                                                           \
    do {                                                                                               \
        const cudaError_t ewe_status_ = (call);                                                        \
        if (ewe_status_ != cudaSuccess) ::ewe::cuda::detail::throw_cuda(ewe_status_, #call, __FILE__, __LINE__); \
    } while (0)

#define EWE_CUDNN_CHECK(call)                                                                          \
    do {                                                                                               \
        const cudnnStatus_t ewe_status_ = (call);                                                      \
        if (ewe_status_ != CUDNN_STATUS_SUCCESS)                                                       \
            ::ewe::cuda::detail::throw_cudnn(ewe_status_, #call, __FILE__, __LINE__);                  \
    } while (0)

#define EWE_CUBLAS_CHECK(call)                                                                         \
    do {                                                                                               \
        const cublasStatus_t ewe_status_ = (call);                                                     \
        if (ewe_status_ != CUBLAS_STATUS_SUCCESS)                                                      \
            ::ewe::cuda::detail::throw_cublas(ewe_status_, #call, __FILE__, __LINE__);                 \
    } while (0)

// For destructors and other places that must not throw.
#define EWE_CUDA_WARN(call)                                                                            \
    do {                                                                                               \
        const cudaError_t ewe_status_ = (call);                                                        \
        if (ewe_status_ != cudaSuccess) {                                                              \
            (void)cudaGetLastError();                                                                  \
            std::fprintf(stderr, "ewe: CUDA error %s in %s at %s:%d (ignored in a destructor)\n",      \
                         cudaGetErrorString(ewe_status_), #call, __FILE__, __LINE__);                  \
        }                                                                                              \
    } while (0)
