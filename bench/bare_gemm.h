// A bare cuBLASLt GEMM, the yardstick of gpu_bench: y[M,N] = x[M,K]·w[N,K]ᵀ
// with x and w already in the dtype (no conversion), float32 accumulation and
// output like the engine's products, and cuBLASLt's best heuristic
// algorithm for each exact shape (the engine instead uses one algorithm per
// matrix for every M, for batch invariance). Header-only: every bench/*.cpp
// is a program of its own.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/model_gemms.h"
#include "kernels/backend.h"

namespace rwkv::bench {

class BareGemm {
 public:
  BareGemm(int device, size_t max_x, size_t max_w, size_t max_y) {
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaStreamCreate(&stream_), "stream");
    check(cublasLtCreate(&handle_), "cublasLtCreate");
    check(cudaMalloc(&x_, max_x * 4), "x");
    check(cudaMalloc(&w_, max_w * 4), "w");
    check(cudaMalloc(&y_, max_y * 4), "y");
    check(cudaMalloc(&workspace_, kWorkspace), "workspace");
    // Small values in every dtype (0x1f bytes: ~0.007 in float16, ~3e-20 in
    // float32/bfloat16): the same work as real data.
    check(cudaMemset(x_, 0x1f, max_x * 4), "memset");
    check(cudaMemset(w_, 0x1f, max_w * 4), "memset");
    check(cudaEventCreate(&start_), "event");
    check(cudaEventCreate(&stop_), "event");
  }
  ~BareGemm() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
    cudaFree(workspace_);
    cudaFree(y_);
    cudaFree(w_);
    cudaFree(x_);
    cublasLtDestroy(handle_);
    cudaStreamDestroy(stream_);
  }
  BareGemm(const BareGemm&) = delete;
  BareGemm& operator=(const BareGemm&) = delete;

  // Seconds for one pass over `gemms` at M rows, best of `reps` passes.
  double seconds(kernels::MatmulDtype dtype, const std::vector<Gemm>& gemms, int M, int reps) {
    std::vector<Op> ops;
    for (const Gemm& g : gemms) ops.push_back(make_op(dtype, M, g.n, g.k));
    const float alpha = 1, beta = 0;
    float best_ms = 1e30f;
    for (int r = 0; r < reps + 1; ++r) {  // the first pass warms up
      check(cudaEventRecord(start_, stream_), "record");
      for (const Op& op : ops)
        check(cublasLtMatmul(handle_, op.desc, &alpha, w_, op.w, x_, op.x, &beta, y_, op.y, y_,
                             op.y, &op.algo, workspace_, kWorkspace, stream_),
              "cublasLtMatmul");
      check(cudaEventRecord(stop_, stream_), "record");
      check(cudaEventSynchronize(stop_), "sync");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, start_, stop_), "elapsed");
      if (r > 0) best_ms = std::min(best_ms, ms);
    }
    for (Op& op : ops) op.destroy();
    return best_ms / 1e3;
  }

 private:
  static constexpr size_t kWorkspace = size_t(32) << 20;

  struct Op {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t w = nullptr, x = nullptr, y = nullptr;
    cublasLtMatmulAlgo_t algo{};
    void destroy() {
      cublasLtMatrixLayoutDestroy(w);
      cublasLtMatrixLayoutDestroy(x);
      cublasLtMatrixLayoutDestroy(y);
      cublasLtMatmulDescDestroy(desc);
    }
  };

  static void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess)
      throw std::runtime_error(std::string("bare GEMM: ") + what + ": " + cudaGetErrorString(e));
  }
  static void check(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error(std::string("bare GEMM: ") + what + ": " + cublasGetStatusString(s));
  }

  // The engine's layout: column-major yᵀ[N,M] = (w as K×N)ᵀ · (x as K×M).
  Op make_op(kernels::MatmulDtype dtype, int M, int N, int K) {
    const cudaDataType_t type = dtype == kernels::MatmulDtype::kFloat16    ? CUDA_R_16F
                                : dtype == kernels::MatmulDtype::kBFloat16 ? CUDA_R_16BF
                                                                           : CUDA_R_32F;
    Op op;
    check(cublasLtMatmulDescCreate(&op.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
    const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    check(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)),
          "transa");
    check(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)),
          "transb");
    check(cublasLtMatrixLayoutCreate(&op.w, type, K, N, K), "layout");
    check(cublasLtMatrixLayoutCreate(&op.x, type, K, M, K), "layout");
    check(cublasLtMatrixLayoutCreate(&op.y, CUDA_R_32F, N, M, N), "layout");
    cublasLtMatmulPreference_t pref = nullptr;
    check(cublasLtMatmulPreferenceCreate(&pref), "preference");
    const uint64_t bytes = kWorkspace;
    check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                               &bytes, sizeof(bytes)),
          "preference");
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(handle_, op.desc, op.w, op.x, op.y,
                                                            op.y, pref, 1, &result, &count);
    cublasLtMatmulPreferenceDestroy(pref);
    check(s, "heuristic");
    if (count == 0) throw std::runtime_error("bare GEMM: no cuBLASLt algorithm");
    op.algo = result.algo;
    return op;
  }

  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t handle_ = nullptr;
  void *x_ = nullptr, *w_ = nullptr, *y_ = nullptr, *workspace_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace rwkv::bench
