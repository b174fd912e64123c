// Per-context CUDA resources (what ewe::Context::device_resources() points to for
// Device::cuda): the device, one non-blocking stream, the cuDNN and cuBLASLt handles
// bound to it, a workspace arena that grows only outside graph capture, the cached
// cuDNN descriptors and algorithms per convolution shape, the cached cuBLASLt
// matmul plans per GEMM shape, the device "step scalars" block that CUDA graph
// replays read their per-step host scalars from (ewe/cuda/graph.cuh) with its two
// pinned host mirrors, and a small device error block for errors found inside
// kernels. Everything is ordered on the context's stream: it is non-blocking, so
// nothing here may use the legacy default stream (no cudaMemset, no plain cudaMemcpy).
//
// Numerics follow ContextOptions: TF32 tensor cores only with allow_tf32 (else cuDNN
// runs CUDNN_FMA_MATH and cuBLASLt CUBLAS_COMPUTE_32F, exact fp32), deterministic
// cuDNN algorithms and no split-K reduction in cuBLASLt with deterministic.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include <cuda_runtime.h>

#include "ewe/core/context.hpp"
#include "ewe/cuda/check.cuh"
#include "ewe/ops/geometry.hpp"
#include "ewe/kernels/common.cuh"

namespace ewe::cuda {

using kernels::StepScalar;

// How ops run: eagerly, being captured into a CUDA graph, or (during a graph replay)
// only recording their per-step scalars without launching anything.
enum class StepMode { eager, capture, record };

// FNV-1a over 64-bit words: identifies one op call (name, tensors, shapes, fixed
// arguments) so a replay can check it repeats the captured sequence exactly.
class Fingerprint {
public:
    explicit Fingerprint(const char* op) {
        for (const char* c = op; *c != '\0'; ++c) mix(static_cast<std::uint64_t>(static_cast<unsigned char>(*c)));
    }
    Fingerprint& add(std::uint64_t v) {
        mix(v);
        return *this;
    }
    Fingerprint& add(std::int64_t v) { return add(static_cast<std::uint64_t>(v)); }
    Fingerprint& add(int v) { return add(static_cast<std::uint64_t>(static_cast<std::int64_t>(v))); }
    Fingerprint& add(unsigned v) { return add(static_cast<std::uint64_t>(v)); }
    Fingerprint& add(bool v) { return add(static_cast<std::uint64_t>(v)); }
    Fingerprint& add(double v) {
        std::uint64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        return add(bits);
    }
    Fingerprint& add(const void* p) { return add(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p))); }
    template <class T>
    Fingerprint& add(const TensorView<T>& t) {
        add(static_cast<const void*>(t.data()));
        add(static_cast<std::uint64_t>(t.rank()));
        for (int i = 0; i < t.rank(); ++i) add(t.dim(i));
        return *this;
    }
    Fingerprint& add(const ConvGeometry& g) {
        add(g.batch).add(g.in_c).add(g.out_c);
        for (const ConvAxis* a : {&g.h, &g.w}) add(a->in).add(a->out).add(a->kernel).add(a->stride).add(a->pad_before).add(a->pad_after);
        return *this;
    }
    std::uint64_t value() const { return hash_; }

private:
    void mix(std::uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            hash_ ^= (v >> (8 * i)) & 0xFFu;
            hash_ *= 1099511628211ull;
        }
    }
    std::uint64_t hash_ = 14695981039346656037ull;
};

// The cached plans: cuDNN descriptors and algorithms of one convolution shape
// (ewe/cuda/conv.cuh) and a cuBLASLt matmul plan of one GEMM shape (ewe/cuda/gemm.cuh).
// The caches hold them by shared_ptr, whose deleter is fixed where the plan is made,
// so Resources can own and destroy them without their definitions.
struct ConvPlan;
struct GemmPlan;

