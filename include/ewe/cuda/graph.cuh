// ewe::cuda::StepGraph: an RAII guard that turns a whole training step into one CUDA
// graph, captured once and replayed every step after (tiny-cuda-nn's capture guard,
// adapted to ops that take per-step host scalars).
//
//   ewe::cuda::StepGraph graph(ctx);
//   for (...) graph.run([&] { ewe::train_step(ctx, vae, loss, optimizer, batch); });
//
// run() #1..warmup runs the step eagerly (the workspace arena grows, cuDNN/cuBLASLt
// plans are cached). The next run() captures the step on the context's stream,
// instantiates the graph and launches it. Every later run() calls the step again in
// "record" mode: each backend op checks that it repeats the captured op (same
// tensors, shapes, fixed arguments: an ewe::Error otherwise) and writes its per-step
// scalars (learning rate, Adam's bias-corrected step size, loss coefficients, Philox
// seed and offset, ...) into a pinned host mirror of the context's step-scalar block
// without launching anything; then one asynchronous cudaMemcpyAsync refreshes the
// device block and the graph is launched. Captured kernels read those scalars from the
// block. Two mirrors alternate, each rewritten only after its last upload has run
// (Resources::upload_step_scalars), so the host prepares step n + 1 while step n runs.
//
// Rules for the step: the same ops on the same buffers every time (copy a new batch
// into the captured input buffer), and no host reads of device data inside it.
#pragma once

#include <cstdint>
#include <utility>

#include "ewe/core/context.hpp"
#include "ewe/cuda/check.cuh"
#include "ewe/cuda/resources.cuh"

namespace ewe::cuda {

class StepGraph {
public:
    // warmup_steps: eager runs before the capture (at least one, so the capture
    // neither allocates nor plans).
    explicit StepGraph(Context& ctx, int warmup_steps = 1) : StepGraph(resources(ctx), warmup_steps) {}
    StepGraph(Resources& resources, int warmup_steps) : resources_(resources), warmup_(warmup_steps) {
        EWE_REQUIRE(warmup_steps >= 1, "ewe::cuda::StepGraph: warmup_steps must be >= 1, found ", warmup_steps);
    }
    StepGraph(const StepGraph&) = delete;
    StepGraph& operator=(const StepGraph&) = delete;
    ~StepGraph() { destroy(); }

    template <class Step>
    void run(Step&& step) {
        if (warming_up()) {
            std::forward<Step>(step)();
            ++eager_runs_;
            return;
        }
        prepare(std::forward<Step>(step));
        launch();
    }

    // True while run() still runs the step eagerly (before the capture).
    bool warming_up() const { return exec_ == nullptr && eager_runs_ < warmup_; }

    // run() after the warm-up, in two halves, so that a caller can tell a step that
    // cannot be graphed from a failing launch (ewe::StepReplay falls back on the
    // first, not the second). prepare() captures the step (first time) or records its
    // per-step scalars (later) and launches nothing; it throws, leaving no capture or
    // record open, when the step cannot be captured (an op that is illegal during
    // capture, workspace growth, a host read of device data) or does not repeat the
    // captured op sequence. launch() then uploads the scalars and launches the graph.
    template <class Step>
    void prepare(Step&& step) {
        if (exec_ == nullptr) {
            capture(std::forward<Step>(step));
            return;
        }
        Resources& r = resources_;
        r.begin_record();
        try {
            std::forward<Step>(step)();
        } catch (...) {
            r.abort_step();
            throw;
        }
        r.end_record();
    }

    void launch() {
        EWE_REQUIRE(exec_ != nullptr, "ewe::cuda::StepGraph::launch: no step has been captured (prepare() first)");
        Resources& r = resources_;
        r.activate();
        r.upload_step_scalars();
        EWE_CUDA_CHECK(cudaGraphLaunch(exec_, r.stream()));
        ++launches_;
    }

    // Drops the graph; the next run() captures again (after no further warm-up).
    void reset() { destroy(); }

    bool captured() const { return exec_ != nullptr; }
    std::int64_t launches() const { return launches_; }

private:
    template <class Step>
    void capture(Step&& step) {
        Resources& r = resources_;
        r.activate();
        r.begin_capture();
        const cudaError_t begun = cudaStreamBeginCapture(r.stream(), cudaStreamCaptureModeThreadLocal);
        if (begun != cudaSuccess) {
            r.abort_step();
            detail::throw_cuda(begun, "cudaStreamBeginCapture", __FILE__, __LINE__);
        }
        try {
            std::forward<Step>(step)();
        } catch (...) {
            cudaGraph_t broken = nullptr;
            (void)cudaStreamEndCapture(r.stream(), &broken);
            if (broken != nullptr) (void)cudaGraphDestroy(broken);
            (void)cudaGetLastError();
            r.abort_step();
            throw;
        }
        cudaGraph_t graph = nullptr;
        const cudaError_t ended = cudaStreamEndCapture(r.stream(), &graph);
        r.end_capture();
        if (ended != cudaSuccess) {
            if (graph != nullptr) (void)cudaGraphDestroy(graph);
            detail::throw_cuda(ended, "cudaStreamEndCapture (an op in the step is not capturable)", __FILE__,
                               __LINE__);
        }
        graph_ = graph;
        const cudaError_t made = cudaGraphInstantiate(&exec_, graph_, 0);
        if (made != cudaSuccess) {
            exec_ = nullptr;
            destroy();
            detail::throw_cuda(made, "cudaGraphInstantiate", __FILE__, __LINE__);
        }
        r.graph_created();
    }

    void destroy() {
        if (exec_ != nullptr) {
            EWE_CUDA_WARN(cudaGraphExecDestroy(exec_));  // an in-flight launch completes first
            resources_.graph_destroyed();
            exec_ = nullptr;
        }
        if (graph_ != nullptr) {
            EWE_CUDA_WARN(cudaGraphDestroy(graph_));
            graph_ = nullptr;
        }
    }

    Resources& resources_;
    int warmup_;
    int eager_runs_ = 0;
    cudaGraph_t graph_ = nullptr;
    cudaGraphExec_t exec_ = nullptr;
    std::int64_t launches_ = 0;
};

}  // namespace ewe::cuda
