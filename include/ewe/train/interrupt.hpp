// How training is stopped from outside the training loop: a StopToken (FitOptions::stop)
// that any thread may request, and the library's one Ctrl-C handler, InterruptGuard,
// which routes SIGINT to a token while it lives. Trainer::fit() checks the token after
// every step (data-parallel ranks agree on it at each loss read) and ends as on an
// interrupt: callbacks' on_interrupt, FitResult::interrupted. One token may stop several
// trainers at once, e.g. the runs of a sweep trained concurrently on their own threads.
#pragma once

#include <atomic>
#include <csignal>
#include <memory>

namespace ewe {

// A shared stop request: copies share one flag, so a copy kept by the caller stops the
// fit() that holds another.
class StopToken {
public:
    StopToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
    void request_stop() const { flag_->store(true); }
    bool stop_requested() const { return flag_->load(); }

private:
    friend class InterruptGuard;
    std::shared_ptr<std::atomic<bool>> flag_;
};

// While it lives, SIGINT requests a stop on `token` (cleared when the guard starts);
// the previous handler, and the token an enclosing guard served, come back at its end.
class InterruptGuard {
public:
    explicit InterruptGuard(const StopToken& token) : token_(token) {
        static_assert(std::atomic<std::atomic<bool>*>::is_always_lock_free,
                      "InterruptGuard: a signal handler may only touch lock-free atomics");
        token_.flag_->store(false);
        previous_target_ = target().exchange(token_.flag_.get());
        previous_handler_ = std::signal(SIGINT, [](int) {
            if (std::atomic<bool>* flag = target().load()) flag->store(true);
        });
    }
    ~InterruptGuard() {
        std::signal(SIGINT, previous_handler_);
        target().store(previous_target_);
    }
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

private:
    // The flag SIGINT sets: the innermost guard's token.
    static std::atomic<std::atomic<bool>*>& target() {
        static std::atomic<std::atomic<bool>*> flag{nullptr};
        return flag;
    }

    StopToken token_;  // keeps the flag alive while the handler may set it
    std::atomic<bool>* previous_target_ = nullptr;
    void (*previous_handler_)(int) = SIG_DFL;
};

}  // namespace ewe
