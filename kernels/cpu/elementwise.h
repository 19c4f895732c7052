// The element-wise activations of the CPU backend with vector kernels chosen
// at run time, each giving the same bits in every kernel.
//
// relu and relu²: GCC 12 leaves the plain loops scalar (checked in the
// disassembly: the select of `v > 0 ? v * v : 0` is not if-converted), and
// relu² runs over the FFN's [T, 4C] activations once per layer. Every kernel
// gives the plain expression's bits: NaN and -0 map to +0 as the compare does.
//
// exp, sigmoid and tanh: SLEEF's deterministic functions (`finz`, at most 1
// ULP off), whose AVX-512, AVX2 and scalar-FMA versions return the same bits
// for every input, so a value does not depend on the lane it lands in or on
// the kernel. glibc's expf is scalar only, and was 5% of a forward pass.
#pragma once

#include <cstddef>

#include "kernels/cpu/gemm.h"

namespace rwkv::kernels::cpu {

// x[i] = x[i] > 0 ? x[i] : 0.
void relu(float* x, size_t n, Isa isa = best_isa());
// x[i] = x[i] > 0 ? x[i] * x[i] : 0.
void relu_squared(float* x, size_t n, Isa isa = best_isa());

// x[i] = e^x[i].
void exp(float* x, size_t n, Isa isa = best_isa());
// x[i] = 1 / (1 + e^-x[i]).
void sigmoid(float* x, size_t n, Isa isa = best_isa());
// x[i] = tanh(x[i]).
void tanh(float* x, size_t n, Isa isa = best_isa());

}  // namespace rwkv::kernels::cpu