// How many convolution ops (forward or backward, plain or transposed) ran through
// cuDNN and how many through the im2col + cuBLASLt GEMM fallback, since the context
// was made: tests assert which path a shape takes.
struct ConvPathCounts {
    std::int64_t cudnn = 0;
    std::int64_t gemm = 0;
};

class Resources {
public:
    static constexpr std::size_t kStepSlots = 4096;        // 8-byte per-step scalars per captured step
    static constexpr std::size_t kMaxGemmWorkspace = 32u << 20;
    static constexpr std::size_t kMaxConvWorkspace = 1u << 30;

    explicit Resources(const ContextOptions& options) : options_(options) {
        int count = 0;
        const cudaError_t status = cudaGetDeviceCount(&count);
        EWE_REQUIRE(status == cudaSuccess && count > 0, "ewe::Context(Device::cuda): no CUDA device is available (",
                    cudaGetErrorString(status), ")");
        EWE_REQUIRE(options.cuda_device >= 0 && options.cuda_device < count, "ewe::Context(Device::cuda): "
                    "ContextOptions::cuda_device is ", options.cuda_device, " but the machine has ", count,
                    " CUDA device(s)");
        device_ = options.cuda_device;
        try {
            EWE_CUDA_CHECK(cudaSetDevice(device_));
            EWE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
            EWE_CUDNN_CHECK(cudnnCreate(&cudnn_));
            EWE_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
            EWE_CUBLAS_CHECK(cublasLtCreate(&cublaslt_));
            EWE_CUDA_CHECK(cudaMalloc(&step_block_, kStepSlots * sizeof(std::uint64_t)));
            EWE_CUDA_CHECK(cudaMemsetAsync(step_block_, 0, kStepSlots * sizeof(std::uint64_t), stream_));
            for (StepMirror& m : step_mirrors_) {
                EWE_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&m.values), kStepSlots * sizeof(std::uint64_t),
                                             cudaHostAllocDefault));
                std::memset(m.values, 0, kStepSlots * sizeof(std::uint64_t));
                EWE_CUDA_CHECK(cudaEventCreateWithFlags(&m.uploaded, cudaEventDisableTiming));
            }
            EWE_CUDA_CHECK(cudaMalloc(&errors_, kErrorWords * sizeof(unsigned long long)));
            EWE_CUDA_CHECK(cudaMemsetAsync(errors_, 0, kErrorWords * sizeof(unsigned long long), stream_));
            // The blocks are zero before any op of this context (ops are ordered after
            // this on the stream) and before the constructor returns.
            EWE_CUDA_CHECK(cudaStreamSynchronize(stream_));
        } catch (...) {
            release_all();
            throw;
        }
        const char* force = std::getenv("EWE_CUDA_CONV_GEMM");
        force_conv_gemm_ = force != nullptr && force[0] == '1';
    }

    Resources(const Resources&) = delete;
    Resources& operator=(const Resources&) = delete;

    ~Resources() { release_all(); }

private:
    void release_all() noexcept {
        EWE_CUDA_WARN(cudaSetDevice(device_));
        if (stream_) EWE_CUDA_WARN(cudaStreamSynchronize(stream_));
        conv_plans_.clear();
        gemm_plans_.clear();
        for (std::byte* p : retired_) EWE_CUDA_WARN(cudaFree(p));
        if (workspace_) EWE_CUDA_WARN(cudaFree(workspace_));
        if (step_block_) EWE_CUDA_WARN(cudaFree(step_block_));
        for (StepMirror& m : step_mirrors_) {
            if (m.uploaded) EWE_CUDA_WARN(cudaEventDestroy(m.uploaded));
            if (m.values) EWE_CUDA_WARN(cudaFreeHost(m.values));
            m = StepMirror{};
        }
        if (errors_) EWE_CUDA_WARN(cudaFree(errors_));
        if (cublaslt_) cublasLtDestroy(cublaslt_);
        if (cudnn_) cudnnDestroy(cudnn_);
        if (stream_) EWE_CUDA_WARN(cudaStreamDestroy(stream_));
        retired_.clear();
        workspace_ = nullptr;
        step_block_ = nullptr;
        errors_ = nullptr;
        cublaslt_ = nullptr;
        cudnn_ = nullptr;
        stream_ = nullptr;
    }

