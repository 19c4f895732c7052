// CUDA backend: device memory, cuBLASLt matrix products (lt_matmul.h), the
// kernels of ops.cuh and recorded steps (graph_cache.h), all on one stream
// of one device.
//
// Precision: with a half-precision dtype, weight matrices are stored as
// float16 or bfloat16 and each product's input is rounded to that type by a
// small kernel into a preallocated scratch buffer; products accumulate and
// write float32, and everything else (norms, mixes, the WKV recurrence and
// its state, pooling) is float32.
#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/graph_cache.h"
#include "kernels/cuda/lt_matmul.h"
#include "kernels/cuda/ops.cuh"

namespace rwkv::kernels {
namespace {

// cuBLASLt's workspace: what NVIDIA recommends for Hopper, allocated once.
constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;

std::string describe(int device, const cudaDeviceProp& prop, const CudaOptions& o) {
  std::string name = "cuda:" + std::to_string(device) + " (" + prop.name + "), " +
                     matmul_dtype_name(o.dtype) + " matmuls, CUDA graphs " +
                     (o.graphs ? "on" : "off") + ", WKV ";
  return name + (o.wkv_chunked_min_tokens > 0
                     ? "chunked from " + std::to_string(o.wkv_chunked_min_tokens) + " tokens"
                     : "sequential");
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, const CudaOptions& options) : device_(device), options_(options) {
    const int count = cuda_device_count();
    if (device < 0 || device >= count)
      throw std::runtime_error("CUDA device " + std::to_string(device) + " does not exist (" +
                               std::to_string(count) + " device(s) found)");
    if (options.wkv_chunked_min_tokens < 0)
      throw std::invalid_argument("the chunked WKV threshold must be >= 0");
    RWKV_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    RWKV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = describe(device_, prop, options_);
    RWKV_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    try {
      lt_ = std::make_unique<cuda::LtMatmul>(stream_);
      graphs_ = std::make_unique<cuda::GraphCache>(stream_);
      lt_workspace_ = allocate(kLtWorkspaceBytes);
      lt_->set_workspace(lt_workspace_, kLtWorkspaceBytes);
    } catch (...) {
      lt_.reset();
      if (lt_workspace_) cudaFree(lt_workspace_);
      cudaStreamDestroy(stream_);
      throw;
    }
  }

  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    graphs_.reset();
    lt_.reset();
    if (scratch_) cudaFree(scratch_);
    if (lt_workspace_) cudaFree(lt_workspace_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return name_; }

  // Memory. The engine drives the backend from a thread other than the one
  // that created it (the scheduler's), and the current device is per thread,
  // so every entry point first selects our device (a cheap call).
  void release(void* ptr) override {
    // Called from destructors: errors cannot be reported here. A recorded
    // step may use this memory: forget them all (they are re-recorded).
    cudaSetDevice(device_);
    graphs_->clear();
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

  // Half precision only where tensor cores can take the matrix (both sides a
  // multiple of 8 elements, i.e. 16-byte rows), and never float16 for inputs
  // float16 cannot hold: those take bfloat16's float32-sized exponent.
  MatmulDtype matrix_dtype(int rows, int cols, MatrixInput input) const override {
    if (options_.dtype == MatmulDtype::kFloat32 || input == MatrixInput::kFloat32 ||
        rows % 8 != 0 || cols % 8 != 0)
      return MatmulDtype::kFloat32;
    if (input == MatrixInput::kUnbounded) return MatmulDtype::kBFloat16;
    return options_.dtype;
  }

  void reserve_matmul(int max_rows, int max_width) override {
    bind();
    if (options_.dtype != MatmulDtype::kFloat32)
      reserve_scratch(size_t(max_rows) * max_width * sizeof(uint16_t));
  }

  void matmul(int M, const float* x, const Matrix& w, float* y, bool accumulate) override {
    if (M <= 0 || w.rows <= 0) return;
    bind();
    const void* input = x;
    if (w.dtype != MatmulDtype::kFloat32) {
      const size_t n = size_t(M) * w.cols;
      reserve_scratch(n * sizeof(uint16_t));  // a no-op within the reserved sizes
      cuda::to_matmul_dtype(stream_, w.dtype, n, x, scratch_);
      input = scratch_;
    }
    lt_->run(M, w.rows, w.cols, w.dtype, input, w.data, y, accumulate);
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
    cuda::wkv7(stream_, batch, heads, r, decay, k, v, alpha, beta, state, y,
               options_.wkv_chunked_min_tokens);
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

  int64_t graph_replays() const { return graphs_->replays(); }

  void run_recorded(uint64_t key, const std::function<void()>& ops) override {
    bind();
    if (options_.graphs)
      graphs_->run(key, ops);
    else
      ops();
  }

 protected:
  void* allocate_bytes(size_t bytes) override {
    bind();
    void* ptr = nullptr;
    RWKV_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(bytes, 256)));
    return ptr;
  }

 private:
  void bind() const { RWKV_CUDA_CHECK(cudaSetDevice(device_)); }

  // The half-precision copy of a product's input.
  void reserve_scratch(size_t bytes) {
    if (bytes <= scratch_bytes_) return;
    if (scratch_) release(scratch_);
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    scratch_ = allocate(bytes);
    scratch_bytes_ = bytes;
  }

  int device_;
  CudaOptions options_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::LtMatmul> lt_;
  std::unique_ptr<cuda::GraphCache> graphs_;
  void* lt_workspace_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
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

std::unique_ptr<Backend> make_cuda_backend(int device, const CudaOptions& options) {
  if (options.dtype == MatmulDtype::kInt8)
    throw std::invalid_argument("int8 products are CPU-only (float32, float16 or bfloat16)");
  return std::make_unique<CudaBackend>(device, options);
}

int64_t cuda_graph_replays(const Backend& backend) {
  const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
  return cuda ? cuda->graph_replays() : 0;
}

}  // namespace rwkv::kernels
