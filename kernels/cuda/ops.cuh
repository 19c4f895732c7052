// Launchers of the CUDA kernels, one per Backend op (semantics: kernels/backend.h,
// reference: kernels/cpu/cpu_backend.cpp). All pointers are device memory,
// PackedBatch's arrays included; every launch is asynchronous on `stream`.
//
// Batch invariance: each kernel maps a token (or a sequence, or a
// (sequence, head) pair) to its threads the same way whatever else is in the
// batch and reduces in a fixed order, so its results are bit-identical alone
// or batched. The matrix products (lt_matmul.h) use one cuBLASLt
// algorithm per matrix whatever the row count, for the same reason. The
// chunked WKV form rounds differently from the sequential one: with it on, a
// sequence's result depends (in the last bits) on its length in the step.
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
// dst[i] = x[i] as `dtype` (float16 or bfloat16), rounded to nearest even;
// float16 saturates at ±65504 instead of overflowing to infinity.
void to_matmul_dtype(cudaStream_t stream, MatmulDtype dtype, size_t n, const float* x, void* dst);

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
// Sequences of at least chunked_min_tokens tokens take the chunked form
// (wkv_chunked.cu), the others the sequential one; 0: every sequence the
// sequential one.
void wkv7(cudaStream_t stream, const PackedBatch& batch, int heads, const float* r,
          const float* decay, const float* k, const float* v, const float* alpha, const float* beta,
          SlotArray state, float* y, int chunked_min_tokens);

// wkv_chunked.cu: the same recurrence for the sequences of at least
// min_tokens tokens (min_tokens >= 1), in chunks of 16 tokens. Needs
// decay >= 0.5 (the model's is above 0.545) so that a chunk's cumulative decay
// stays far from float32's smallest normal.
void wkv7_chunked(cudaStream_t stream, const PackedBatch& batch, int heads, const float* r,
                  const float* decay, const float* k, const float* v, const float* alpha,
                  const float* beta, SlotArray state, float* y, int min_tokens);

}  // namespace rwkv::kernels::cuda
