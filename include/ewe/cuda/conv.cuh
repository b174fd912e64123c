// Convolutions for the CUDA backend, on NHWC tensors with (out_c, kh, kw, in_c)
// filters (cuDNN's NHWC/KRSC filter format): the cached cuDNN plan of one convolution
// shape (descriptors, algorithm choice, TF-`same` tail padding) and ewe::cuda::
// Convolution, which runs the three directions of a convolution (forward, data
// gradient, filter gradient) through cuDNN, or, for a shape cuDNN cannot run (or
// every shape with EWE_CUDA_CONV_GEMM=1), through the one im2col + cuBLASLt GEMM +
// col2im fallback written here. Conv2D and Conv2DTranspose (ewe/cuda/backend.cuh)
// are both built from these three directions.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "ewe/cuda/check.cuh"
#include "ewe/cuda/gemm.cuh"
#include "ewe/cuda/resources.cuh"
#include "ewe/ops/geometry.hpp"
#include "ewe/kernels/elementwise.cuh"
#include "ewe/kernels/im2col.cuh"

namespace ewe::cuda {

// cuDNN plan of one convolution shape. TensorFlow's `same` padding may put one more
// row/column after the image than before; cuDNN pads symmetrically, so the image is
// extended by `extra_h` zero rows and `extra_w` zero columns at the end (explicitly,
// through kernels::pad_tail / crop_tail) and cuDNN pads pad_before on both sides.
struct ConvPlan {
    std::int64_t extra_h = 0, extra_w = 0;  // zero rows/columns appended to the conv input
    std::int64_t in_h = 0, in_w = 0;        // the conv input as cuDNN sees it (with the extras)
    cudnnTensorDescriptor_t x_desc = nullptr, y_desc = nullptr;
    cudnnFilterDescriptor_t w_desc = nullptr;
    cudnnConvolutionDescriptor_t conv_desc = nullptr;
    cudnnConvolutionFwdAlgo_t fwd_algo{};
    cudnnConvolutionBwdDataAlgo_t bwd_data_algo{};
    cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo{};
    cudnnMathType_t fwd_math = CUDNN_FMA_MATH, bwd_data_math = CUDNN_FMA_MATH, bwd_filter_math = CUDNN_FMA_MATH;
    std::size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;

