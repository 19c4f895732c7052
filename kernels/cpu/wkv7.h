// The WKV-7 recurrence of one head over the tokens of one sequence, with an
// AVX-512 kernel chosen at run time and a portable one. Both compute every
// element in the same order with the same roundings (a multiply and an add,
// never a fused multiply-add), so they agree bit for bit:
//   S[i][j] = S[i][j]·decay[j] + sa_i·beta[j] + v[i]·k[j]
//   sa_i = dot(S[i], alpha) on the old S, y[i] = dot(S[i], r) on the new S,
// where dot(a, b) sums a[j]·b[j] into four partial sums by j mod 4, each in
// j order from 0, then adds the four in order to 0 (the order GCC gave the
// earlier `omp simd` loops at -O3 for x86-64, kept so outputs did not move).
#pragma once

#include "engine/common/head_size.h"
#include "kernels/cpu/gemm.h"

namespace rwkv::kernels::cpu {

constexpr int kWkvHeadSize = common::kHeadSize;

// S: the head's [64, 64] state, row-major by i. r..beta, y: the head's 64
// values at token 0, the next token `stride` floats further; T tokens.
void wkv7_head(float* S, int T, int64_t stride, const float* r, const float* decay, const float* k,
               const float* v, const float* alpha, const float* beta, float* y,
               Isa isa = best_isa());

}  // namespace rwkv::kernels::cpu
