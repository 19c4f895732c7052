// Helpers shared by the CUDA kernels: the error checks (cuda_check.h), launch
// sizes, and warp/block reductions with a fixed summation order (so a row's
// result never depends on where it sits in a batch).
#pragma once

#include <cuda_runtime.h>

#include "engine/common/head_size.h"
#include "kernels/cuda/cuda_check.h"

namespace rwkv::kernels::cuda {

using common::kHeadSize;
constexpr int kWarp = 32;

// Blocks of `threads` threads covering n items (at least one block).
inline unsigned blocks_for(size_t n, int threads) {
  const size_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b == 0 ? 1 : b);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. `scratch` holds 32 floats of shared memory and may
// be reused right after the call returns.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// Index s with seq_start[s] <= t < seq_start[s + 1] (sequences may be empty).
__device__ __forceinline__ int sequence_of(const int* seq_start, int num_seqs, int t) {
  int lo = 0, hi = num_seqs;  // seq_start[lo] <= t < seq_start[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (seq_start[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

}  // namespace rwkv::kernels::cuda
