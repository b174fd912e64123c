// CUDA helpers for the clustering kernels: every runtime call checked into ewe::Error,
// and a move-only device buffer (cudaMalloc / cudaFree). Self-contained: needs only the
// CUDA runtime. Include from .cu files compiled by nvcc.
#pragma once

#if !defined(__CUDACC__)
#error "ewe/cluster/cuda_util.cuh needs nvcc (include it from a .cu file)"
#endif

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "ewe/core/error.hpp"

#define EWE_CLUSTER_CUDA(call)                                                                          \
    do {                                                                                                \
        const cudaError_t ewe_status_ = (call);                                                         \
        if (ewe_status_ != cudaSuccess)                                                                 \
            ::ewe::fail("CUDA: ", #call, " failed: ", cudaGetErrorName(ewe_status_), " (",             \
                        cudaGetErrorString(ewe_status_), ") at ", __FILE__, ":", __LINE__);             \
    } while (0)

namespace ewe::cluster::cuda {

// Number of CUDA devices; 0 when there is no driver or no device (never throws).
inline int device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky error
        return 0;
    }
    return count;
}

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(std::size_t count) : count_(count) {
        if (count > 0) EWE_CLUSTER_CUDA(cudaMalloc(&data_, count * sizeof(T)));
    }
    DeviceBuffer(const T* host, std::size_t count) : DeviceBuffer(count) { upload(host, count); }
    DeviceBuffer(DeviceBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), count_(std::exchange(o.count_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(count_, o.count_);
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() {
        if (data_) cudaFree(data_);  // no throw from a destructor
    }

    T* data() const { return data_; }
    std::size_t size() const { return count_; }
    void upload(const T* host, std::size_t count) {
        EWE_REQUIRE(count <= count_, "DeviceBuffer::upload: ", count, " elements into a buffer of ", count_);
        if (count > 0) EWE_CLUSTER_CUDA(cudaMemcpy(data_, host, count * sizeof(T), cudaMemcpyHostToDevice));
    }
    void download(T* host, std::size_t count) const {
        EWE_REQUIRE(count <= count_, "DeviceBuffer::download: ", count, " elements from a buffer of ", count_);
        if (count > 0) EWE_CLUSTER_CUDA(cudaMemcpy(host, data_, count * sizeof(T), cudaMemcpyDeviceToHost));
    }

private:
    T* data_ = nullptr;
    std::size_t count_ = 0;
};

// Checks the last kernel launch and waits for it.
inline void check_launch(const char* kernel) {
    const cudaError_t launch = cudaGetLastError();
    if (launch != cudaSuccess) fail("CUDA: launching ", kernel, " failed: ", cudaGetErrorString(launch));
    EWE_CLUSTER_CUDA(cudaDeviceSynchronize());
}

}  // namespace ewe::cluster::cuda
