#include "kernels/cuda/lt_matmul.h"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace rwkv::kernels::cuda {
namespace {

constexpr int kCandidates = 16;  // heuristic results looked at per shape

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLASLt error: ") + what +
                             " failed: " + cublasGetStatusString(status));
}

cudaDataType_t cuda_type(MatmulDtype dtype) {
  switch (dtype) {
    case MatmulDtype::kFloat16:
      return CUDA_R_16F;
    case MatmulDtype::kBFloat16:
      return CUDA_R_16BF;
    case MatmulDtype::kFloat32:
    case MatmulDtype::kInt8:  // refused by make_cuda_backend
      break;
  }
  return CUDA_R_32F;
}

int32_t split_k(const cublasLtMatmulAlgo_t& algo) {
  int32_t splits = 1;
  size_t written = 0;
  check(cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
                                             sizeof(splits), &written),
        "reading an algorithm's split-K");
  return splits;
}

}  // namespace

// Row-major y[M,N] = x[M,K]·w[N,K]ᵀ is, column-major, yᵀ[N,M] = wᵀ·xᵀ with
// w read as a K×N column-major matrix (transposed by the op) and x as K×M.
LtMatmul::LtMatmul(cudaStream_t stream) : stream_(stream) {
  check(cublasLtCreate(&handle_), "cublasLtCreate");
  try {
    // Plain float32 accumulation: CUBLAS_COMPUTE_32F never takes the TF32
    // shortcut (its 10-bit mantissa would cost ~1e-3 relative accuracy).
    check(cublasLtMatmulDescCreate(&op_, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul descriptor");
    const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
    check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &transpose,
                                         sizeof(transpose)),
          "TRANSA");
    check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep)),
          "TRANSB");
    check(cublasLtMatmulPreferenceCreate(&preference_), "preference");
    // Activation buffers start at allocation boundaries, but callers may pass
    // any 16-byte aligned pointer: rule out algorithms that need more.
    const uint32_t alignment = 16;
    for (auto attr :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      check(cublasLtMatmulPreferenceSetAttribute(preference_, attr, &alignment, sizeof(alignment)),
            "alignment preference");
  } catch (...) {
    if (preference_) cublasLtMatmulPreferenceDestroy(preference_);
    if (op_) cublasLtMatmulDescDestroy(op_);
    cublasLtDestroy(handle_);
    throw;
  }
}

LtMatmul::~LtMatmul() {
  for (auto& [shape, p] : plans_)
    for (cublasLtMatrixLayout_t layout : {p.w, p.x, p.y})
      if (layout) cublasLtMatrixLayoutDestroy(layout);
  cublasLtMatmulPreferenceDestroy(preference_);
  cublasLtMatmulDescDestroy(op_);
  cublasLtDestroy(handle_);
}

void LtMatmul::set_workspace(void* workspace, size_t bytes) {
  workspace_ = workspace;
  workspace_bytes_ = bytes;
  const uint64_t max_bytes = bytes;
  check(cublasLtMatmulPreferenceSetAttribute(preference_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &max_bytes, sizeof(max_bytes)),
        "workspace preference");
}

LtMatmul::Plan& LtMatmul::plan(MatmulDtype dtype, int N, int K) {
  const Shape shape{dtype, N, K};
  if (auto it = plans_.find(shape); it != plans_.end()) return it->second;
  Plan p;
  const cudaDataType_t type = cuda_type(dtype);
  try {
    check(cublasLtMatrixLayoutCreate(&p.w, type, K, N, K), "weight layout");
    check(cublasLtMatrixLayoutCreate(&p.x, type, K, kReferenceRows, K), "input layout");
    check(cublasLtMatrixLayoutCreate(&p.y, CUDA_R_32F, N, kReferenceRows, N), "output layout");
    p.algo = choose_algorithm(p, kReferenceRows);
  } catch (...) {
    for (cublasLtMatrixLayout_t layout : {p.w, p.x, p.y})
      if (layout) cublasLtMatrixLayoutDestroy(layout);
    throw;
  }
  return plans_.emplace(shape, p).first->second;
}

void LtMatmul::set_rows(Plan& p, int M) {
  const uint64_t cols = uint64_t(M);
  check(cublasLtMatrixLayoutSetAttribute(p.x, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof(cols)),
        "input rows");
  check(cublasLtMatrixLayoutSetAttribute(p.y, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof(cols)),
        "output rows");
}

// The heuristic's best algorithm that fits the workspace and does not split
// K (a split-K reduction may add the parts in any order); failing that, its
// best one that fits.
cublasLtMatmulAlgo_t LtMatmul::choose_algorithm(Plan& p, int M) {
  set_rows(p, M);
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int count = 0;
  check(cublasLtMatmulAlgoGetHeuristic(handle_, op_, p.w, p.x, p.y, p.y, preference_, kCandidates,
                                       results, &count),
        "cublasLtMatmulAlgoGetHeuristic");
  const cublasLtMatmulAlgo_t* best_fitting = nullptr;
  for (int i = 0; i < count; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > workspace_bytes_)
      continue;
    if (split_k(results[i].algo) <= 1) return results[i].algo;
    if (!best_fitting) best_fitting = &results[i].algo;
  }
  if (best_fitting) return *best_fitting;
  throw std::runtime_error("cuBLASLt has no algorithm for this product (" + std::to_string(count) +
                           " candidates)");
}

cublasStatus_t LtMatmul::launch(const Plan& p, const cublasLtMatmulAlgo_t& algo, const void* x,
                                const void* w, float* y, bool accumulate) {
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  return cublasLtMatmul(handle_, op_, &alpha, w, p.w, x, p.x, &beta, y, p.y, y, p.y, &algo,
                        workspace_, workspace_bytes_, stream_);
}

void LtMatmul::run(int M, int N, int K, MatmulDtype dtype, const void* x, const void* w, float* y,
                   bool accumulate) {
  Plan& p = plan(dtype, N, K);
  set_rows(p, M);
  const cublasStatus_t status = launch(p, p.algo, x, w, y, accumulate);
  if (status != CUBLAS_STATUS_NOT_SUPPORTED) {
    check(status, "cublasLtMatmul");
    return;
  }
  // The shape's algorithm refused this row count: use one chosen for it.
  const auto key = std::tuple{dtype, N, K, M};
  auto it = fallbacks_.find(key);
  if (it == fallbacks_.end()) it = fallbacks_.emplace(key, choose_algorithm(p, M)).first;
  check(launch(p, it->second, x, w, y, accumulate), "cublasLtMatmul");
}

}  // namespace rwkv::kernels::cuda
