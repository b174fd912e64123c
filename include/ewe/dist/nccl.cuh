// ewe::NcclCommunicator: ewe/dist/communicator.hpp over NCCL, for CUDA buffers, each
// collective ordered on the context's stream. The ranks join through a shared
// ncclUniqueId, which rank 0 makes and hands on: through another communicator (MPI:
// nccl_unique_id(mpi)) or a file (nccl_unique_id_file). A weighted all-reduce is NCCL's
// pre-multiplied sum (ncclRedOpCreatePreMulSum), so it stays one call.
//
// Hangs become errors: the communicator is created non-blocking, and every call waits
// for its work (stream query and ncclCommGetAsyncError, polled) at most
// NcclOptions::timeout_seconds; past it, or on an asynchronous NCCL error, the
// communicator is aborted (ncclCommAbort) and the call throws ewe::Error. Waiting makes
// each collective a host synchronization point (once per training step).
//
// Compiled by nvcc with ewe's CUDA backend in the program (ewe_cuda_eager: it uses the
// context's Resources) and linked to libnccl (CMake target ewe_nccl).
#pragma once

#include <nccl.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "ewe/cuda/resources.cuh"
#include "ewe/dist/communicator.hpp"
#include "ewe/io/atomic_file.hpp"

namespace ewe {

struct NcclOptions {
    // A collective (or joining the group) not finished after this long throws.
    double timeout_seconds = 600;
};

namespace detail {
inline void nccl_check(ncclResult_t status, const char* call) {
    if (status != ncclSuccess && status != ncclInProgress)
        fail("NCCL: ", call, " failed: ", ncclGetErrorString(status), " (", ncclGetLastError(nullptr), ")");
}
}  // namespace detail

class NcclCommunicator final : public Communicator {
public:
    // Joins the group of `size` ranks sharing `id` as rank `rank`, on ctx's GPU and stream.
    NcclCommunicator(Context& ctx, const ncclUniqueId& id, int rank, int size, NcclOptions options = {})
        : resources_(cuda::resources(ctx)), options_(options), rank_(rank), size_(size) {
        EWE_REQUIRE(size >= 1 && rank >= 0 && rank < size, "NcclCommunicator: rank ", rank, " is not in [0, ", size,
                    ")");
        EWE_REQUIRE(options.timeout_seconds > 0, "NcclCommunicator: timeout_seconds must be positive, found ",
                    options.timeout_seconds);
        resources_.activate();
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0;
        detail::nccl_check(ncclCommInitRankConfig(&comm_, size, id, rank, &config), "ncclCommInitRankConfig");
        wait("joining the group", 0);
    }
    ~NcclCommunicator() {
        if (comm_ == nullptr) return;
        if (broken_) ncclCommAbort(comm_);
        else ncclCommDestroy(comm_);
    }
    NcclCommunicator(const NcclCommunicator&) = delete;
    NcclCommunicator& operator=(const NcclCommunicator&) = delete;

    const char* kind() const override { return "NCCL"; }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    Device device() const override { return Device::cuda; }

    void all_reduce(TensorView<float> buffer, double weight) override { reduce(buffer, weight, ncclFloat); }
    void all_reduce(TensorView<double> buffer, double weight) override { reduce(buffer, weight, ncclDouble); }
    void broadcast(TensorView<float> buffer, int root) override { bcast(buffer, root, ncclFloat); }
    void broadcast(TensorView<double> buffer, int root) override { bcast(buffer, root, ncclDouble); }

    // NCCL has no barrier: an all-reduce of one float in a scratch buffer.
    void barrier() override {
        if (token_.data() == nullptr) token_ = Tensor<float>(Shape{1}, Device::cuda);
        reduce(token_.view(), 1.0, ncclFloat);
    }

private:
    template <class T>
    void on_device(const TensorView<T>& buffer, const char* what) const {
        EWE_REQUIRE(buffer.device() == Device::cuda, "NcclCommunicator::", what, ": the buffer is on ",
                    to_string(buffer.device()), "; NCCL reduces CUDA buffers (MpiCommunicator takes host ones)");
    }

