// Row copies, token shift and the pointwise ops (the conversion of product
// inputs to half precision among them): memory-bound kernels, one block per
// row where a row is the natural unit, grid-stride loops otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>

#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/ops.cuh"

namespace rwkv::kernels::cuda {
namespace {

constexpr int kRowThreads = 128;
constexpr int kPointThreads = 256;
constexpr unsigned kMaxPointBlocks = 65536;  // grid-stride beyond this

// out[row] = table[index[row]] (or table itself when index is null).
__global__ void copy_rows_kernel(const int32_t* index, const float* table, int C, float* out) {
  const int64_t row = blockIdx.x;
  const float* src = table + (index ? int64_t(index[row]) * C : 0);
  float* dst = out + row * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

struct MixPointers {
  const float* mix[kMaxMix];
  float* out[kMaxMix];
  int count;
};

// One block per token: out[m][t] = u_t + (prev - u_t) * mix[m], where prev is
// the previous token of the same sequence or the slot's shift state.
__global__ void token_shift_mix_kernel(const int32_t* seq_start, const int32_t* slot, int num_seqs,
                                       int C, const float* u, SlotArray shift, MixPointers p) {
  const int t = blockIdx.x;
  const int s = sequence_of(seq_start, num_seqs, t);
  const float* cur = u + int64_t(t) * C;
  const float* prev =
      t == seq_start[s] ? shift.base + int64_t(slot[s]) * shift.slot_stride : cur - C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float x = cur[c], d = prev[c] - x;
#pragma unroll
    for (int m = 0; m < kMaxMix; ++m)
      if (m < p.count) p.out[m][int64_t(t) * C + c] = x + d * p.mix[m][c];
  }
}

// One block per sequence: its last u becomes the slot's shift state. A
// separate launch, so that every token has read the old state first.
__global__ void store_shift_kernel(const int32_t* seq_start, const int32_t* slot, int C,
                                   const float* u, SlotArray shift) {
  const int s = blockIdx.x;
  const int begin = seq_start[s], last = seq_start[s + 1] - 1;
  if (last < begin) return;
  const float* src = u + int64_t(last) * C;
  float* dst = shift.base + int64_t(slot[s]) * shift.slot_stride;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

template <Activation act>
__global__ void activate_kernel(size_t n, float* x) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    if constexpr (act == Activation::kTanh)
      x[i] = tanhf(v);
    else if constexpr (act == Activation::kSigmoid)
      x[i] = sigmoidf(v);
    else if constexpr (act == Activation::kRelu)
      x[i] = v > 0 ? v : 0;
    else
      x[i] = v > 0 ? v * v : 0;
  }
}

__global__ void add_bias_kernel(int C, const float* bias, float* x) {
  float* row = x + int64_t(blockIdx.x) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) row[c] += bias[c];
}

__global__ void add_kernel(size_t n, const float* x, float* y) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

constexpr float kHalfMax = 65504.0f;

template <typename T>
__device__ __forceinline__ T round_to(float x);
template <>
__device__ __forceinline__ __half round_to<__half>(float x) {
  return __float2half_rn(fminf(fmaxf(x, -kHalfMax), kHalfMax));
}
template <>
__device__ __forceinline__ __nv_bfloat16 round_to<__nv_bfloat16>(float x) {
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
    dst[i] = Quad<T>{{round_to<T>(v.x), round_to<T>(v.y), round_to<T>(v.z), round_to<T>(v.w)}};
  }
}

template <typename T>
__global__ void convert_kernel(size_t n, const float* x, T* dst) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    dst[i] = round_to<T>(x[i]);
}

unsigned point_blocks(size_t n) {
  const unsigned b = blocks_for(n, kPointThreads);
  return b < kMaxPointBlocks ? b : kMaxPointBlocks;
}

