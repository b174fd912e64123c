// ewe::StepReplay: "run this training step; on CUDA, capture it once after a warm-up
// and replay it as a CUDA graph on every later call; if it cannot be graphed, run it
// eagerly from then on and say why, once". Device-agnostic and host-compiled: the CUDA
// side (an ewe::cuda::StepGraph, ewe/cuda/graph.cuh) sits behind the context's hook
// table, so a training loop compiled by g++ gets graph replay in a program that links
// ewe::cuda. On the CPU, and when disabled, run() just calls the step.
//
//   ewe::StepReplay replay(ctx);                       // or (ctx, {.enabled = flag, .warmup_steps = 2})
//   for (...) {
//       copy(next_batch, x);                           // new data into the captured buffer
//       replay.run([&] { ewe::train_step(ctx, vae, loss, optimizer, x.view()); });
//   }
//
// The step's rules are StepGraph's: the same ops on the same buffers every call (copy
// a new batch into one input buffer; learning rate, KL weight and the like may change,
// they travel as per-step scalars), and no host reads of device data inside it (read
// the loss terms, e.g. loss.per_sample_kl(), after run()). After the warm-up, runs are asynchronous as eager CUDA
// steps are: ctx.synchronize() or a host read waits for them.
//
// Falling back. The capture run (and each replay, whose ops are checked against the
// captured ones) may find the step cannot be graphed: an op illegal during capture, a
// host read, another StepGraph on the context, other tensors than the captured ones.
// Then nothing of the step was launched; StepReplay drops the graph, records the
// reason (fallback_reason()), reports it once (options.on_fallback, else one line on
// stderr) and runs the step eagerly, now and on every later call. The step's host-side
// work before the failing op has happened by then and happens again in the eager run
// (ewe::train_step does none before the optimizer, which comes last and counts its
// iteration before its update op: a step refused at that op counts one twice). A
// failure that is not about graphing (a CUDA error at launch, a step that throws in
// an eager run) propagates as an exception and does not change the mode.
//
// A StepReplay holds its context's resources: it must not outlive the context. One
// graph per CUDA context: a second StepReplay on the same context falls back.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"

namespace ewe {

struct StepReplayOptions {
    bool enabled = true;   // false: every run() is an eager step (e.g. a --no-graph flag)
    int warmup_steps = 1;  // eager runs before the capture, >= 1 (the workspace grows and
                           // cuDNN/cuBLASLt plans are made outside the capture)
    // Told once, with fallback_reason(), when replay falls back to eager steps; when
    // empty, StepReplay prints "ewe::StepReplay: ... running the step eagerly: <reason>"
    // to stderr.
    std::function<void(const std::string& reason)> on_fallback = {};
};

class StepReplay {
public:
    explicit StepReplay(Context& ctx, StepReplayOptions options = {})
        : ctx_(&ctx), options_(std::move(options)), graph_(nullptr, &no_graph) {
        EWE_REQUIRE(options_.warmup_steps >= 1, "ewe::StepReplay: warmup_steps must be >= 1, found ",
                    options_.warmup_steps);
        create_graph();
    }
    StepReplay(const StepReplay&) = delete;
    StepReplay& operator=(const StepReplay&) = delete;
    StepReplay(StepReplay&&) noexcept = default;
    StepReplay& operator=(StepReplay&&) noexcept = default;
    ~StepReplay() = default;

    // Runs `step` (a callable taking no arguments) once: eagerly, or captured and
    // launched as a graph, or as a replay of the captured graph (see the top of the file).
    template <class Step>
    void run(Step&& step) {
        ++runs_;
        replaying_ = false;
        if (!graph_) {
            step();
            return;
        }
        std::string why_not;
        const detail::StepGraphRun outcome =
            detail::cuda_context_hooks()->run_step_graph(graph_.get(), detail::StepRef(step), why_not);
        if (outcome == detail::StepGraphRun::launched) {
            replaying_ = true;
            ++launches_;
            return;
        }
        if (outcome == detail::StepGraphRun::eager) return;
        fall_back(std::move(why_not));
        step();
    }

    // The last run() launched the CUDA graph (the capture run included); false on the
    // CPU, when disabled, during the warm-up and after a fallback.
    bool replaying() const { return replaying_; }
    // Replay stopped because the step could not be graphed; fallback_reason() says why
    // (empty when it did not stop: also on the CPU and when disabled).
    bool fell_back() const { return !fallback_reason_.empty(); }
    const std::string& fallback_reason() const { return fallback_reason_; }
    std::int64_t runs() const { return runs_; }
    std::int64_t launches() const { return launches_; }  // graph launches so far
    const StepReplayOptions& options() const { return options_; }

    // Drops the graph and any fallback: the next run() captures again (after a fresh
    // warm-up), e.g. after the step's buffers were reallocated.
    void reset() {
        graph_.reset();
        fallback_reason_.clear();
        replaying_ = false;
        create_graph();
    }

private:
    static void no_graph(void*) noexcept {}

    void create_graph() {
        if (!options_.enabled || ctx_->device() != Device::cuda) return;
        const detail::CudaContextHooks* hooks = detail::cuda_context_hooks();
        graph_ = Graph(hooks->create_step_graph(ctx_->device_resources(), options_.warmup_steps),
                       hooks->destroy_step_graph);
    }

    void fall_back(std::string why_not) {
        graph_.reset();
        fallback_reason_ = why_not.empty() ? std::string("(no reason given)") : std::move(why_not);
        if (options_.on_fallback) {
            options_.on_fallback(fallback_reason_);
        } else {
            std::fprintf(stderr, "ewe::StepReplay: CUDA graph replay is off, running the step eagerly: %s\n",
                         fallback_reason_.c_str());
        }
    }

    using Graph = std::unique_ptr<void, void (*)(void*) noexcept>;

    Context* ctx_;
    StepReplayOptions options_;
    Graph graph_;
    std::string fallback_reason_;
    bool replaying_ = false;
    std::int64_t runs_ = 0, launches_ = 0;
};

}  // namespace ewe