    template <class T>
    void reduce(TensorView<T> buffer, double weight, ncclDataType_t type) {
        on_device(buffer, "all_reduce");
        resources_.activate();
        ncclRedOp_t op = ncclSum;
        const T scalar = T(weight);
        if (weight != 1.0)
            detail::nccl_check(ncclRedOpCreatePreMulSum(&op, const_cast<T*>(&scalar), type, ncclScalarHostImmediate, comm_),
                               "ncclRedOpCreatePreMulSum");
        detail::nccl_check(ncclAllReduce(buffer.data(), buffer.data(), std::size_t(buffer.numel()), type, op, comm_,
                                         resources_.stream()),
                           "ncclAllReduce");
        wait("all_reduce", buffer.numel() * std::int64_t(sizeof(T)));
        if (op != ncclSum) detail::nccl_check(ncclRedOpDestroy(op, comm_), "ncclRedOpDestroy");
    }

    template <class T>
    void bcast(TensorView<T> buffer, int root, ncclDataType_t type) {
        on_device(buffer, "broadcast");
        EWE_REQUIRE(root >= 0 && root < size_, "NcclCommunicator::broadcast: root ", root, " is not a rank in [0, ",
                    size_, ")");
        resources_.activate();
        detail::nccl_check(ncclBroadcast(buffer.data(), buffer.data(), std::size_t(buffer.numel()), type, root, comm_,
                                         resources_.stream()),
                           "ncclBroadcast");
        wait("broadcast", buffer.numel() * std::int64_t(sizeof(T)));
    }

    // Until NCCL has issued the work and the stream has run it, or the deadline.
    void wait(const char* what, std::int64_t bytes) {
        using clock = std::chrono::steady_clock;
        const auto start = clock::now();
        for (;;) {
            ncclResult_t state = ncclSuccess;
            detail::nccl_check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
            if (state != ncclSuccess && state != ncclInProgress) {
                broken_ = true;
                fail("NcclCommunicator::", what, " (", bytes, " bytes) on rank ", rank_, " of ", size_, ": ",
                     ncclGetErrorString(state));
            }
            if (state == ncclSuccess) {
                const cudaError_t done = cudaStreamQuery(resources_.stream());
                if (done == cudaSuccess) return;
                if (done != cudaErrorNotReady) {
                    broken_ = true;
                    EWE_CUDA_CHECK(done);
                }
            }
            const double waited = std::chrono::duration<double>(clock::now() - start).count();
            if (waited > options_.timeout_seconds) {
                broken_ = true;
                fail("NcclCommunicator::", what, " (", bytes, " bytes): rank ", rank_, " of ", size_, " waited ",
                     options_.timeout_seconds, " s for the other ranks (NcclOptions::timeout_seconds); a rank died, "
                     "is stuck, or calls the collectives in another order");
            }
            if (waited > 0.1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            else if (waited > 0.001) std::this_thread::yield();
        }
    }

    cuda::Resources& resources_;
    NcclOptions options_;
    int rank_, size_;
    ncclComm_t comm_ = nullptr;
    bool broken_ = false;
    Tensor<float> token_;
};

// Rank 0's new unique id, handed to every rank through `host` (e.g. an MpiCommunicator
// over the same processes); every rank calls this.
inline ncclUniqueId nccl_unique_id(Communicator& host) {
    EWE_REQUIRE(host.device() == Device::cpu, "nccl_unique_id: hand the id on through a host communicator (MPI), "
                "not ", host.kind());
    ncclUniqueId id{};
    static_assert(sizeof(id) % sizeof(double) == 0);
    if (host.rank() == 0) detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    Tensor<double> bytes(Shape{std::int64_t(sizeof(id) / sizeof(double))});
    std::memcpy(bytes.data(), &id, sizeof(id));
    host.broadcast(bytes.view(), 0);
    std::memcpy(&id, bytes.data(), sizeof(id));
    return id;
}

// Rank 0 writes a new unique id to `path` (atomically); the other ranks wait for the file
// up to timeout_seconds. Use a fresh path per run: a file left by an earlier run would
// be read as this run's.
inline ncclUniqueId nccl_unique_id_file(const std::filesystem::path& path, int rank, double timeout_seconds = 600) {
    ncclUniqueId id{};
    if (rank == 0) {
        detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
        io::write_file_atomically(path, "nccl_unique_id_file", [&](std::ostream& out) {
            out.write(reinterpret_cast<const char*>(&id), sizeof(id));
        });
        return id;
    }
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        std::error_code ec;
        if (std::filesystem::file_size(path, ec) == sizeof(id) && !ec) {
            std::ifstream in(path, std::ios::binary);
            if (in.read(reinterpret_cast<char*>(&id), sizeof(id))) return id;
        }
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_seconds)
            fail("nccl_unique_id_file: rank ", rank, " waited ", timeout_seconds, " s for rank 0 to write ",
                 path.string(), " (", sizeof(id), " bytes)");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

}  // namespace ewe
