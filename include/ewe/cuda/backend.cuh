// The CUDA backend: every op of ewe/ops/backend.hpp on the GPU, with the semantics of
// the CPU reference (ewe/cpu/backend.hpp). Convolutions go through cuDNN on NHWC
// tensors (filters (out_c, kh, kw, in_c) = cuDNN's NHWC/KRSC filter format), dense
// layers through cuBLASLt, the rest through the hand-written kernels in kernels/*.cuh.
// Including this header (ewe/ewe.hpp does so under nvcc with EWE_WITH_CUDA) installs
// the device-memory and context hooks of ewe/core, so Context(Device::cuda) works.
//
// Every op begins by announcing itself to the context's Resources (begin_op with a
// fingerprint of its arguments) and routing its per-step host scalars through
// Resources::scalar: that is what lets ewe::cuda::StepGraph (graph.cuh) capture a
// training step once and replay it with new learning rates, loss coefficients and
// Philox offsets. Only float is supported; the double backend throws.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/cuda/check.cuh"
#include "ewe/cuda/resources.cuh"
#include "ewe/ops/backend.hpp"
#include "kernels/batchnorm.cuh"
#include "kernels/dropout.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/gather.cuh"
#include "kernels/im2col.cuh"
#include "kernels/losses.cuh"
#include "kernels/optimizers.cuh"
#include "kernels/reduce.cuh"
#include "kernels/reparam.cuh"

namespace ewe::cuda {

namespace detail {

inline int as_int(std::int64_t v, const char* what) {
    EWE_REQUIRE(v >= 0 && v <= std::numeric_limits<int>::max(), "ewe CUDA backend: ", what, " = ", v,
                " does not fit the int that cuDNN takes");
    return static_cast<int>(v);
}

// Largest power of two (at most 256) that divides the address.
inline std::uint32_t alignment_of(const void* p) {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    std::uint32_t align = 256;
    while (align > 4 && address % align != 0) align /= 2;
    return align;
}
inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// ---------------------------------------------------------------- cuBLASLt
// Column-major C(m, n) = op(A) op(B) (op = transpose when ta / tb), beta = 0, C
// contiguous (ldc = m). The plan (descriptors, layouts, heuristic algorithm) is
// cached per shape and per pointer alignment, which cuBLASLt's heuristics need
// (parameters live at arbitrary offsets of the flat parameter buffer).
// workspace_offset: where in the arena cuBLASLt's workspace starts, for callers that
// keep their own data at the front (they must have reserved offset + kMaxGemmWorkspace).
inline void gemm(Resources& r, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* A,
                 std::int64_t lda, const float* B, std::int64_t ldb, float* C, std::size_t workspace_offset = 0) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        EWE_CUDA_CHECK(cudaMemsetAsync(C, 0, static_cast<std::size_t>(m * n) * sizeof(float), r.stream()));
        return;
    }
    const std::uint32_t align_a = alignment_of(A), align_b = alignment_of(B), align_c = alignment_of(C);
    const Resources::GemmKey key{ta, tb, m, n, k, lda, ldb, m, align_a, align_b, align_c};
    auto& cache = r.gemm_plans();
    auto found = cache.find(key);
    if (found == cache.end()) {
        auto plan = std::make_unique<GemmPlan>();
        const cublasComputeType_t compute = r.options().allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        EWE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, compute, CUDA_R_32F));
        const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        EWE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
        EWE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
        EWE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_32F, static_cast<std::uint64_t>(ta ? k : m),
                                                    static_cast<std::uint64_t>(ta ? m : k), lda));
        EWE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_32F, static_cast<std::uint64_t>(tb ? n : k),
                                                    static_cast<std::uint64_t>(tb ? k : n), ldb));
        EWE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, CUDA_R_32F, static_cast<std::uint64_t>(m),
                                                    static_cast<std::uint64_t>(n), m));
        struct PreferenceGuard {
            cublasLtMatmulPreference_t pref = nullptr;
            ~PreferenceGuard() {
                if (pref) cublasLtMatmulPreferenceDestroy(pref);
            }
        } guard;
        EWE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&guard.pref));
        cublasLtMatmulPreference_t pref = guard.pref;
        const std::uint64_t max_ws = Resources::kMaxGemmWorkspace;
        EWE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws,
                                                              sizeof max_ws));
        EWE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                              &align_a, sizeof align_a));
        EWE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                              &align_b, sizeof align_b));
        EWE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                              &align_c, sizeof align_c));
        EWE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                              &align_c, sizeof align_c));
        if (r.options().deterministic) {
            const std::uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;  // no split-K: one summation order
            EWE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                                  &scheme, sizeof scheme));
        }
        cublasLtMatmulHeuristicResult_t result{};
        int returned = 0;
        EWE_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(r.cublaslt(), plan->desc, plan->a, plan->b, plan->c, plan->c,
                                                        pref, 1, &result, &returned));
        EWE_REQUIRE(returned > 0, "ewe CUDA backend: cuBLASLt has no algorithm for the GEMM m=", m, " n=", n, " k=", k,
                    " (transa ", ta, ", transb ", tb, ")");
        plan->algo = result.algo;
        plan->workspace = result.workspaceSize;
        found = cache.emplace(key, std::move(plan)).first;
    }
    const GemmPlan& plan = *found->second;
    std::byte* workspace = r.workspace(workspace_offset + plan.workspace) + workspace_offset;
    const float one = 1.0f, zero = 0.0f;
    EWE_CUBLAS_CHECK(cublasLtMatmul(r.cublaslt(), plan.desc, &one, A, plan.a, B, plan.b, &zero, C, plan.c, C, plan.c,
                                    &plan.algo, workspace, plan.workspace, r.stream()));
}

// Row-major C(M, N) = op(A) op(B): A is (M, K), or (K, M) when ta; B is (K, N), or
// (N, K) when tb. In column-major terms C^T = op(B)^T op(A)^T.
inline void gemm_row_major(Resources& r, bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K,
                           const float* A, const float* B, float* C, std::size_t workspace_offset = 0) {
    gemm(r, tb, ta, N, M, K, B, tb ? K : N, A, ta ? M : K, C, workspace_offset);
}

