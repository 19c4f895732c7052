// Launchers of the CUDA kernels, one per Backend op (semantics: kernels/backend.h,
// reference: kernels/cpu/cpu_backend.cpp). All pointers are device memory,
// PackedBatch's arrays included; every launch is asynchronous on `stream`.
//
// Batch invariance: each kernel maps a token (or a sequence, or a
// (sequence, head) pair) to its threads the same way whatever else is in the
// batch and reduces in a fixed order, so its results are bit-identical alone
// or batched. Only cuBLAS (matmul) may pick a different algorithm for a
// different row count.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"

namespace rwkv::kernels::cuda {

// elementwise.cu
void gather_rows(cudaStream_t stream, const int32_t* tokens, int num_tokens, const float* table,
                 int C, float* out);
void broadcast_row(cudaStream_t stream, const float* row, int rows, int C, float* out);
// mix and out are host arrays of num_mix (at most kMaxMix) device pointers.
constexpr int kMaxMix = 8;
void token_shift_mix(cudaStream_t stream, const PackedBatch& batch, int C, const float* u,
                     SlotArray shift, int num_mix, const float* const* mix, float* const* out);
void activate(cudaStream_t stream, Activation act, size_t n, float* x);
void add_bias(cudaStream_t stream, int rows, int C, const float* bias, float* x);
void add(cudaStream_t stream, size_t n, const float* x, float* y);

// norm.cu
void layer_norm(cudaStream_t stream, int rows, int C, const float* x, const float* weight,
                const float* bias, float eps, float* y);
void wkv_output(cudaStream_t stream, int num_tokens, int heads, const float* r, const float* k,
                const float* v, const float* r_k, const float* gn_weight, const float* gn_bias,
                float eps, const float* g, float* y);
void pool_token_layer_norm(cudaStream_t stream, const PackedBatch& batch, int C, const float* x,
                           const float* weight, const float* bias, float eps, int32_t pool_token,
                           SlotArray pool);

// wkv.cu
void wkv_prepare(cudaStream_t stream, const WkvPrepareArgs& args);
void wkv7(cudaStream_t stream, const PackedBatch& batch, int heads, const float* r,
          const float* decay, const float* k, const float* v, const float* alpha, const float* beta,
          SlotArray state, float* y);

}  // namespace rwkv::kernels::cuda