    ConvPlan() = default;
    ConvPlan(const ConvPlan&) = delete;
    ConvPlan& operator=(const ConvPlan&) = delete;
    ~ConvPlan() {
        if (x_desc) cudnnDestroyTensorDescriptor(x_desc);
        if (y_desc) cudnnDestroyTensorDescriptor(y_desc);
        if (w_desc) cudnnDestroyFilterDescriptor(w_desc);
        if (conv_desc) cudnnDestroyConvolutionDescriptor(conv_desc);
    }
    bool padded() const { return extra_h > 0 || extra_w > 0; }
    // True when cuDNN offered no usable algorithm (or EWE_CUDA_CONV_GEMM=1 is set):
    // the op then runs as im2col + cuBLASLt GEMM + col2im (kernels/im2col.cuh),
    // the CPU backend's own lowering, and the descriptors above stay unused.
    bool use_gemm = false;
};

namespace detail {

inline int as_int(std::int64_t v, const char* what) {
    EWE_REQUIRE(v >= 0 && v <= std::numeric_limits<int>::max(), "ewe CUDA backend: ", what, " = ", v,
                " does not fit the int that cuDNN takes");
    return static_cast<int>(v);
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

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

}  // namespace detail

// The plan of g: found in the context's cache, or made (descriptors, algorithm choice)
// on first use of the shape.
inline ConvPlan& conv_plan(Resources& r, const ConvGeometry& g) {
    const Resources::ConvKey key{g.batch,  g.in_c,     g.out_c,    g.h.in,         g.h.out,
                                 g.h.kernel, g.h.stride, g.h.pad_before, g.w.in, g.w.out,
                                 g.w.kernel, g.w.stride, g.w.pad_before};
    auto& cache = r.conv_plans();
    if (auto found = cache.find(key); found != cache.end()) return *found->second;

    using detail::as_int;
    auto plan = std::make_shared<ConvPlan>();
    ConvPlan& p = *plan;
    p.extra_h = detail::extra_tail(g.h);
    p.extra_w = detail::extra_tail(g.w);
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
        found &= detail::choose_algorithm(perfs.data(), returned, r, p.conv_desc, p.fwd_algo, p.fwd_math, p.fwd_bytes,
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
        found &= detail::choose_algorithm(perfs.data(), returned, r, p.conv_desc, p.bwd_data_algo, p.bwd_data_math,
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
        found &= detail::choose_algorithm(perfs.data(), returned, r, p.conv_desc, p.bwd_filter_algo,
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

// The three directions of the convolution g (x: g's input shape, y: its output
// shape), each through cuDNN or the im2col + GEMM fallback as the plan says. Every
// direction carves its buffers from the front of the arena (ops on one stream run in
// order, so each may reuse it): the zero-tailed copy of the conv input or of the data
// gradient (when the plan pads), 16-byte aligned copies of a filter or filter
// gradient at an unaligned offset of the flat parameter buffer, and cuDNN's
// workspace; or, for the fallback, the patch matrix followed by cuBLASLt's workspace.
class Convolution {
public:
    // Finds or makes g's plan and counts the op's path (one count per op).
    Convolution(Resources& r, const ConvGeometry& g) : r_(r), g_(g), plan_(conv_plan(r, g)) {
        r.count_conv_path(plan_.use_gemm);
    }

    // y = conv(x, w).
    void forward(const float* x, const float* w, float* y) {
        if (plan_.use_gemm) {
            // y (M, O) = im2col(x) (M, K) w^T.
            const PatchMatrix c(r_, g_);
            kernels::im2col(r_.stream(), g_, x, c.cols);
            gemm_row_major(r_, false, true, c.M, g_.out_c, c.K, c.cols, w, y, c.gemm_offset);
            return;
        }
        const Buffers buf = buffers(w, nullptr, plan_.fwd_bytes);
        const float* input = pad_input(x, buf);
        const float* filter = stage_filter(w, buf);
        const float one = 1.0f, zero = 0.0f;
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan_.conv_desc, plan_.fwd_math));
        EWE_CUDNN_CHECK(cudnnConvolutionForward(r_.cudnn(), &one, plan_.x_desc, input, plan_.w_desc, filter,
                                                plan_.conv_desc, plan_.fwd_algo, buf.cudnn, plan_.fwd_bytes, &zero,
                                                plan_.y_desc, y));
    }

    // dx = the data gradient of conv(., w) for the output gradient dy (overwritten).
    void backward_data(const float* w, const float* dy, float* dx) {
        if (plan_.use_gemm) {
            // dx = col2im(dy (M, O) w (O, K)).
            const PatchMatrix c(r_, g_);
            gemm_row_major(r_, false, false, c.M, c.K, g_.out_c, dy, w, c.cols, c.gemm_offset);
            kernels::col2im(r_.stream(), g_, c.cols, dx);
            return;
        }
        const Buffers buf = buffers(w, nullptr, plan_.bwd_data_bytes);
        const float* filter = stage_filter(w, buf);
        float* grad_in = plan_.padded() ? buf.padded : dx;
        const float one = 1.0f, zero = 0.0f;
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan_.conv_desc, plan_.bwd_data_math));
        EWE_CUDNN_CHECK(cudnnConvolutionBackwardData(r_.cudnn(), &one, plan_.w_desc, filter, plan_.y_desc, dy,
                                                     plan_.conv_desc, plan_.bwd_data_algo, buf.cudnn,
                                                     plan_.bwd_data_bytes, &zero, plan_.x_desc, grad_in));
        if (plan_.padded())
            kernels::crop_tail(r_.stream(), buf.padded, dx, g_.batch, g_.h.in, g_.w.in, g_.in_c, plan_.in_h,
                               plan_.in_w);
    }

    // dw = the filter gradient of conv(x, .) for the output gradient dy (overwritten).
    void backward_filter(const float* x, const float* dy, float* dw) {
        if (plan_.use_gemm) {
            // dw (O, K) = dy^T (O, M) im2col(x) (M, K).
            const PatchMatrix c(r_, g_);
            kernels::im2col(r_.stream(), g_, x, c.cols);
            gemm_row_major(r_, true, false, g_.out_c, c.K, c.M, dy, c.cols, dw, c.gemm_offset);
            return;
        }
        const Buffers buf = buffers(nullptr, dw, plan_.bwd_filter_bytes);
        const float* input = pad_input(x, buf);
        float* filter_grad = buf.filter_grad != nullptr ? buf.filter_grad : dw;
        const float one = 1.0f, zero = 0.0f;
        EWE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan_.conv_desc, plan_.bwd_filter_math));
        EWE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(r_.cudnn(), &one, plan_.x_desc, input, plan_.y_desc, dy,
                                                       plan_.conv_desc, plan_.bwd_filter_algo, buf.cudnn,
                                                       plan_.bwd_filter_bytes, &zero, plan_.w_desc, filter_grad));
        if (buf.filter_grad != nullptr)
            EWE_CUDA_CHECK(cudaMemcpyAsync(dw, buf.filter_grad, filter_elements() * sizeof(float),
                                           cudaMemcpyDeviceToDevice, r_.stream()));
    }