// ---------------------------------------------------------------- cuDNN
// Picks the first heuristic candidate that runs here: status ok, deterministic when
// asked, no TF32 unless allowed (never FP16 down-conversion), workspace query ok.
template <class Perf, class Algo, class Query>
bool choose_algorithm(const Perf* perfs, int count, const Resources& r,
                      cudnnConvolutionDescriptor_t conv, Algo& algo, cudnnMathType_t& math, std::size_t& bytes,
                      Query query) {
    const bool tf32 = r.options().allow_tf32, deterministic = r.options().deterministic;
    for (int i = 0; i < count; ++i) {
        const Perf& p = perfs[i];
        if (p.status != CUDNN_STATUS_SUCCESS) continue;
        if (deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
        if (p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
        if (!tf32 && p.mathType == CUDNN_TENSOR_OP_MATH) continue;
        const cudnnMathType_t m = tf32 ? p.mathType : CUDNN_FMA_MATH;
        if (cudnnSetConvolutionMathType(conv, m) != CUDNN_STATUS_SUCCESS) continue;
        std::size_t ws = 0;
        if (query(p.algo, &ws) != CUDNN_STATUS_SUCCESS || ws > Resources::kMaxConvWorkspace) continue;
        algo = p.algo;
        math = m;
        bytes = ws;
        return true;
    }
    return false;
}

// Zero rows (or columns) to append to the conv input so that cuDNN's symmetric
// pad_before padding produces the `out` pixels of TensorFlow's padding.
inline std::int64_t extra_tail(const ConvAxis& a) {
    const std::int64_t span = a.in + 2 * a.pad_before - a.kernel;
    const std::int64_t cudnn_out = span >= 0 ? span / a.stride + 1 : 0;
    if (cudnn_out >= a.out) return 0;
    return (a.out - 1) * a.stride + a.kernel - 2 * a.pad_before - a.in;
}

inline ConvPlan& conv_plan(Resources& r, const ConvGeometry& g) {
    const Resources::ConvKey key{g.batch,      g.in_c,       g.out_c,      g.h.in,   g.h.out,
                                 g.h.kernel,   g.h.stride,   g.h.pad_before, g.w.in, g.w.out,
                                 g.w.kernel,   g.w.stride,   g.w.pad_before, 0,      0};
    auto& cache = r.conv_plans();
    if (auto found = cache.find(key); found != cache.end()) return *found->second;

    auto plan = std::make_unique<ConvPlan>();
    ConvPlan& p = *plan;
    p.extra_h = extra_tail(g.h);
    p.extra_w = extra_tail(g.w);
    p.in_h = g.h.in + p.extra_h;
    p.in_w = g.w.in + p.extra_w;
    const int n = as_int(g.batch, "batch"), c = as_int(g.in_c, "in_c"), k = as_int(g.out_c, "out_c");
    EWE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x_desc));
    EWE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y_desc));
    EWE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w_desc));
    EWE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv_desc));
    EWE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, c,
                                               as_int(p.in_h, "input height"), as_int(p.in_w, "input width")));
    EWE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, k,
                                               as_int(g.h.out, "output height"), as_int(g.w.out, "output width")));
    EWE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w_desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, k, c,
                                               as_int(g.h.kernel, "kernel height"), as_int(g.w.kernel, "kernel width")));
    EWE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv_desc, as_int(g.h.pad_before, "pad"),
                                                    as_int(g.w.pad_before, "pad"), as_int(g.h.stride, "stride"),
                                                    as_int(g.w.stride, "stride"), 1, 1, CUDNN_CROSS_CORRELATION,
                                                    CUDNN_DATA_FLOAT));
    int on = 0, oc = 0, oh = 0, ow = 0;
    EWE_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.conv_desc, p.x_desc, p.w_desc, &on, &oc, &oh, &ow));
    EWE_REQUIRE(on == n && oc == k && oh == g.h.out && ow == g.w.out, "ewe CUDA backend: cuDNN computes a ", oh, "x",
                ow, " output for this convolution but the geometry says ", g.h.out, "x", g.w.out);

    if (r.force_conv_gemm()) {
        p.use_gemm = true;
        return *cache.emplace(key, std::move(plan)).first->second;
    }
    const bool tf32 = r.options().allow_tf32;
    const cudnnMathType_t search_math = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    cudnnHandle_t h = r.cudnn();
    bool found = true;
    {
        int max_count = 0, returned = 0;
        EWE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
        std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<std::size_t>(std::max(max_count, 1)));
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, search_math));
        EWE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x_desc, p.w_desc, p.conv_desc, p.y_desc,
                                                               max_count, &returned, perfs.data()));
        found &= choose_algorithm(perfs.data(), returned, r, p.conv_desc, p.fwd_algo, p.fwd_math, p.fwd_bytes,
                         [&](cudnnConvolutionFwdAlgo_t a, std::size_t* ws) {
                             return cudnnGetConvolutionForwardWorkspaceSize(h, p.x_desc, p.w_desc, p.conv_desc,
                                                                            p.y_desc, a, ws);
                         });
    }
    {
        int max_count = 0, returned = 0;
        EWE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
        std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<std::size_t>(std::max(max_count, 1)));
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, search_math));
        EWE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w_desc, p.y_desc, p.conv_desc, p.x_desc,
                                                                    max_count, &returned, perfs.data()));
        found &= choose_algorithm(perfs.data(), returned, r, p.conv_desc, p.bwd_data_algo, p.bwd_data_math,
                         p.bwd_data_bytes, [&](cudnnConvolutionBwdDataAlgo_t a, std::size_t* ws) {
                             return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w_desc, p.y_desc, p.conv_desc,
                                                                                 p.x_desc, a, ws);
                         });
    }
    {
        int max_count = 0, returned = 0;
        EWE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
        std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<std::size_t>(std::max(max_count, 1)));
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, search_math));
        EWE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x_desc, p.y_desc, p.conv_desc, p.w_desc,
                                                                      max_count, &returned, perfs.data()));
        found &= choose_algorithm(perfs.data(), returned, r, p.conv_desc, p.bwd_filter_algo,
                         p.bwd_filter_math, p.bwd_filter_bytes,
                         [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t* ws) {
                             return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x_desc, p.y_desc,
                                                                                   p.conv_desc, p.w_desc, a, ws);
                         });
    }
    // No usable cuDNN algorithm for one of the directions: the whole shape runs the
    // im2col + GEMM lowering instead (correct for every geometry, slower).
    p.use_gemm = !found;
    return *cache.emplace(key, std::move(plan)).first->second;
}

// The device pointers a convolution op works on: caller tensors, or workspace copies
// when a tensor is not 16-byte aligned (parameters sit at any offset of the flat
// buffer) or needs the zero tail of asymmetric padding.
struct ConvBuffers {
    float* padded = nullptr;  // (batch, in_h + extra_h, in_w + extra_w, in_c)
    float* filter = nullptr;  // aligned copy of w, or nullptr when w is used in place
    float* filter_grad = nullptr;
    std::byte* cudnn = nullptr;
};

}  // namespace detail

template <class T>
class Backend;

// The float backend.
template <>
class Backend<float> final : public ewe::Backend<float> {
public:
    using T = float;
    template <class U>
    using View = TensorView<U>;

