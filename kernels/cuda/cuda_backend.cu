// CUDA backend: device memory, cuBLAS float32 matrix products and the kernels
// of ops.cuh, all on one stream of one device.
//
// Batch invariance: every kernel computes a token's (or sequence's) values
// independently of the rest of the batch, in a fixed order. cuBLAS does not
// promise that: it picks a GEMM algorithm (tile shape, split-K) per problem
// size, so a row's result may change in the last bits with the number of rows
// in the call. tests/test_cuda_backend.cpp measures that difference; making it
// bit-exact needs a fixed algorithm for every M (a later step).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/ops.cuh"

namespace rwkv::kernels {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error: ") + what +
                             " failed: " + cublasGetStatusString(status));
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    const int count = cuda_device_count();
    if (device < 0 || device >= count)
      throw std::runtime_error("CUDA device " + std::to_string(device) + " does not exist (" +
                               std::to_string(count) + " device(s) found)");
    RWKV_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    RWKV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = "cuda:" + std::to_string(device_) + " (" + prop.name + ")";
    RWKV_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (const cublasStatus_t st = cublasCreate(&blas_); st != CUBLAS_STATUS_SUCCESS) {
      cudaStreamDestroy(stream_);
      check_cublas(st, "cublasCreate");
    }
    try {
      check_cublas(cublasSetStream(blas_, stream_), "cublasSetStream");
      // Plain float32 arithmetic: no TF32 tensor-core shortcut (its 10-bit
      // mantissa would cost about 1e-3 relative accuracy per product).
      check_cublas(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    } catch (...) {
      cublasDestroy(blas_);
      cudaStreamDestroy(stream_);
      throw;
    }
  }

  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return name_; }

  // Memory. The engine drives the backend from a thread other than the one
  // that created it (the scheduler's), and the current device is per thread,
  // so every entry point first selects our device (a cheap call).
  void* allocate(size_t bytes) override {
    bind();
    void* ptr = nullptr;
    RWKV_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(bytes, 256)));
    return ptr;
  }
  void release(void* ptr) override {
    // Called from destructors: errors cannot be reported here.
    cudaSetDevice(device_);
    cudaFree(ptr);
  }
  // The host buffer may be freed as soon as this returns, so the copy must be
  // complete: wait for the stream (cudaMemcpyAsync from pageable memory does
  // not promise to have read the buffer on return).
  void to_device(void* dst, const void* host_src, size_t bytes) override {
    if (bytes == 0) return;
    bind();
    RWKV_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
    RWKV_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void to_host(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    bind();
    RWKV_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    RWKV_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  // Regions never overlap in the engine (cudaMemcpy does not support overlap).
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    bind();
    RWKV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void zero(void* dst, size_t bytes) override {
    if (bytes == 0) return;
    bind();
    RWKV_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
  }
  void synchronize() override {
    bind();
    RWKV_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // Row-major y[M,N] = x[M,K]·w[N,K]ᵀ is column-major yᵀ[N,M] = w·xᵀ, where w
  // read column-major is wᵀ [K,N] (so: transpose it) and x is xᵀ [K,M].
  void matmul(int M, int N, int K, const float* x, const float* w, float* y,
              bool accumulate) override {
    if (M <= 0 || N <= 0) return;
    bind();
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    check_cublas(
        cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, K, x, K, &beta, y, N),
        "cublasSgemm");
  }

  void gather_rows(const int32_t* tokens, int num_tokens, const float* table, int C,
                   float* out) override {
    bind();
    cuda::gather_rows(stream_, tokens, num_tokens, table, C, out);
  }
  void broadcast_row(const float* row, int rows, int C, float* out) override {
    bind();
    cuda::broadcast_row(stream_, row, rows, C, out);
  }
  void layer_norm(int rows, int C, const float* x, const float* weight, const float* bias,
                  float eps, float* y) override {
    bind();
    cuda::layer_norm(stream_, rows, C, x, weight, bias, eps, y);
  }
  void token_shift_mix(const PackedBatch& batch, int C, const float* u, SlotArray shift,
                       int num_mix, const float* const* mix, float* const* out) override {
    bind();
    cuda::token_shift_mix(stream_, batch, C, u, shift, num_mix, mix, out);
  }
  void activate(Activation act, size_t n, float* x) override {
    bind();
    cuda::activate(stream_, act, n, x);
  }
  void add_bias(int rows, int C, const float* bias, float* x) override {
    bind();
    cuda::add_bias(stream_, rows, C, bias, x);
  }
  void add(size_t n, const float* x, float* y) override {
    bind();
    cuda::add(stream_, n, x, y);
  }
  void wkv_prepare(const WkvPrepareArgs& args) override {
    bind();
    cuda::wkv_prepare(stream_, args);
  }
  void wkv7(const PackedBatch& batch, int heads, const float* r, const float* decay, const float* k,
            const float* v, const float* alpha, const float* beta, SlotArray state,
            float* y) override {
    bind();
    cuda::wkv7(stream_, batch, heads, r, decay, k, v, alpha, beta, state, y);
  }
  void wkv_output(int num_tokens, int heads, const float* r, const float* k, const float* v,
                  const float* r_k, const float* gn_weight, const float* gn_bias, float eps,
                  const float* g, float* y) override {
    bind();
    cuda::wkv_output(stream_, num_tokens, heads, r, k, v, r_k, gn_weight, gn_bias, eps, g, y);
  }
  void pool_token_layer_norm(const PackedBatch& batch, int C, const float* x, const float* weight,
                             const float* bias, float eps, int32_t pool_token,
                             SlotArray pool) override {
    bind();
    cuda::pool_token_layer_norm(stream_, batch, C, x, weight, bias, eps, pool_token, pool);
  }

 private:
  void bind() const { RWKV_CUDA_CHECK(cudaSetDevice(device_)); }

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
};

}  // namespace

int cuda_device_count() {
  int count = 0;
  // Without a driver this returns an error (cudaErrorNoDevice or
  // cudaErrorInsufficientDriver) rather than aborting: that means no device.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear it so later calls do not report it again
    return 0;
  }
  return count;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  return std::make_unique<CudaBackend>(device);
}

}  // namespace rwkv::kernels
