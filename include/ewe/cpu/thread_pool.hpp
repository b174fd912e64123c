// ewe::cpu::ThreadPool: the threads the CPU backend computes on. parallel_for hands out
// a loop's items one at a time from an atomic counter to the calling thread and the
// pool's workers, so a thread slowed by another process on its core takes fewer items
// instead of holding the others back (OpenMP's schedule(static) waited for it). Which
// thread ran an item never changes a result: callers fix the items from the shapes alone
// (never from the thread count) and reduce per-item partials afterwards in item order,
// so results are the same for any thread count. Waiting threads spin for a bounded time
// (kSpin) and then sleep on a futex (std::atomic::wait), so idle threads give their
// core back without the user setting OMP_WAIT_POLICY.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "ewe/core/context.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace ewe::cpu {

// The process's default number of threads for CPU ops: OpenMP's (OMP_NUM_THREADS, or
// what the program set with omp_set_num_threads) when compiled with OpenMP; without it
// OMP_NUM_THREADS if it holds a positive number, else all hardware threads. ewe itself
// never changes it.
inline int default_thread_count() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    if (const char* value = std::getenv("OMP_NUM_THREADS")) {
        char* end = nullptr;
        const long threads = std::strtol(value, &end, 10);
        if (end != value && threads > 0) return int(std::min<long>(threads, 4096));
    }
    return int(std::max(1u, std::thread::hardware_concurrency()));
#endif
}

// The number of threads the ops of `ctx` use: ContextOptions::threads, or the default.
inline int thread_count(const Context& ctx) {
    return ctx.options().threads > 0 ? ctx.options().threads : default_thread_count();
}

class ThreadPool {
public:
    // How long a waiting thread spins before it sleeps: long enough to span the gap
    // between two ops of a training step, short enough that an idle pool leaves its
    // cores to other processes at once.
    static constexpr std::chrono::microseconds kSpin{100};

    // The process's pool. Never destroyed: its sleeping workers end with the process,
    // and a child process after fork() (which has none of them) still runs every loop,
    // on its calling thread.
    static ThreadPool& instance() {
        static ThreadPool* pool = new ThreadPool;
        return *pool;
    }

    // Runs body(item, slot) for every item in [0, items), on up to `threads` threads
    // (the caller's and threads - 1 workers). `slot` in [0, threads) is the running thread's, for per-thread
    // scratch memory; two items running at once never share a slot. A call made while
    // the pool is busy (from inside an item, or from a second application thread) runs
    // its items in order on the calling thread, with slot 0. The first exception an
    // item throws stops the handing out of items and is rethrown here.
    template <class Body>
    void parallel_for(int threads, std::int64_t items, Body&& body) {
        threads = int(std::min<std::int64_t>(threads, items));
        std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
        if (threads <= 1 || !lock.owns_lock()) {
            for (std::int64_t item = 0; item < items; ++item) body(item, 0);
            return;
        }
        while (int(workers_.size()) < threads - 1) {
            const int index = int(workers_.size());
            workers_.emplace_back([this, index, seen = epoch_.load()] { work(index, seen); });
        }
        using Fn = std::remove_reference_t<Body>;
        items_ = items;
        body_ = const_cast<void*>(static_cast<const void*>(&body));
        invoke_ = [](void* b, std::int64_t item, int slot) { (*static_cast<Fn*>(b))(item, slot); };
        error_ = nullptr;
#if defined(__SSE2__)
        mxcsr_ = _mm_getcsr();  // workers compute with the caller's flush-to-zero modes
#endif
        next_.store(0);
        workers_wanted_.store(threads - 1);
        const std::uint64_t epoch = (epoch_.load() + 1) & kEpochMask;  // wraps after 2^32 jobs
        entry_.store(epoch << kEpochShift);
        epoch_.store(epoch);
        epoch_.notify_all();
        take_items(0);
        close(epoch);
        if (error_) std::rethrow_exception(error_);
    }

private:
    // entry_ packs the open job's epoch, a closed bit and the number of workers inside
    // it, so that joining (epoch still open: count + 1) and closing (count == 0: set the
    // bit) are single compare-and-swaps and no worker reads a job that is gone.
    static constexpr int kEpochShift = 32;
    static constexpr std::uint64_t kEpochMask = (std::uint64_t(1) << kEpochShift) - 1;
    static constexpr std::uint64_t kClosed = std::uint64_t(1) << 31;
    static constexpr std::uint64_t kCountMask = kClosed - 1;
    // MXCSR's control bits (flush-to-zero, rounding, exception masks, denormals-are-zero),
    // not its sticky exception flags.
    static constexpr unsigned kModeBits = ~0x3Fu;