public:
    const ContextOptions& options() const { return options_; }
    // EWE_CUDA_CONV_GEMM=1 at context creation: convolutions skip cuDNN (for tests).
    bool force_conv_gemm() const { return force_conv_gemm_; }
    int device() const { return device_; }
    cudaStream_t stream() const { return stream_; }
    cudnnHandle_t cudnn() const { return cudnn_; }
    cublasLtHandle_t cublaslt() const { return cublaslt_; }

    // Makes this context's GPU current for the calling thread.
    void activate() const {
        int current = -1;
        EWE_CUDA_CHECK(cudaGetDevice(&current));
        if (current != device_) EWE_CUDA_CHECK(cudaSetDevice(device_));
    }

    // Waits for the stream, then reports errors that kernels recorded (and clears them,
    // ordered on the stream before any later op).
    void synchronize() {
        activate();
        unsigned long long host[kErrorWords] = {};
        EWE_CUDA_CHECK(cudaMemcpyAsync(host, errors_, sizeof host, cudaMemcpyDeviceToHost, stream_));
        EWE_CUDA_CHECK(cudaStreamSynchronize(stream_));
        if (host[0] != 0) {
            EWE_CUDA_CHECK(cudaMemsetAsync(errors_, 0, sizeof host, stream_));
            fail("ops::gather_images: index ", static_cast<long long>(host[1]), " at position ",
                 static_cast<long long>(host[2]), " is outside the images (", host[0],
                 " bad indices; reported by the CUDA backend at ctx.synchronize())");
        }
    }
    // kernels/gather.cuh's layout: [0] count of bad indices, [1] first bad index, [2] its position.
    unsigned long long* error_block() const { return errors_; }

    // ---- workspace arena
    // A device buffer of at least `bytes`, valid for the op that asks (ops on one
    // stream run in order, so every op may reuse it from the start). Grows outside
    // capture only; a buffer that a captured graph may still use is kept until the
    // context dies.
    std::byte* workspace(std::size_t bytes) {
        if (bytes <= workspace_bytes_) return workspace_;
        EWE_REQUIRE(mode_ != StepMode::capture && !capturing(), "ewe CUDA backend: an op needs ", bytes,
                    " bytes of workspace but the arena holds ", workspace_bytes_, " and cannot grow while a CUDA "
                    "graph is being captured; run the step once eagerly first (ewe::cuda::StepGraph does)");
        const std::size_t grown = std::max(bytes, workspace_bytes_ + workspace_bytes_ / 2);
        const std::size_t rounded = (grown + (1u << 20) - 1) & ~std::size_t((1u << 20) - 1);
        if (workspace_ != nullptr) {
            if (graphs_alive_ > 0) {
                retired_.push_back(workspace_);
            } else {
                EWE_CUDA_CHECK(cudaStreamSynchronize(stream_));
                EWE_CUDA_CHECK(cudaFree(workspace_));
            }
            workspace_ = nullptr;
            workspace_bytes_ = 0;
        }
        EWE_CUDA_CHECK(cudaMalloc(&workspace_, rounded));
        workspace_bytes_ = rounded;
        return workspace_;
    }
    std::size_t workspace_bytes() const { return workspace_bytes_; }

    bool capturing() const {
        cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
        EWE_CUDA_CHECK(cudaStreamIsCapturing(stream_, &status));
        return status != cudaStreamCaptureStatusNone;
    }

    // ---- step scalars and the op sequence of a captured step (see graph.cuh)
    StepMode mode() const { return mode_; }

    // Called at the start of every backend op with the op's fingerprint.
    void begin_op(const Fingerprint& fp, const char* op) {
        switch (mode_) {
            case StepMode::eager: return;
            case StepMode::capture:
                ops_.push_back(OpRecord{fp.value(), slot_cursor_, op});
                return;
            case StepMode::record: {
                EWE_REQUIRE(op_cursor_ < ops_.size(), "ewe::cuda::StepGraph: the replayed step calls ", op,
                            " after the ", ops_.size(), " ops that were captured; the step must repeat the "
                            "captured op sequence (recapture with StepGraph::reset())");
                const OpRecord& r = ops_[op_cursor_];
                EWE_REQUIRE(r.fingerprint == fp.value() && r.first_slot == slot_cursor_,
                            "ewe::cuda::StepGraph: op #", op_cursor_, " of the replayed step is ", op,
                            " but differs from the captured ", r.op, " (other tensors, shapes or fixed "
                            "arguments); feed new data by copying it into the captured buffers, or reset()");
                ++op_cursor_;
                return;
            }
        }
    }

    // A per-step scalar: by value eagerly, else through a slot of the step block.
    template <class V>
    StepScalar<V> scalar(V value) {
        static_assert(sizeof(V) == sizeof(std::uint64_t), "step scalars are 8-byte values");
        if (mode_ == StepMode::eager) return StepScalar<V>{value, nullptr};
        EWE_REQUIRE(slot_cursor_ < kStepSlots, "ewe::cuda::StepGraph: a captured step uses more than ", kStepSlots,
                    " per-step scalars");
        std::memcpy(&step_mirrors_[mirror_].values[slot_cursor_], &value, sizeof value);
        const V* slot = reinterpret_cast<const V*>(step_block_ + slot_cursor_);
        ++slot_cursor_;
        return StepScalar<V>{value, slot};
    }

    // False while a replay only records scalars: the op must return without launching.
    bool launching() const { return mode_ != StepMode::record; }

    void begin_capture() {
        EWE_REQUIRE(mode_ == StepMode::eager, "ewe::cuda::StepGraph: a step is already being captured or replayed");
        EWE_REQUIRE(graphs_alive_ == 0, "ewe::cuda::StepGraph: this context already holds a captured step graph "
                    "(one StepGraph per context: reset() or destroy the other one first)");
        ops_.clear();
        slot_cursor_ = 0;
        claim_mirror();
        mode_ = StepMode::capture;
    }
    void end_capture() {
        captured_slots_ = slot_cursor_;
        mode_ = StepMode::eager;
    }
    void begin_record() {
        EWE_REQUIRE(mode_ == StepMode::eager, "ewe::cuda::StepGraph: a step is already being captured or replayed");
        op_cursor_ = 0;
        slot_cursor_ = 0;
        claim_mirror();
        mode_ = StepMode::record;
    }
    void end_record() {
        mode_ = StepMode::eager;
        EWE_REQUIRE(op_cursor_ == ops_.size() && slot_cursor_ == captured_slots_, "ewe::cuda::StepGraph: the "
                    "replayed step ran ", op_cursor_, " ops but ", ops_.size(), " were captured; the step must "
                    "repeat the captured op sequence (recapture with StepGraph::reset())");
    }
    void abort_step() { mode_ = StepMode::eager; }

    // Copies the recorded scalars from the current pinned mirror into the device block,
    // ordered before what follows on the stream (the graph launch), and records the
    // mirror's event after the copy. The copy from pinned memory is truly asynchronous:
    // it reads the mirror whenever the stream gets there, so the host must not rewrite
    // that mirror until the event has completed. The next step writes the other mirror
    // (claim_mirror waits for its event), so a step's host code overlaps the previous
    // replay and never races its upload.
    void upload_step_scalars() {
        if (captured_slots_ == 0) return;
        StepMirror& m = step_mirrors_[mirror_];
        EWE_CUDA_CHECK(cudaMemcpyAsync(step_block_, m.values, captured_slots_ * sizeof(std::uint64_t),
                                       cudaMemcpyHostToDevice, stream_));
        EWE_CUDA_CHECK(cudaEventRecord(m.uploaded, stream_));
    }
    void graph_created() { ++graphs_alive_; }
    void graph_destroyed() { --graphs_alive_; }

    // ---- cached plans (made and used by ewe/cuda/conv.cuh and ewe/cuda/gemm.cuh)
    using ConvKey = std::array<std::int64_t, 13>;
    std::map<ConvKey, std::shared_ptr<ConvPlan>>& conv_plans() { return conv_plans_; }
    using GemmKey = std::array<std::int64_t, 11>;
    std::map<GemmKey, std::shared_ptr<GemmPlan>>& gemm_plans() { return gemm_plans_; }

    // ---- which path the convolutions took (counted by the backend as they launch)
    const ConvPathCounts& conv_path_counts() const { return conv_paths_; }
    void count_conv_path(bool gemm) { ++(gemm ? conv_paths_.gemm : conv_paths_.cudnn); }