    // ------------------------------------------------------------ dense
    void dense_forward(Context& ctx, View<const T> x, View<const T> w, View<const T> b, Activation act,
                       View<T> y) override {
        Resources& r = begin(ctx, Fingerprint("dense_forward").add(x).add(w).add(b).add(int(act)).add(y),
                             "dense_forward");
        if (!r.launching()) return;
        const std::int64_t n = x.dim(0), in = x.dim(1), out = w.dim(1);
        detail::gemm(r, false, false, out, n, in, w.data(), out, x.data(), in, y.data());
        bias_activation(r, act, b.data(), y.data(), n * out, out);
    }

    void dense_backward(Context& ctx, View<const T> x, View<const T> w, View<const T> y, View<const T> dy,
                        Activation act, View<T> dpre, View<T> dx, View<T> dw, View<T> db) override {
        Resources& r = begin(ctx,
                             Fingerprint("dense_backward").add(x).add(w).add(y).add(dy).add(int(act)).add(dpre).add(dx)
                                 .add(dw).add(db),
                             "dense_backward");
        if (!r.launching()) return;
        const std::int64_t n = x.dim(0), in = x.dim(1), out = w.dim(1);
        activation_grad(r, act, y.data(), dy.data(), dpre.data(), n * out);
        detail::gemm(r, false, true, out, in, n, dpre.data(), out, x.data(), in, dw.data());
        column_sums(r, dpre.data(), db.data(), n, out);
        if (!dx.empty()) detail::gemm(r, true, false, in, n, out, w.data(), out, dpre.data(), out, dx.data());
    }