// x to dtype T, four elements per thread when x and dst are aligned for it.
template <typename T>
void convert(cudaStream_t stream, size_t n, const float* x, T* dst) {
  const bool vector = n % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                      reinterpret_cast<uintptr_t>(dst) % 8 == 0;
  const size_t items = vector ? n / 4 : n;
  if (vector)
    convert4_kernel<T><<<point_blocks(items), kPointThreads, 0, stream>>>(
        items, reinterpret_cast<const float4*>(x), reinterpret_cast<Quad<T>*>(dst));
  else
    convert_kernel<T><<<point_blocks(n), kPointThreads, 0, stream>>>(n, x, dst);
  RWKV_CUDA_CHECK_LAUNCH();
}

}  // namespace

void gather_rows(cudaStream_t stream, const int32_t* tokens, int num_tokens, const float* table,
                 int C, float* out) {
  if (num_tokens <= 0) return;
  copy_rows_kernel<<<num_tokens, kRowThreads, 0, stream>>>(tokens, table, C, out);
  RWKV_CUDA_CHECK_LAUNCH();
}

void broadcast_row(cudaStream_t stream, const float* row, int rows, int C, float* out) {
  if (rows <= 0) return;
  copy_rows_kernel<<<rows, kRowThreads, 0, stream>>>(nullptr, row, C, out);
  RWKV_CUDA_CHECK_LAUNCH();
}

void token_shift_mix(cudaStream_t stream, const PackedBatch& batch, int C, const float* u,
                     SlotArray shift, int num_mix, const float* const* mix, float* const* out) {
  if (num_mix < 0 || num_mix > kMaxMix)
    throw std::invalid_argument("token_shift_mix: at most 8 mixes on the CUDA backend");
  if (batch.num_tokens <= 0) return;
  MixPointers p{};
  p.count = num_mix;
  for (int m = 0; m < num_mix; ++m) {
    p.mix[m] = mix[m];
    p.out[m] = out[m];
  }
  token_shift_mix_kernel<<<batch.num_tokens, kRowThreads, 0, stream>>>(
      batch.seq_start, batch.slot, batch.num_seqs, C, u, shift, p);
  RWKV_CUDA_CHECK_LAUNCH();
  store_shift_kernel<<<batch.num_seqs, kRowThreads, 0, stream>>>(batch.seq_start, batch.slot, C, u,
                                                                 shift);
  RWKV_CUDA_CHECK_LAUNCH();
}

void activate(cudaStream_t stream, Activation act, size_t n, float* x) {
  if (n == 0) return;
  const unsigned blocks = point_blocks(n);
  switch (act) {
    case Activation::kTanh:
      activate_kernel<Activation::kTanh><<<blocks, kPointThreads, 0, stream>>>(n, x);
      break;
    case Activation::kSigmoid:
      activate_kernel<Activation::kSigmoid><<<blocks, kPointThreads, 0, stream>>>(n, x);
      break;
    case Activation::kRelu:
      activate_kernel<Activation::kRelu><<<blocks, kPointThreads, 0, stream>>>(n, x);
      break;
    case Activation::kReluSquared:
      activate_kernel<Activation::kReluSquared><<<blocks, kPointThreads, 0, stream>>>(n, x);
      break;
  }
  RWKV_CUDA_CHECK_LAUNCH();
}

void add_bias(cudaStream_t stream, int rows, int C, const float* bias, float* x) {
  if (rows <= 0) return;
  add_bias_kernel<<<rows, kRowThreads, 0, stream>>>(C, bias, x);
  RWKV_CUDA_CHECK_LAUNCH();
}

void add(cudaStream_t stream, size_t n, const float* x, float* y) {
  if (n == 0) return;
  add_kernel<<<point_blocks(n), kPointThreads, 0, stream>>>(n, x, y);
  RWKV_CUDA_CHECK_LAUNCH();
}

void to_matmul_dtype(cudaStream_t stream, MatmulDtype dtype, size_t n, const float* x, void* dst) {
  if (n == 0) return;
  if (dtype == MatmulDtype::kFloat16)
    convert(stream, n, x, static_cast<__half*>(dst));
  else
    convert(stream, n, x, static_cast<__nv_bfloat16*>(dst));
}

}  // namespace rwkv::kernels::cuda
