// cuBLASLt GEMMs for the CUDA backend: the cached plan of one GEMM shape (matmul
// descriptor, layouts, heuristic algorithm) and gemm / gemm_row_major, which find or
// make the plan and run it on the context's stream with workspace from its arena.
// Dense layers and the im2col fallback of convolutions (ewe/cuda/conv.cuh) use these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ewe/cuda/check.cuh"
#include "ewe/cuda/resources.cuh"

namespace ewe::cuda {

// cuBLASLt plan of one column-major GEMM C(m, n) = op(A) op(B).
struct GemmPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    std::size_t workspace = 0;

    GemmPlan() = default;
    GemmPlan(const GemmPlan&) = delete;
    GemmPlan& operator=(const GemmPlan&) = delete;
    ~GemmPlan() {
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (c) cublasLtMatrixLayoutDestroy(c);
        if (desc) cublasLtMatmulDescDestroy(desc);
    }
};

// Largest power of two (at most 256) that divides the address.
inline std::uint32_t alignment_of(const void* p) {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    std::uint32_t align = 256;
    while (align > 4 && address % align != 0) align /= 2;
    return align;
}

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
        auto plan = std::make_shared<GemmPlan>();
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

}  // namespace ewe::cuda
