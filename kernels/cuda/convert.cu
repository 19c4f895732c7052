// Float32 activations to the half-precision input of a matrix product.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/ops.cuh"

namespace rwkv::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 65536;  // grid-stride beyond this
constexpr float kHalfMax = 65504.0f;

template <typename T>
__device__ __forceinline__ T convert(float x);
template <>
__device__ __forceinline__ __half convert<__half>(float x) {
  return __float2half_rn(fminf(fmaxf(x, -kHalfMax), kHalfMax));
}
template <>
__device__ __forceinline__ __nv_bfloat16 convert<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

template <typename T>
struct alignas(4 * sizeof(T)) Quad {
  T v[4];
};

// Four elements per thread and iteration: one 16-byte load, one 8-byte store
// (n % 4 == 0, x 16-byte and dst 8-byte aligned).
template <typename T>
__global__ void convert4_kernel(size_t quads, const float4* x, Quad<T>* dst) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < quads;
       i += size_t(gridDim.x) * blockDim.x) {
    const float4 v = x[i];
    dst[i] = Quad<T>{{convert<T>(v.x), convert<T>(v.y), convert<T>(v.z), convert<T>(v.w)}};
  }
}

template <typename T>
__global__ void convert_kernel(size_t n, const float* x, T* dst) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    dst[i] = convert<T>(x[i]);
}

template <typename T>
void launch(cudaStream_t stream, size_t n, const float* x, T* dst) {
  const bool vector = n % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                      reinterpret_cast<uintptr_t>(dst) % 8 == 0;
  const size_t items = vector ? n / 4 : n;
  const unsigned blocks = std::min(blocks_for(items, kThreads), kMaxBlocks);
  if (vector)
    convert4_kernel<T><<<blocks, kThreads, 0, stream>>>(items, reinterpret_cast<const float4*>(x),
                                                        reinterpret_cast<Quad<T>*>(dst));
  else
    convert_kernel<T><<<blocks, kThreads, 0, stream>>>(n, x, dst);
  RWKV_CUDA_CHECK_LAUNCH();
}

}  // namespace

void to_matmul_dtype(cudaStream_t stream, MatmulDtype dtype, size_t n, const float* x, void* dst) {
  if (n == 0) return;
  if (dtype == MatmulDtype::kFloat16)
    launch(stream, n, x, static_cast<__half*>(dst));
  else
    launch(stream, n, x, static_cast<__nv_bfloat16*>(dst));
}

}  // namespace rwkv::kernels::cuda