private:
    struct OpRecord {
        std::uint64_t fingerprint;
        std::size_t first_slot;
        const char* op;
    };

    // A pinned host copy of the step block and the event recorded after its upload.
    struct StepMirror {
        std::uint64_t* values = nullptr;
        cudaEvent_t uploaded = nullptr;
    };
    static constexpr std::size_t kErrorWords = 4;

    // Switches to the other mirror before a step writes its scalars, waiting until the
    // stream has copied what that mirror held two steps ago (see upload_step_scalars).
    void claim_mirror() {
        mirror_ = 1 - mirror_;
        EWE_CUDA_CHECK(cudaEventSynchronize(step_mirrors_[mirror_].uploaded));
    }

    ContextOptions options_;
    bool force_conv_gemm_ = false;
    int device_ = 0;
    cudaStream_t stream_ = nullptr;
    cudnnHandle_t cudnn_ = nullptr;
    cublasLtHandle_t cublaslt_ = nullptr;

    std::byte* workspace_ = nullptr;
    std::size_t workspace_bytes_ = 0;
    std::vector<std::byte*> retired_;
    int graphs_alive_ = 0;

    std::uint64_t* step_block_ = nullptr;
    std::array<StepMirror, 2> step_mirrors_{};
    int mirror_ = 0;
    StepMode mode_ = StepMode::eager;
    std::vector<OpRecord> ops_;
    std::size_t op_cursor_ = 0, slot_cursor_ = 0, captured_slots_ = 0;

    unsigned long long* errors_ = nullptr;

    std::map<ConvKey, std::shared_ptr<ConvPlan>> conv_plans_;
    std::map<GemmKey, std::shared_ptr<GemmPlan>> gemm_plans_;
    ConvPathCounts conv_paths_;
};

// The resources of a CUDA context (checked).
inline Resources& resources(const Context& ctx) {
    EWE_REQUIRE(ctx.device() == Device::cuda && ctx.device_resources() != nullptr,
                "ewe CUDA backend: the context is not a CUDA context");
    return *static_cast<Resources*>(ctx.device_resources());
}

// Carves aligned pieces out of one workspace request.
class WorkspaceCarver {
public:
    static constexpr std::size_t kAlign = 256;
    static std::size_t round(std::size_t bytes) { return (bytes + kAlign - 1) & ~(kAlign - 1); }

    // First pass: add up the pieces; second: take them in the same order.
    std::size_t reserve(std::size_t bytes) {
        total_ += round(bytes);
        return total_;
    }
    std::size_t total() const { return total_; }
    void bind(std::byte* base) {
        base_ = base;
        used_ = 0;
    }
    template <class T>
    T* take(std::size_t count) {
        T* p = reinterpret_cast<T*>(base_ + used_);
        used_ += round(count * sizeof(T));
        return p;
    }

private:
    std::size_t total_ = 0, used_ = 0;
    std::byte* base_ = nullptr;
};

}  // namespace ewe::cuda