private:
    // The fallback's patch matrix (M, K) at the front of the arena, followed by room for
    // cuBLASLt's workspace (reserved up front so the arena cannot move under it).
    struct PatchMatrix {
        std::int64_t M = 0, K = 0;
        float* cols = nullptr;
        std::size_t gemm_offset = 0;
        PatchMatrix(Resources& r, const ConvGeometry& g) : M(g.gemm_m()), K(g.gemm_k()) {
            gemm_offset = WorkspaceCarver::round(static_cast<std::size_t>(M * K) * sizeof(float));
            cols = reinterpret_cast<float*>(r.workspace(gemm_offset + Resources::kMaxGemmWorkspace));
        }
    };

    // cuDNN's buffers for one direction; a member is nullptr when not needed.
    struct Buffers {
        float* padded = nullptr;       // (batch, in_h + extra_h, in_w + extra_w, in_c) when the plan pads
        float* filter = nullptr;       // aligned copy of an unaligned w
        float* filter_grad = nullptr;  // aligned stand-in for an unaligned dw
        std::byte* cudnn = nullptr;
    };

    std::size_t filter_elements() const {
        return static_cast<std::size_t>(g_.out_c * g_.h.kernel * g_.w.kernel * g_.in_c);
    }

    // w / dw: the filter and filter gradient the direction uses (nullptr when it uses none).
    Buffers buffers(const float* w, const float* dw, std::size_t cudnn_bytes) {
        const std::size_t padded =
            plan_.padded() ? static_cast<std::size_t>(g_.batch * plan_.in_h * plan_.in_w * g_.in_c) : 0;
        const bool stage_w = w != nullptr && !detail::aligned16(w);
        const bool stage_dw = dw != nullptr && !detail::aligned16(dw);
        const std::size_t filter = filter_elements();
        WorkspaceCarver carve;
        carve.reserve(padded * sizeof(float));
        carve.reserve(stage_w ? filter * sizeof(float) : 0);
        carve.reserve(stage_dw ? filter * sizeof(float) : 0);
        carve.reserve(cudnn_bytes);
        carve.bind(r_.workspace(carve.total()));
        Buffers buf;
        buf.padded = carve.take<float>(padded);
        buf.filter = carve.take<float>(stage_w ? filter : 0);
        buf.filter_grad = carve.take<float>(stage_dw ? filter : 0);
        buf.cudnn = carve.take<std::byte>(cudnn_bytes);
        if (padded == 0) buf.padded = nullptr;
        if (!stage_w) buf.filter = nullptr;
        if (!stage_dw) buf.filter_grad = nullptr;
        return buf;
    }

    // The conv input as cuDNN needs it: in place, or copied into buf.padded with the zero tail.
    const float* pad_input(const float* in, const Buffers& buf) {
        if (!plan_.padded()) return in;
        kernels::pad_tail(r_.stream(), in, buf.padded, g_.batch, g_.h.in, g_.w.in, g_.in_c, plan_.in_h, plan_.in_w);
        return buf.padded;
    }

    const float* stage_filter(const float* w, const Buffers& buf) {
        if (buf.filter == nullptr) return w;
        EWE_CUDA_CHECK(cudaMemcpyAsync(buf.filter, w, filter_elements() * sizeof(float), cudaMemcpyDeviceToDevice,
                                       r_.stream()));
        return buf.filter;
    }

    Resources& r_;
    const ConvGeometry& g_;
    const ConvPlan& plan_;
};

}  // namespace ewe::cuda
