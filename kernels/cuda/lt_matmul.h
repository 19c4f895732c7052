// Matrix products through cuBLASLt on one stream: inputs float32, float16 or
// bfloat16, float32 accumulation (no TF32) and float32 output.
//
// Batch invariance: cuBLASLt's heuristic picks an algorithm (tile shape,
// split-K) per problem size, so a row's result could change with the number
// of rows beside it. Here each matrix shape gets one algorithm, chosen for
// kReferenceRows rows (a typical full step) whatever the backend's limits and
// then used for every row count, and one that does not split K (unless
// cuBLASLt offers no other): a row is then summed in the same order however
// many rows share the call, in any engine.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <tuple>

#include "kernels/backend.h"

namespace rwkv::kernels::cuda {

class LtMatmul {
 public:
  explicit LtMatmul(cudaStream_t stream);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // The cuBLASLt workspace: device memory owned by the caller, set once
  // before the first product (algorithms are chosen for its size).
  void set_workspace(void* workspace, size_t bytes);

  // y[M, N] = x[M, K] · w[N, K]ᵀ (+ y when accumulate); x and w of `dtype`.
  void run(int M, int N, int K, MatmulDtype dtype, const void* x, const void* w, float* y,
           bool accumulate);

 private:
  struct Plan {
    cublasLtMatrixLayout_t w = nullptr, x = nullptr, y = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  using Shape = std::tuple<MatmulDtype, int, int>;  // dtype, N, K
  static constexpr int kReferenceRows = 4096;

  Plan& plan(MatmulDtype dtype, int N, int K);
  void set_rows(Plan& p, int M);
  cublasLtMatmulAlgo_t choose_algorithm(Plan& p, int M);
  cublasStatus_t launch(const Plan& p, const cublasLtMatmulAlgo_t& algo, const void* x,
                        const void* w, float* y, bool accumulate);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatmulPreference_t preference_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Shape, Plan> plans_;
  // Row counts the shape's algorithm refused (should not happen): their own.
  std::map<std::tuple<MatmulDtype, int, int, int>, cublasLtMatmulAlgo_t> fallbacks_;
};

}  // namespace rwkv::kernels::cuda
