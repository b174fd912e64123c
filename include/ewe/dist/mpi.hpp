// MPI for data-parallel training on CPUs: ewe::MpiSession (MPI_Init_thread /
// MPI_Finalize for the process) and ewe::MpiCommunicator (ewe/dist/communicator.hpp
// over an MPI communicator, host buffers). Needs <mpi.h>: link the CMake target
// ewe::mpi (find_package(ewe COMPONENTS mpi), or ewe_mpi in ewe's own tree), which the
// core library never does. Tested with Open MPI (Debian libopenmpi-dev).
//
// Hangs become errors: every collective is MPI's blocking call (its tuned algorithms:
// Open MPI's non-blocking MPI_Iallreduce took 2.4 times as long on the 51 MB gradient
// buffer), watched by a thread that, if the call has not returned after
// MpiOptions::timeout_seconds, prints which collective on which rank waited and ends the
// process (exit code 1; a blocking collective cannot be cancelled, and the rank could
// not go on without it); mpirun then ends the other ranks. A rank that dies outright is
// seen by mpirun, which ends the others at once. MPI errors are ewe::Error, after which
// MpiSession does not call MPI_Finalize (it would wait for the other ranks).
#pragma once

#include <mpi.h>

#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
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

// Set when a collective failed: MPI_Finalize would then wait forever.
inline bool& mpi_broken() {
    static bool broken = false;
    return broken;
}

// Ends the process with a message when a collective outlives its deadline (see the
// header comment). arm() before each blocking collective, disarm() after it.
class CollectiveWatchdog {
public:
    explicit CollectiveWatchdog(double timeout_seconds)
        : timeout_(timeout_seconds), thread_([this] { watch(); }) {}
    ~CollectiveWatchdog() {
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    CollectiveWatchdog(const CollectiveWatchdog&) = delete;
    CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

    // `message` is printed if the collective is still running after the timeout.
    void arm(std::string message) {
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            message_ = std::move(message);
            deadline_ = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_));
            armed_ = true;
        }
        wake_.notify_all();
    }
    void disarm() {
        const std::lock_guard<std::mutex> lock(mutex_);
        armed_ = false;
    }

private:
    using clock = std::chrono::steady_clock;

    void watch() {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!stop_) {
            if (!armed_) {
                wake_.wait(lock);
            } else if (clock::now() < deadline_) {
                wake_.wait_until(lock, deadline_);
            } else {
                std::fprintf(stderr, "%s\n", message_.c_str());
                std::fflush(nullptr);
                std::_Exit(1);
            }
        }
    }

    double timeout_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool armed_ = false, stop_ = false;
    clock::time_point deadline_;
    std::string message_;
    std::thread thread_;  // last: starts after the members it reads
};

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
    // A collective not finished after this long ends the process with a message (a rank
    // died, is stuck, or calls the collectives in another order). Training steps wait for
    // the slowest rank, including rank 0 while it writes a checkpoint: leave ample room.
    double timeout_seconds = 600;
};

class MpiCommunicator final : public Communicator {
public:
    explicit MpiCommunicator(MpiOptions options = {}, MPI_Comm comm = MPI_COMM_WORLD)
        : comm_(comm), options_(options), watchdog_(options.timeout_seconds) {
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
        collective("barrier", 0, [&] { return MPI_Barrier(comm_); });
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
        collective("all_reduce", std::int64_t(count) * std::int64_t(sizeof(T)), [&] {
            return MPI_Allreduce(MPI_IN_PLACE, buffer.data(), count, type, MPI_SUM, comm_);
        });
    }

    template <class T>
    void bcast(TensorView<T> buffer, int root, MPI_Datatype type) {
        const int count = count_of(buffer, "broadcast");
        EWE_REQUIRE(root >= 0 && root < size_, "MpiCommunicator::broadcast: root ", root, " is not a rank in [0, ",
                    size_, ")");
        collective("broadcast", std::int64_t(count) * std::int64_t(sizeof(T)),
                   [&] { return MPI_Bcast(buffer.data(), count, type, root, comm_); });
    }

    // Runs one blocking collective under the watchdog.
    template <class Call>
    void collective(const char* what, std::int64_t bytes, Call&& call) {
        watchdog_.arm(detail::concat("ewe::MpiCommunicator::", what, " (", bytes, " bytes): rank ", rank_, " of ", size_,
                                     " waited ", options_.timeout_seconds, " s for the other ranks "
                                     "(MpiOptions::timeout_seconds); a rank died, is stuck, or calls the collectives in "
                                     "another order. Ending this rank (exit code 1); mpirun ends the others."));
        const int status = call();
        watchdog_.disarm();
        if (status != MPI_SUCCESS) detail::mpi_broken() = true;
        detail::mpi_check(status, what);
    }

    MPI_Comm comm_;
    MpiOptions options_;
    int rank_ = 0, size_ = 1;
    detail::CollectiveWatchdog watchdog_;
};

}  // namespace ewe