    // ------------------------------------------------------------ convolutions
    void conv2d_forward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w, View<const T> b,
                        Activation act, View<T> y) override {
        Resources& r = begin(ctx, Fingerprint("conv2d_forward").add(g).add(x).add(w).add(b).add(int(act)).add(y),
                             "conv2d_forward");
        if (!r.launching() || y.numel() == 0) return;
        ConvPlan& p = detail::conv_plan(r, g);
        r.count_conv_path(p.use_gemm);
        if (p.use_gemm) {
            // y (M, O) = im2col(x) (M, K) w^T.
            GemmConv c(r, g);
            im2col(r, g, x.data(), c.cols);
            detail::gemm_row_major(r, false, true, c.M, g.out_c, c.K, c.cols, w.data(), y.data(), c.gemm_offset);
            return bias_activation(r, act, b.data(), y.data(), y.numel(), g.out_c);
        }
        detail::ConvBuffers buf = conv_buffers(r, p, g, w.data(), nullptr, p.fwd_bytes);
        const float* input = pad_input(r, p, g, x.data(), buf);
        const float* filter = stage_filter(r, w, buf);
        const float one = 1.0f, zero = 0.0f;
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, p.fwd_math));
        EWE_CUDNN_CHECK(cudnnConvolutionForward(r.cudnn(), &one, p.x_desc, input, p.w_desc, filter, p.conv_desc,
                                                p.fwd_algo, buf.cudnn, p.fwd_bytes, &zero, p.y_desc, y.data()));
        bias_activation(r, act, b.data(), y.data(), y.numel(), g.out_c);
    }

    void conv2d_backward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w, View<const T> y,
                         View<const T> dy, Activation act, View<T> dpre, View<T> dx, View<T> dw,
                         View<T> db) override {
        Resources& r = begin(ctx,
                             Fingerprint("conv2d_backward").add(g).add(x).add(w).add(y).add(dy).add(int(act)).add(dpre)
                                 .add(dx).add(dw).add(db),
                             "conv2d_backward");
        if (!r.launching()) return;
        if (g.batch == 0) return zero_grads(r, dw, db);
        const std::int64_t M = g.gemm_m();
        activation_grad(r, act, y.data(), dy.data(), dpre.data(), M * g.out_c);
        column_sums(r, dpre.data(), db.data(), M, g.out_c);
        ConvPlan& p = detail::conv_plan(r, g);
        r.count_conv_path(p.use_gemm);
        if (p.use_gemm) {
            // dw (O, K) = dpre^T im2col(x); dx = col2im(dpre w).
            GemmConv c(r, g);
            im2col(r, g, x.data(), c.cols);
            detail::gemm_row_major(r, true, false, g.out_c, c.K, c.M, dpre.data(), c.cols, dw.data(), c.gemm_offset);
            if (dx.empty()) return;
            detail::gemm_row_major(r, false, false, c.M, c.K, g.out_c, dpre.data(), w.data(), c.cols, c.gemm_offset);
            return col2im(r, g, c.cols, dx.data());
        }
        const std::size_t cudnn_bytes = std::max(p.bwd_filter_bytes, dx.empty() ? 0 : p.bwd_data_bytes);
        detail::ConvBuffers buf = conv_buffers(r, p, g, w.data(), dw.data(), cudnn_bytes);
        const float one = 1.0f, zero = 0.0f;
        // dw = conv filter gradient of (x, dpre).
        const float* input = pad_input(r, p, g, x.data(), buf);
        float* filter_grad = buf.filter_grad != nullptr ? buf.filter_grad : dw.data();
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, p.bwd_filter_math));
        EWE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(r.cudnn(), &one, p.x_desc, input, p.y_desc, dpre.data(),
                                                       p.conv_desc, p.bwd_filter_algo, buf.cudnn, p.bwd_filter_bytes,
                                                       &zero, p.w_desc, filter_grad));
        unstage_filter_grad(r, dw, buf);
        if (dx.empty()) return;
        // dx = conv data gradient of (w, dpre), cropped when the input was padded.
        const float* filter = stage_filter(r, w, buf);
        float* grad_in = p.padded() ? buf.padded : dx.data();
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, p.bwd_data_math));
        EWE_CUDNN_CHECK(cudnnConvolutionBackwardData(r.cudnn(), &one, p.w_desc, filter, p.y_desc, dpre.data(),
                                                     p.conv_desc, p.bwd_data_algo, buf.cudnn, p.bwd_data_bytes, &zero,
                                                     p.x_desc, grad_in));
        if (p.padded()) crop_output(r, p, g, buf.padded, dx.data());
    }

    void conv2d_transpose_forward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w,
                                  View<const T> b, Activation act, View<T> y) override {
        Resources& r = begin(ctx,
                             Fingerprint("conv2d_transpose_forward").add(g).add(x).add(w).add(b).add(int(act)).add(y),
                             "conv2d_transpose_forward");
        if (!r.launching() || y.numel() == 0) return;
        ConvPlan& p = detail::conv_plan(r, g);
        r.count_conv_path(p.use_gemm);
        if (p.use_gemm) {
            // y = col2im(x w).
            GemmConv c(r, g);
            detail::gemm_row_major(r, false, false, c.M, c.K, g.out_c, x.data(), w.data(), c.cols, c.gemm_offset);
            col2im(r, g, c.cols, y.data());
            return bias_activation(r, act, b.data(), y.data(), y.numel(), g.in_c);
        }
        detail::ConvBuffers buf = conv_buffers(r, p, g, w.data(), nullptr, p.bwd_data_bytes);
        const float* filter = stage_filter(r, w, buf);
        float* out = p.padded() ? buf.padded : y.data();
        const float one = 1.0f, zero = 0.0f;
        // y = the data gradient of the hidden convolution g for the output gradient x.
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, p.bwd_data_math));
        EWE_CUDNN_CHECK(cudnnConvolutionBackwardData(r.cudnn(), &one, p.w_desc, filter, p.y_desc, x.data(),
                                                     p.conv_desc, p.bwd_data_algo, buf.cudnn, p.bwd_data_bytes, &zero,
                                                     p.x_desc, out));
        if (p.padded()) crop_output(r, p, g, buf.padded, y.data());
        bias_activation(r, act, b.data(), y.data(), y.numel(), g.in_c);
    }

    void conv2d_transpose_backward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w,
                                   View<const T> y, View<const T> dy, Activation act, View<T> dpre, View<T> dx,
                                   View<T> dw, View<T> db) override {
        Resources& r = begin(ctx,
                             Fingerprint("conv2d_transpose_backward").add(g).add(x).add(w).add(y).add(dy).add(int(act))
                                 .add(dpre).add(dx).add(dw).add(db),
                             "conv2d_transpose_backward");
        if (!r.launching()) return;
        if (g.batch == 0) return zero_grads(r, dw, db);
        activation_grad(r, act, y.data(), dy.data(), dpre.data(), y.numel());
        column_sums(r, dpre.data(), db.data(), y.numel() / g.in_c, g.in_c);
        ConvPlan& p = detail::conv_plan(r, g);
        r.count_conv_path(p.use_gemm);
        if (p.use_gemm) {
            // c = im2col(dpre); dw (O, K) = x^T c; dx (M, O) = c w^T.
            GemmConv c(r, g);
            im2col(r, g, dpre.data(), c.cols);
            detail::gemm_row_major(r, true, false, g.out_c, c.K, c.M, x.data(), c.cols, dw.data(), c.gemm_offset);
            if (!dx.empty())
                detail::gemm_row_major(r, false, true, c.M, g.out_c, c.K, c.cols, w.data(), dx.data(), c.gemm_offset);
            return;
        }
        const std::size_t cudnn_bytes = std::max(p.bwd_filter_bytes, dx.empty() ? 0 : p.fwd_bytes);
        detail::ConvBuffers buf = conv_buffers(r, p, g, w.data(), dw.data(), cudnn_bytes);
        const float one = 1.0f, zero = 0.0f;
        // The hidden convolution's input is dpre (zero tail appended when padded).
        const float* input = pad_input(r, p, g, dpre.data(), buf);
        float* filter_grad = buf.filter_grad != nullptr ? buf.filter_grad : dw.data();
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, p.bwd_filter_math));
        EWE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(r.cudnn(), &one, p.x_desc, input, p.y_desc, x.data(),
                                                       p.conv_desc, p.bwd_filter_algo, buf.cudnn, p.bwd_filter_bytes,
                                                       &zero, p.w_desc, filter_grad));
        unstage_filter_grad(r, dw, buf);
        if (dx.empty()) return;
        const float* filter = stage_filter(r, w, buf);
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv_desc, p.fwd_math));
        EWE_CUDNN_CHECK(cudnnConvolutionForward(r.cudnn(), &one, p.x_desc, input, p.w_desc, filter, p.conv_desc,
                                                p.fwd_algo, buf.cudnn, p.fwd_bytes, &zero, p.y_desc, dx.data()));
    }

    // ------------------------------------------------------------ activations
    void activation_forward(Context& ctx, Activation act, View<const T> x, View<T> y) override {
        Resources& r = begin(ctx, Fingerprint("activation_forward").add(int(act)).add(x).add(y), "activation_forward");
        if (!r.launching() || x.numel() == 0) return;
        kernels::activation_forward<T><<<kernels::blocks_for(x.numel()), kernels::kThreads, 0, r.stream()>>>(
            act, x.data(), y.data(), x.numel());
        EWE_CUDA_LAUNCH_CHECK(kernels::activation_forward);
    }

    void activation_backward(Context& ctx, Activation act, View<const T> y, View<const T> dy, View<T> dx) override {
        Resources& r = begin(ctx, Fingerprint("activation_backward").add(int(act)).add(y).add(dy).add(dx),
                             "activation_backward");
        if (!r.launching()) return;
        activation_grad(r, act, y.data(), dy.data(), dx.data(), y.numel());
    }

    // ------------------------------------------------------------ batch normalization
    void batchnorm_forward(Context& ctx, const BatchNormConfig& cfg, Phase phase, View<const T> x, View<const T> gamma,
                           View<const T> beta, View<T> moving_mean, View<T> moving_var, View<T> saved_mean,
                           View<T> saved_invstd, View<T> y) override {
        Resources& r = begin(ctx,
                             Fingerprint("batchnorm_forward").add(cfg.momentum).add(cfg.epsilon).add(int(phase)).add(x)
                                 .add(gamma).add(beta).add(moving_mean).add(moving_var).add(saved_mean)
                                 .add(saved_invstd).add(y),
                             "batchnorm_forward");
        if (!r.launching()) return;
        const std::int64_t C = gamma.numel(), M = C > 0 ? x.numel() / C : 0;
        if (C == 0) return;
        const bool train = phase == Phase::train;
        if (train) {
            const kernels::ColumnReducePlan plan(M, C);
            WorkspaceCarver carve;
            carve.reserve(plan.bytes(1));
            carve.reserve(static_cast<std::size_t>(C) * sizeof(double));
            carve.bind(r.workspace(carve.total()));
            double* partials = carve.take<double>(plan.bytes(1) / sizeof(double));
            double* mean = carve.take<double>(static_cast<std::size_t>(C));
            kernels::column_reduce<1>(r.stream(), plan, partials, kernels::ColumnValue<T>{x.data(), C},
                                      kernels::StoreMean{mean, double(M)});
            kernels::column_reduce<1>(r.stream(), plan, partials, kernels::SquaredDeviation<T>{x.data(), mean, C},
                                      kernels::FinishStatistics<T>{mean, double(M), cfg.epsilon, cfg.momentum,
                                                                   saved_mean.data(), saved_invstd.data(),
                                                                   moving_mean.data(), moving_var.data()});
        }
        if (x.numel() == 0) return;
        kernels::batchnorm_normalize<T><<<kernels::blocks_for(x.numel()), kernels::kThreads, 0, r.stream()>>>(
            train, cfg.epsilon, x.data(), gamma.data(), beta.data(), train ? saved_mean.data() : moving_mean.data(),
            train ? saved_invstd.data() : moving_var.data(), y.data(), x.numel(), C);
        EWE_CUDA_LAUNCH_CHECK(kernels::batchnorm_normalize);
    }

    void batchnorm_backward(Context& ctx, View<const T> x, View<const T> dy, View<const T> gamma,
                            View<const T> saved_mean, View<const T> saved_invstd, View<T> dx, View<T> dgamma,
                            View<T> dbeta) override {
        Resources& r = begin(ctx,
                             Fingerprint("batchnorm_backward").add(x).add(dy).add(gamma).add(saved_mean)
                                 .add(saved_invstd).add(dx).add(dgamma).add(dbeta),
                             "batchnorm_backward");
        if (!r.launching()) return;
        const std::int64_t C = gamma.numel(), M = C > 0 ? x.numel() / C : 0;
        if (C == 0) return;
        const kernels::ColumnReducePlan plan(M, C);
        WorkspaceCarver carve;
        carve.reserve(plan.bytes(2));
        carve.reserve(static_cast<std::size_t>(2 * C) * sizeof(double));
        carve.bind(r.workspace(carve.total()));
        double* partials = carve.take<double>(plan.bytes(2) / sizeof(double));
        double* sums = carve.take<double>(static_cast<std::size_t>(2 * C));
        kernels::column_reduce<2>(
            r.stream(), plan, partials,
            kernels::BackwardTerms<T>{x.data(), dy.data(), saved_mean.data(), saved_invstd.data(), C},
            kernels::StoreBackwardSums<T>{sums, C, dgamma.data(), dbeta.data()});
        if (x.numel() == 0) return;
        kernels::batchnorm_backward_dx<T><<<kernels::blocks_for(x.numel()), kernels::kThreads, 0, r.stream()>>>(
            x.data(), dy.data(), gamma.data(), saved_mean.data(), saved_invstd.data(), sums, dx.data(), x.numel(), C);
        EWE_CUDA_LAUNCH_CHECK(kernels::batchnorm_backward_dx);
    }

    // ------------------------------------------------------------ dropout
    void dropout_forward(Context& ctx, double rate, const PhiloxKey& key, View<const T> x, View<T> y) override {
        run_dropout(ctx, "dropout_forward", rate, key, x, y);
    }
    void dropout_backward(Context& ctx, double rate, const PhiloxKey& key, View<const T> dy, View<T> dx) override {
        run_dropout(ctx, "dropout_backward", rate, key, dy, dx);
    }

    // ------------------------------------------------------------ reparameterization
    void reparameterize_forward(Context& ctx, ReparamVariant variant, const PhiloxKey& key, View<const T> mean,
                                View<const T> log_var, View<T> z) override {
        Resources& r = begin(ctx,
                             Fingerprint("reparameterize_forward").add(int(variant)).add(key.stream).add(mean)
                                 .add(log_var).add(z),
                             "reparameterize_forward");
        const auto seed = r.scalar<std::uint64_t>(key.seed);
        const auto offset = r.scalar<std::uint64_t>(key.offset);
        if (!r.launching() || mean.numel() == 0) return;
        const double half = variant == ReparamVariant::standard ? 0.5 : 1.0;
        kernels::reparameterize_forward<T><<<kernels::blocks_for(mean.numel()), kernels::kThreads, 0, r.stream()>>>(
            half, mean.data(), log_var.data(), z.data(), mean.numel(), seed, key.stream, offset);
        EWE_CUDA_LAUNCH_CHECK(kernels::reparameterize_forward);
    }

    void reparameterize_backward(Context& ctx, ReparamVariant variant, const PhiloxKey& key, View<const T> log_var,
                                 View<const T> dz, View<T> dmean, View<T> dlog_var) override {
        Resources& r = begin(ctx,
                             Fingerprint("reparameterize_backward").add(int(variant)).add(key.stream).add(log_var)
                                 .add(dz).add(dmean).add(dlog_var),
                             "reparameterize_backward");
        const auto seed = r.scalar<std::uint64_t>(key.seed);
        const auto offset = r.scalar<std::uint64_t>(key.offset);
        if (!r.launching() || log_var.numel() == 0) return;
        const double half = variant == ReparamVariant::standard ? 0.5 : 1.0;
        kernels::reparameterize_backward<T><<<kernels::blocks_for(log_var.numel()), kernels::kThreads, 0, r.stream()>>>(
            half, log_var.data(), dz.data(), dmean.data(), dlog_var.data(), log_var.numel(), seed, key.stream, offset);
        EWE_CUDA_LAUNCH_CHECK(kernels::reparameterize_backward);
    }

    // ------------------------------------------------------------ losses
    void mse_forward(Context& ctx, double scale, View<const T> pred, View<const T> target,
                     View<T> per_sample) override {
        Resources& r = begin(ctx, Fingerprint("mse_forward").add(pred).add(target).add(per_sample), "mse_forward");
        const auto s = r.scalar<double>(scale);
        if (!r.launching()) return;
        const std::int64_t N = pred.dim(0), P = pred.numel() / std::max<std::int64_t>(N, 1);
        kernels::row_reduce_launch(r.stream(), N, P, kernels::SquaredError<T>{pred.data(), target.data(), P},
                                   kernels::StoreMse<T>{per_sample.data(), s, double(P)});
    }

    void mse_backward(Context& ctx, double coefficient, View<const T> pred, View<const T> target,
                      View<T> dpred) override {
        Resources& r = begin(ctx, Fingerprint("mse_backward").add(pred).add(target).add(dpred), "mse_backward");
        const std::int64_t N = pred.dim(0), P = pred.numel() / std::max<std::int64_t>(N, 1);
        const auto c = r.scalar<double>(double(T(2.0 * coefficient / double(P))));
        if (!r.launching() || pred.numel() == 0) return;
        kernels::mse_backward<T><<<kernels::blocks_for(pred.numel()), kernels::kThreads, 0, r.stream()>>>(
            c, pred.data(), target.data(), dpred.data(), pred.numel());
        EWE_CUDA_LAUNCH_CHECK(kernels::mse_backward);
    }

    void kl_forward(Context& ctx, KlReduction reduction, View<const T> mean, View<const T> log_var,
                    View<T> per_sample) override {
        Resources& r = begin(ctx, Fingerprint("kl_forward").add(int(reduction)).add(mean).add(log_var).add(per_sample),
                             "kl_forward");
        if (!r.launching()) return;
        const std::int64_t N = mean.dim(0), D = mean.dim(1);
        kernels::row_reduce_launch(r.stream(), N, D, kernels::KlTerm<T>{mean.data(), log_var.data(), D},
                                   kernels::StoreKl<T>{per_sample.data(),
                                                       reduction == KlReduction::mean ? double(D) : 1.0});
    }

    void kl_backward(Context& ctx, KlReduction reduction, double coefficient, View<const T> mean,
                     View<const T> log_var, View<T> dmean, View<T> dlog_var) override {
        Resources& r = begin(ctx,
                             Fingerprint("kl_backward").add(int(reduction)).add(mean).add(log_var).add(dmean)
                                 .add(dlog_var),
                             "kl_backward");
        const auto c = r.scalar<double>(reduction == KlReduction::mean ? coefficient / double(mean.dim(1)) : coefficient);
        if (!r.launching() || mean.numel() == 0) return;
        kernels::kl_backward<T><<<kernels::blocks_for(mean.numel()), kernels::kThreads, 0, r.stream()>>>(
            c, mean.data(), log_var.data(), dmean.data(), dlog_var.data(), mean.numel());
        EWE_CUDA_LAUNCH_CHECK(kernels::kl_backward);
    }

    // ------------------------------------------------------------ optimizers
    void sgd_update(Context& ctx, const SgdConfig& cfg, double lr, View<T> params, View<const T> grads,
                    View<T> velocity) override {
        Resources& r = begin(ctx,
                             Fingerprint("sgd_update").add(cfg.momentum).add(cfg.nesterov).add(params).add(grads)
                                 .add(velocity),
                             "sgd_update");
        const auto rate = r.scalar<double>(lr);
        const std::int64_t count = params.numel();
        if (!r.launching() || count == 0) return;
        if (cfg.momentum == 0.0) {
            kernels::sgd_plain<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(
                rate, params.data(), grads.data(), count);
            EWE_CUDA_LAUNCH_CHECK(kernels::sgd_plain);
            return;
        }
        kernels::sgd_momentum<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(
            rate, T(cfg.momentum), cfg.nesterov, params.data(), grads.data(), velocity.data(), count);
        EWE_CUDA_LAUNCH_CHECK(kernels::sgd_momentum);
    }

    void rmsprop_update(Context& ctx, const RmspropConfig& cfg, double lr, View<T> params, View<const T> grads,
                        View<T> mean_square) override {
        Resources& r = begin(ctx,
                             Fingerprint("rmsprop_update").add(cfg.rho).add(cfg.epsilon).add(params).add(grads)
                                 .add(mean_square),
                             "rmsprop_update");
        const auto rate = r.scalar<double>(lr);
        const std::int64_t count = params.numel();
        if (!r.launching() || count == 0) return;
        kernels::rmsprop<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(
            rate, T(cfg.rho), T(1.0 - cfg.rho), T(cfg.epsilon), params.data(), grads.data(), mean_square.data(),
            count);
        EWE_CUDA_LAUNCH_CHECK(kernels::rmsprop);
    }

    void adam_update(Context& ctx, const AdamConfig& cfg, double lr, std::int64_t step, View<T> params,
                     View<const T> grads, View<T> m, View<T> v) override {
        Resources& r = begin(ctx,
                             Fingerprint("adam_update").add(cfg.beta1).add(cfg.beta2).add(cfg.epsilon).add(params)
                                 .add(grads).add(m).add(v),
                             "adam_update");
        const double correction1 = 1.0 - std::pow(cfg.beta1, double(step));
        const double correction2 = 1.0 - std::pow(cfg.beta2, double(step));
        const auto rate = r.scalar<double>(double(T(lr * std::sqrt(correction2) / correction1)));
        const std::int64_t count = params.numel();
        if (!r.launching() || count == 0) return;
        kernels::adam<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(
            rate, T(cfg.beta1), T(cfg.beta2), T(cfg.epsilon), params.data(), grads.data(), m.data(), v.data(), count);
        EWE_CUDA_LAUNCH_CHECK(kernels::adam);
    }

    // ------------------------------------------------------------ utilities
    void fill(Context& ctx, T value, View<T> x) override {
        Resources& r = begin(ctx, Fingerprint("fill").add(x), "fill");
        const auto v = r.scalar<double>(double(value));
        if (!r.launching() || x.numel() == 0) return;
        kernels::fill<T><<<kernels::blocks_for(x.numel()), kernels::kThreads, 0, r.stream()>>>(v, x.data(), x.numel());
        EWE_CUDA_LAUNCH_CHECK(kernels::fill);
    }

    void copy(Context& ctx, View<const T> src, View<T> dst) override {
        Resources& r = begin(ctx, Fingerprint("copy").add(src).add(dst), "copy");
        if (!r.launching() || src.numel() == 0 || src.data() == dst.data()) return;
        EWE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), static_cast<std::size_t>(src.numel()) * sizeof(T),
                                       cudaMemcpyDeviceToDevice, r.stream()));
    }

    void add(Context& ctx, View<const T> a, View<const T> b, View<T> out) override {
        Resources& r = begin(ctx, Fingerprint("add").add(a).add(b).add(out), "add");
        if (!r.launching() || a.numel() == 0) return;
        kernels::add<T><<<kernels::blocks_for(a.numel()), kernels::kThreads, 0, r.stream()>>>(a.data(), b.data(),
                                                                                              out.data(), a.numel());
        EWE_CUDA_LAUNCH_CHECK(kernels::add);
    }

    void sum(Context& ctx, View<const T> x, View<T> out) override {
        Resources& r = begin(ctx, Fingerprint("sum").add(x).add(out), "sum");
        if (!r.launching()) return;
        const kernels::ColumnReducePlan plan(x.numel(), 1);
        double* partials = reinterpret_cast<double*>(r.workspace(plan.bytes(1)));
        kernels::column_reduce<1>(r.stream(), plan, partials, kernels::ColumnValue<T>{x.data(), 1},
                                  kernels::StoreSum<T>{out.data()});
    }

    void gather_images(Context& ctx, View<const std::uint8_t> images, View<const std::int32_t> indices, double scale,
                       View<T> out) override {
        Resources& r = begin(ctx, Fingerprint("gather_images").add(images).add(indices).add(out), "gather_images");
        const auto s = r.scalar<double>(scale);
        const std::int64_t count = images.dim(0), pixels = images.numel() / std::max<std::int64_t>(count, 1);
        const std::int64_t total = indices.numel() * pixels;
        if (!r.launching() || total == 0) return;
        kernels::gather_images<T><<<kernels::blocks_for(total), kernels::kThreads, 0, r.stream()>>>(
            images.data(), count, indices.data(), indices.numel(), pixels, s, out.data(), r.error_block());
        EWE_CUDA_LAUNCH_CHECK(kernels::gather_images);
    }

