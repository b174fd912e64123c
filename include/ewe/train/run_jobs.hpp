// Runs independent jobs (the runs of a sweep, the timings of several models) on a few
// threads: job(i) for i in [0, count), `workers` at a time, each worker taking the next
// index when it is free. The first exception a job throws is rethrown once every worker
// has ended, after `on_error` (e.g. a StopToken's request_stop, so that the others end
// early too). With one worker the jobs run in order on the calling thread, and an
// exception leaves at once.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ewe {

template <class Job>
void run_jobs(std::size_t count, int workers, Job&& job, const std::function<void()>& on_error = {}) {
    if (workers <= 1) {
        for (std::size_t i = 0; i < count; ++i) job(i);
        return;
    }
    std::atomic<std::size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    std::vector<std::thread> threads;
    for (int w = 0; w < std::min<int>(workers, int(count)); ++w)
        threads.emplace_back([&] {
            for (std::size_t i = next++; i < count; i = next++) {
                try {
                    job(i);
                } catch (...) {
                    const std::lock_guard<std::mutex> lock(error_mutex);
                    if (!error) error = std::current_exception();
                    if (on_error) on_error();
                }
            }
        });
    for (std::thread& t : threads) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace ewe
