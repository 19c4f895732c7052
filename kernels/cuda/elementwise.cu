// Row copies, token shift and the pointwise ops: memory-bound kernels, one
// block per row where a row is the natural unit, grid-stride loops otherwise.
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

unsigned point_blocks(size_t n) {
  const unsigned b = blocks_for(n, kPointThreads);
  return b < kMaxPointBlocks ? b : kMaxPointBlocks;
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

}  // namespace rwkv::kernels::cuda