private:
    static Resources& begin(Context& ctx, const Fingerprint& fp, const char* op) {
        Resources& r = resources(ctx);
        r.begin_op(fp, op);
        if (r.launching()) r.activate();
        return r;
    }

    static void bias_activation(Resources& r, Activation act, const T* b, T* y, std::int64_t count,
                                std::int64_t cols) {
        if ((b == nullptr && act == Activation::none) || count == 0) return;
        kernels::bias_activation<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(act, b, y, count,
                                                                                                      cols);
        EWE_CUDA_LAUNCH_CHECK(kernels::bias_activation);
    }

    static void activation_grad(Resources& r, Activation act, const T* y, const T* dy, T* dpre, std::int64_t count) {
        if (count == 0) return;
        kernels::activation_grad<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(act, y, dy, dpre,
                                                                                                      count);
        EWE_CUDA_LAUNCH_CHECK(kernels::activation_grad);
    }

    // db[c] = sum over rows of dpre[r, c] (db may be null).
    static void column_sums(Resources& r, const T* dpre, T* db, std::int64_t rows, std::int64_t cols) {
        if (db == nullptr || cols == 0) return;
        const kernels::ColumnReducePlan plan(rows, cols);
        double* partials = reinterpret_cast<double*>(r.workspace(plan.bytes(1)));
        kernels::column_reduce<1>(r.stream(), plan, partials, kernels::ColumnValue<T>{dpre, cols},
                                  kernels::StoreSum<T>{db});
    }

    static void zero_grads(Resources& r, View<T> dw, View<T> db) {
        if (dw.numel() > 0)
            EWE_CUDA_CHECK(cudaMemsetAsync(dw.data(), 0, static_cast<std::size_t>(dw.numel()) * sizeof(T), r.stream()));
        if (!db.empty() && db.numel() > 0)
            EWE_CUDA_CHECK(cudaMemsetAsync(db.data(), 0, static_cast<std::size_t>(db.numel()) * sizeof(T), r.stream()));
    }

    // The patch matrix of the im2col fallback, at the front of the arena, followed by
    // room for cuBLASLt's workspace (reserved up front so the arena cannot move).
    struct GemmConv {
        std::int64_t M = 0, K = 0;
        T* cols = nullptr;
        std::size_t gemm_offset = 0;
        GemmConv(Resources& r, const ConvGeometry& g) : M(g.gemm_m()), K(g.gemm_k()) {
            gemm_offset = WorkspaceCarver::round(static_cast<std::size_t>(M * K) * sizeof(T));
            cols = reinterpret_cast<T*>(r.workspace(gemm_offset + Resources::kMaxGemmWorkspace));
        }
    };

    static void im2col(Resources& r, const ConvGeometry& g, const T* x, T* cols) {
        const std::int64_t count = g.gemm_m() * g.gemm_k();
        if (count == 0) return;
        kernels::im2col<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(g, x, cols);
        EWE_CUDA_LAUNCH_CHECK(kernels::im2col);
    }

    static void col2im(Resources& r, const ConvGeometry& g, const T* cols, T* x) {
        const std::int64_t count = g.batch * g.h.in * g.w.in * g.in_c;
        if (count == 0) return;
        kernels::col2im<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(g, cols, x);
        EWE_CUDA_LAUNCH_CHECK(kernels::col2im);
    }

    // Workspace for one convolution op: the padded conv input (when the plan pads),
    // aligned copies of the filter and its gradient (when misaligned) and cuDNN's own.
    // The padded buffer serves the conv input, or the padded data gradient; an op
    // that needs both (conv2d_backward with dx) reuses it after the filter gradient.
    static detail::ConvBuffers conv_buffers(Resources& r, const ConvPlan& p, const ConvGeometry& g,
                                            const T* w, const T* dw, std::size_t cudnn_bytes) {
        const std::size_t padded = p.padded() ? static_cast<std::size_t>(g.batch * p.in_h * p.in_w * g.in_c) : 0;
        const std::size_t filter = static_cast<std::size_t>(g.out_c * g.h.kernel * g.w.kernel * g.in_c);
        const bool stage_w = !detail::aligned16(w), stage_dw = dw != nullptr && !detail::aligned16(dw);
        WorkspaceCarver carve;
        carve.reserve(padded * sizeof(T));
        carve.reserve(stage_w ? filter * sizeof(T) : 0);
        carve.reserve(stage_dw ? filter * sizeof(T) : 0);
        carve.reserve(cudnn_bytes);
        carve.bind(r.workspace(carve.total()));
        detail::ConvBuffers buf;
        buf.padded = carve.take<T>(padded);
        buf.filter = carve.take<T>(stage_w ? filter : 0);
        buf.filter_grad = carve.take<T>(stage_dw ? filter : 0);
        buf.cudnn = carve.take<std::byte>(cudnn_bytes);
        if (padded == 0) buf.padded = nullptr;
        if (!stage_w) buf.filter = nullptr;
        if (!stage_dw) buf.filter_grad = nullptr;
        return buf;
    }

    // The conv input as cuDNN needs it: in place, or copied into buf.padded with the zero tail.
    static const T* pad_input(Resources& r, const ConvPlan& p, const ConvGeometry& g, const T* in,
                              const detail::ConvBuffers& buf) {
        if (!p.padded()) return in;
        const std::int64_t count = g.batch * p.in_h * p.in_w * g.in_c;
        kernels::pad_tail<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(
            in, buf.padded, g.batch, g.h.in, g.w.in, g.in_c, p.in_h, p.in_w);
        EWE_CUDA_LAUNCH_CHECK(kernels::pad_tail);
        return buf.padded;
    }

    static void crop_output(Resources& r, const ConvPlan& p, const ConvGeometry& g, const T* padded, T* out) {
        const std::int64_t count = g.batch * g.h.in * g.w.in * g.in_c;
        if (count == 0) return;
        kernels::crop_tail<T><<<kernels::blocks_for(count), kernels::kThreads, 0, r.stream()>>>(
            padded, out, g.batch, g.h.in, g.w.in, g.in_c, p.in_h, p.in_w);
        EWE_CUDA_LAUNCH_CHECK(kernels::crop_tail);
    }

    static const T* stage_filter(Resources& r, View<const T> w, const detail::ConvBuffers& buf) {
        if (buf.filter == nullptr) return w.data();
        EWE_CUDA_CHECK(cudaMemcpyAsync(buf.filter, w.data(), static_cast<std::size_t>(w.numel()) * sizeof(T),
                                       cudaMemcpyDeviceToDevice, r.stream()));
        return buf.filter;
    }

    static void unstage_filter_grad(Resources& r, View<T> dw, const detail::ConvBuffers& buf) {
        if (buf.filter_grad == nullptr) return;
        EWE_CUDA_CHECK(cudaMemcpyAsync(dw.data(), buf.filter_grad, static_cast<std::size_t>(dw.numel()) * sizeof(T),
                                       cudaMemcpyDeviceToDevice, r.stream()));
    }

    static void run_dropout(Context& ctx, const char* op, double rate, const PhiloxKey& key, View<const T> in,
                            View<T> out) {
        Resources& r = begin(ctx, Fingerprint(op).add(rate).add(key.stream).add(in).add(out), op);
        const auto seed = r.scalar<std::uint64_t>(key.seed);
        const auto offset = r.scalar<std::uint64_t>(key.offset);
        const std::int64_t count = in.numel();
        if (!r.launching() || count == 0) return;
        const std::uint32_t threshold = dropout_threshold(rate);
        const T scale = T(1.0 / (1.0 - rate));
        kernels::dropout<T><<<kernels::blocks_for((count + 3) / 4), kernels::kThreads, 0, r.stream()>>>(
            in.data(), out.data(), count, threshold, scale, seed, key.stream, offset);
        EWE_CUDA_LAUNCH_CHECK(kernels::dropout);
    }
};

