// MPI for data-parallel training on CPUs: ewe::MpiSession (MPI_Init_thread /
// MPI_Finalize for the process) and ewe::MpiCommunicator (ewe/dist/communicator.hpp
// over an MPI communicator, host buffers). Needs <mpi.h>: link the CMake target
// ewe::mpi (find_package(ewe COMPONENTS mpi), or ewe_mpi in ewe's own tree), which the
// core library never does. Tested with Open MPI (Debian libopenmpi-dev).
//
// Hangs become errors: every collective is MPI's non-blocking form, polled until
// MpiOptions::timeout_seconds; past it, the call throws ewe::Error naming the
// collective, its size and the rank, and the session does not call MPI_Finalize (which
// would wait for the missing rank) when the process leaves by an exception: the rank
// exits with its error, and mpirun then ends the others. A rank that dies outright is
// seen by mpirun, which ends the others at once.
#pragma once

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>

#include "ewe/core/error.hpp"
#include "ewe/dist/communicator.hpp"

namespace ewe {

namespace detail {

inline void mpi_check(int status, const char* call) {
    if (status == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(status, text, &length);
    fail("MPI: ", call, " failed: ", std::string(text, std::size_t(length)));
}

// Set when a collective timed out or failed: MPI_Finalize would then wait forever.
inline bool& mpi_broken() {
    static bool broken = false;
    return broken;
}

}  // namespace detail

// MPI for this process: one per program, made before any MpiCommunicator (MPI_Init_thread
// with MPI_THREAD_FUNNELED: only the thread that made it calls MPI). The destructor calls
// MPI_Finalize on a normal exit only (see the header comment).
class MpiSession {
public:
    MpiSession(int* argc = nullptr, char*** argv = nullptr) : exceptions_(std::uncaught_exceptions()) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        EWE_REQUIRE(!initialized, "MpiSession: MPI is already initialized (make one MpiSession per process)");
        int provided = 0;
        detail::mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        // Errors become return codes (ewe::Error) instead of MPI's default abort.
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    ~MpiSession() {
        if (std::uncaught_exceptions() > exceptions_ || detail::mpi_broken()) return;
        MPI_Finalize();
    }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;

private:
    int exceptions_;
};

struct MpiOptions {
    // A collective not finished after this long throws (a rank died, is stuck, or calls
    // the collectives in another order). Training steps wait for the slowest rank,
    // including rank 0 while it writes a checkpoint, so leave ample room.
    double timeout_seconds = 600;
};

class MpiCommunicator final : public Communicator {
public:
    explicit MpiCommunicator(MpiOptions options = {}, MPI_Comm comm = MPI_COMM_WORLD)
        : comm_(comm), options_(options) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        EWE_REQUIRE(initialized, "MpiCommunicator: MPI is not initialized (make an ewe::MpiSession first)");
        EWE_REQUIRE(options.timeout_seconds > 0, "MpiCommunicator: timeout_seconds must be positive, found ",
                    options.timeout_seconds);
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        detail::mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
        detail::mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    }

    const char* kind() const override { return "MPI"; }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    Device device() const override { return Device::cpu; }

    void all_reduce(TensorView<float> buffer, double weight) override { reduce(buffer, weight, MPI_FLOAT); }
    void all_reduce(TensorView<double> buffer, double weight) override { reduce(buffer, weight, MPI_DOUBLE); }
    void broadcast(TensorView<float> buffer, int root) override { bcast(buffer, root, MPI_FLOAT); }
    void broadcast(TensorView<double> buffer, int root) override { bcast(buffer, root, MPI_DOUBLE); }

    void barrier() override {
        MPI_Request request;
        detail::mpi_check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
        wait(request, "barrier", 0);
    }

private:
    template <class T>
    int count_of(const TensorView<T>& buffer, const char* what) const {
        EWE_REQUIRE(buffer.device() == Device::cpu, "MpiCommunicator::", what, ": the buffer is on ",
                    to_string(buffer.device()), "; MPI reduces host buffers (NcclCommunicator takes CUDA ones)");
        EWE_REQUIRE(buffer.numel() <= INT_MAX, "MpiCommunicator::", what, ": ", buffer.numel(),
                    " elements exceed MPI's int count (", INT_MAX, ")");
        return int(buffer.numel());
    }

    template <class T>
    void reduce(TensorView<T> buffer, double weight, MPI_Datatype type) {
        const int count = count_of(buffer, "all_reduce");
        if (weight != 1.0) {
            T* p = buffer.data();
            const T w = T(weight);
            for (int i = 0; i < count; ++i) p[i] *= w;
        }
        MPI_Request request;
        detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, buffer.data(), count, type, MPI_SUM, comm_, &request),
                          "MPI_Iallreduce");
        wait(request, "all_reduce", std::int64_t(count) * std::int64_t(sizeof(T)));
    }

    template <class T>
    void bcast(TensorView<T> buffer, int root, MPI_Datatype type) {
        const int count = count_of(buffer, "broadcast");
        EWE_REQUIRE(root >= 0 && root < size_, "MpiCommunicator::broadcast: root ", root, " is not a rank in [0, ",
                    size_, ")");
        MPI_Request request;
        detail::mpi_check(MPI_Ibcast(buffer.data(), count, type, root, comm_, &request), "MPI_Ibcast");
        wait(request, "broadcast", std::int64_t(count) * std::int64_t(sizeof(T)));
    }

    // Polls `request` (MPI_Test also drives the collective's progress): busily for the
    // first millisecond, yielding the core until 100 ms, then every millisecond.
    void wait(MPI_Request& request, const char* what, std::int64_t bytes) {
        using clock = std::chrono::steady_clock;
        const auto start = clock::now();
        for (;;) {
            int done = 0;
            const int status = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
            if (status != MPI_SUCCESS) {
                detail::mpi_broken() = true;
                detail::mpi_check(status, what);
            }
            if (done) return;
            const double waited = std::chrono::duration<double>(clock::now() - start).count();
            if (waited > options_.timeout_seconds) {
                detail::mpi_broken() = true;
                fail("MpiCommunicator::", what, " (", bytes, " bytes): rank ", rank_, " of ", size_, " waited ",
                     options_.timeout_seconds, " s for the other ranks (MpiOptions::timeout_seconds); a rank died, "
                     "is stuck, or calls the collectives in another order");
            }
            if (waited > 0.1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            else if (waited > 0.001) std::this_thread::yield();
        }
    }

    MPI_Comm comm_;
    MpiOptions options_;
    int rank_ = 0, size_ = 1;
};

}  // namespace ewe