    ThreadPool() = default;

    // Spins until pred() for up to kSpin, then sleeps on `word` until it changes from
    // the value last seen and pred() holds.
    template <class Pred>
    static void wait_until(const std::atomic<std::uint64_t>& word, Pred pred) {
        const auto give_up = std::chrono::steady_clock::now() + kSpin;
        for (std::uint32_t spins = 0;; ++spins) {
            if (pred()) return;
#if defined(__SSE2__)
            _mm_pause();
#endif
            if (spins % 64 == 63 && std::chrono::steady_clock::now() > give_up) break;
        }
        for (;;) {
            const std::uint64_t seen = word.load();
            if (pred()) return;
            word.wait(seen);
        }
    }

    void take_items(int slot) {
        for (;;) {
            const std::int64_t item = next_.fetch_add(1);
            if (item >= items_) return;
            try {
                invoke_(body_, item, slot);
            } catch (...) {
                std::lock_guard<std::mutex> guard(error_mutex_);
                if (!error_) error_ = std::current_exception();
                next_.store(items_);
            }
        }
    }

    // The caller waits for the workers inside the job to leave, then closes it.
    void close(std::uint64_t epoch) {
        for (;;) {
            std::uint64_t state = epoch << kEpochShift;
            if (entry_.compare_exchange_strong(state, state | kClosed)) return;
            wait_until(entry_, [&] { return (entry_.load() & kCountMask) == 0; });
        }
    }

    // A worker's loop; `seen` is the epoch of the last job it knows of.
    void work(int index, std::uint64_t seen) {
        for (;;) {
            wait_until(epoch_, [&] { return epoch_.load() != seen; });
            seen = epoch_.load();
            if (index >= workers_wanted_.load()) continue;
            std::uint64_t state = entry_.load();
            bool joined = false;
            while ((state >> kEpochShift) == seen && !(state & kClosed))
                if (entry_.compare_exchange_weak(state, state + 1)) {
                    joined = true;
                    break;
                }
            if (!joined) continue;
#if defined(__SSE2__)
            if ((_mm_getcsr() & kModeBits) != (mxcsr_ & kModeBits)) _mm_setcsr((_mm_getcsr() & ~kModeBits) | (mxcsr_ & kModeBits));
#endif
            take_items(index + 1);
            if ((entry_.fetch_sub(1) & kCountMask) == 1) entry_.notify_all();
        }
    }

    std::mutex busy_;
    std::vector<std::thread> workers_;
    std::atomic<std::uint64_t> epoch_{0};
    std::atomic<std::uint64_t> entry_{0};
    std::atomic<int> workers_wanted_{0};
    std::atomic<std::int64_t> next_{0};
    // The job: written by the caller before epoch_ moves on, read by workers that joined it.
    std::int64_t items_ = 0;
    void* body_ = nullptr;
    void (*invoke_)(void*, std::int64_t, int) = nullptr;
    unsigned mxcsr_ = 0;
    std::mutex error_mutex_;
    std::exception_ptr error_;
};

// parallel_for over the process's pool, on up to `threads` threads (thread_count(ctx)
// for a context's ops).
template <class Body>
void parallel_for(int threads, std::int64_t items, Body&& body) {
    ThreadPool::instance().parallel_for(threads, items, std::forward<Body>(body));
}

// Calls body(begin, end) on consecutive pieces of [0, count) of `grain` elements (the
// last one shorter), in parallel; one piece (no thread wakes) when count <= grain.
template <class Body>
void parallel_ranges(int threads, std::int64_t count, std::int64_t grain, Body&& body) {
    const std::int64_t pieces = (count + grain - 1) / grain;
    if (pieces <= 1) {
        if (count > 0) body(std::int64_t(0), count);
        return;
    }
    parallel_for(threads, pieces, [&](std::int64_t piece, int) {
        const std::int64_t begin = piece * grain;
        body(begin, std::min(count, begin + grain));
    });
}

}  // namespace ewe::cpu