// Double on CUDA: every op throws (the backend is float-only for now).
template <>
class Backend<double> final : public ewe::Backend<double> {
public:
    using T = double;
    template <class U>
    using View = TensorView<U>;

    void dense_forward(Context&, View<const T>, View<const T>, View<const T>, Activation, View<T>) override { no(); }
    void dense_backward(Context&, View<const T>, View<const T>, View<const T>, View<const T>, Activation, View<T>,
                        View<T>, View<T>, View<T>) override { no(); }
    void conv2d_forward(Context&, const ConvGeometry&, View<const T>, View<const T>, View<const T>, Activation,
                        View<T>) override { no(); }
    void conv2d_backward(Context&, const ConvGeometry&, View<const T>, View<const T>, View<const T>, View<const T>,
                         Activation, View<T>, View<T>, View<T>, View<T>) override { no(); }
    void conv2d_transpose_forward(Context&, const ConvGeometry&, View<const T>, View<const T>, View<const T>,
                                  Activation, View<T>) override { no(); }
    void conv2d_transpose_backward(Context&, const ConvGeometry&, View<const T>, View<const T>, View<const T>,
                                   View<const T>, Activation, View<T>, View<T>, View<T>, View<T>) override { no(); }
    void activation_forward(Context&, Activation, View<const T>, View<T>) override { no(); }
    void activation_backward(Context&, Activation, View<const T>, View<const T>, View<T>) override { no(); }
    void batchnorm_forward(Context&, const BatchNormConfig&, Phase, View<const T>, View<const T>, View<const T>,
                           View<T>, View<T>, View<T>, View<T>, View<T>) override { no(); }
    void batchnorm_backward(Context&, View<const T>, View<const T>, View<const T>, View<const T>, View<const T>,
                            View<T>, View<T>, View<T>) override { no(); }
    void dropout_forward(Context&, double, const PhiloxKey&, View<const T>, View<T>) override { no(); }
    void dropout_backward(Context&, double, const PhiloxKey&, View<const T>, View<T>) override { no(); }
    void reparameterize_forward(Context&, ReparamVariant, const PhiloxKey&, View<const T>, View<const T>,
                                View<T>) override { no(); }
    void reparameterize_backward(Context&, ReparamVariant, const PhiloxKey&, View<const T>, View<const T>, View<T>,
                                 View<T>) override { no(); }
    void mse_forward(Context&, double, View<const T>, View<const T>, View<T>) override { no(); }
    void mse_backward(Context&, double, View<const T>, View<const T>, View<T>) override { no(); }
    void kl_forward(Context&, KlReduction, View<const T>, View<const T>, View<T>) override { no(); }
    void kl_backward(Context&, KlReduction, double, View<const T>, View<const T>, View<T>, View<T>) override { no(); }
    void sgd_update(Context&, const SgdConfig&, double, View<T>, View<const T>, View<T>) override { no(); }
    void rmsprop_update(Context&, const RmspropConfig&, double, View<T>, View<const T>, View<T>) override { no(); }
    void adam_update(Context&, const AdamConfig&, double, std::int64_t, View<T>, View<const T>, View<T>,
                     View<T>) override { no(); }
    void fill(Context&, T, View<T>) override { no(); }
    void copy(Context&, View<const T>, View<T>) override { no(); }
    void add(Context&, View<const T>, View<const T>, View<T>) override { no(); }
    void sum(Context&, View<const T>, View<T>) override { no(); }
    void gather_images(Context&, View<const std::uint8_t>, View<const std::int32_t>, double, View<T>) override { no(); }

private:
    [[noreturn]] static void no() {
        fail("ewe CUDA backend supports float only: build the model with float on Device::cuda (double runs on the CPU)");
    }
};

