// The CPU matrix product y[M, N] = x[M, K] · Wᵀ, written by hand because no
// BLAS promises what the server does: that a row's result never depends on how
// many rows share the call, where the row sits, or how many threads run it.
// OpenBLAS, for one, sums a row in another order when the row count changes
// (measured: the first 16 rows of X[:M] @ W differ bitwise between M = 16, 32,
// 64 and 160 with its Haswell kernels).
//
// Here every output element is one chain of fused multiply-adds over k = 0, 1,
// ..., K-1, starting from 0 (or from y when accumulating). Each element is
// computed by exactly one thread, and a fused multiply-add is rounded the same
// way by every instruction set, so the result is the same bit for bit for any
// M, row offset, thread count, and for the AVX-512, AVX2 and portable kernels.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rwkv::kernels::cpu {

// W is stored packed: panels of kPanel output columns, each panel k-major
// (the kPanel weights of one k side by side), the last panel zero-padded.
constexpr int kPanel = 32;

enum class Isa { kPortable, kAvx2, kAvx512 };
const char* isa_name(Isa isa);
// The fastest kernel this CPU runs (checked at run time).
Isa best_isa();

// Floats of a packed [rows, cols] matrix.
size_t packed_size(int rows, int cols);
// w: row-major [rows, cols] (torch Linear layout [out, in]).
void pack_weights(const float* w, int rows, int cols, float* packed);

// y[M, N] = x[M, K] · Wᵀ (+ y when accumulate), W packed by pack_weights from
// [N, K]. Uses the OpenMP threads of the caller.
void gemm(int M, int N, int K, const float* x, const float* packed, float* y, bool accumulate,
          Isa isa = best_isa());

// bfloat16 products (AVX512-BF16 only: elsewhere they would be slower than
// float32): weights and x rounded to bfloat16 (nearest even), products summed
// in float32, a k pair per dot-product instruction in k order. The rounding
// of x is per row and every output one fixed chain, so a row's result does
// not depend on the other rows or the threads either.
bool has_bf16();
// uint16_t elements of a packed [rows, cols] bfloat16 matrix (cols padded to even).
size_t packed_bf16_size(int rows, int cols);
// w: row-major [rows, cols] bfloat16 bits.
void pack_weights_bf16(const uint16_t* w, int rows, int cols, uint16_t* packed);
// out[M, K rounded up to even] = x[M, K] rounded to bfloat16 as
// common::float_to_bfloat16 does, in every kernel (a zero pads odd K).
void round_to_bf16(int M, int K, const float* x, uint16_t* out, Isa isa = best_isa());
// y[M, N] = x · Wᵀ (+ y) with x from round_to_bf16 and W from pack_weights_bf16.
void gemm_bf16(int M, int N, int K, const uint16_t* x, const uint16_t* packed, float* y,
               bool accumulate);

}  // namespace rwkv::kernels::cpu