// ---------------------------------------------------------------- hooks
namespace detail {

// Out of device memory is reported with the size asked for, what the device has free,
// and what to change; every other failure goes through EWE_CUDA_CHECK.
inline void* allocate(std::size_t bytes) {
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, bytes);
    if (status == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();  // clear the sticky-free error state of the runtime
        std::size_t free_bytes = 0, total_bytes = 0;
        (void)cudaMemGetInfo(&free_bytes, &total_bytes);
        fail("CUDA out of memory: asked for ", double(bytes) / (1 << 20), " MiB, the device has ",
             double(free_bytes) / (1 << 20), " MiB free of ", double(total_bytes) / (1 << 20),
             " MiB; use a smaller batch (--batch) or model, or free the GPU of other processes");
    }
    EWE_CUDA_CHECK(status);
    return p;
}

// Called from tensor destructors: must not throw. Waits for queued work first, since
// a kernel on some context's stream may still use the memory.
inline void release(void* p) {
    EWE_CUDA_WARN(cudaDeviceSynchronize());
    EWE_CUDA_WARN(cudaFree(p));
}

// Synchronous with respect to the host and to every stream: the contexts' streams
// are non-blocking, so a plain cudaMemcpy would not wait for them.
inline void copy_bytes(void* dst, Device, const void* src, Device, std::size_t bytes) {
    EWE_CUDA_CHECK(cudaDeviceSynchronize());
    EWE_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
    EWE_CUDA_CHECK(cudaDeviceSynchronize());
}

inline std::shared_ptr<void> create_resources(const ContextOptions& options) {
    return std::make_shared<Resources>(options);
}
inline void synchronize(void* resources) { static_cast<Resources*>(resources)->synchronize(); }

inline Backend<float> float_backend;
inline Backend<double> double_backend;

inline const ewe::detail::CudaMemoryHooks memory_hooks{&allocate, &release, &copy_bytes};
inline const ewe::detail::CudaContextHooks context_hooks{&create_resources, &synchronize, &float_backend,
                                                         &double_backend};

// Installs the hooks during static initialization of any program that includes this header.
inline const bool hooks_installed = [] {
    ewe::detail::cuda_memory_hooks() = &memory_hooks;
    ewe::detail::cuda_context_hooks() = &context_hooks;
    return true;
}();

}  // namespace detail

}  // namespace ewe::cuda

// The CUDA graph guard comes with the backend (ewe::cuda::StepGraph).
#include "ewe/cuda/graph.cuh"
