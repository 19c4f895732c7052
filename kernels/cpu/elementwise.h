// The element-wise activations of the CPU backend with vector kernels chosen
// at run time. GCC 12 leaves the plain loops scalar (checked in the
// disassembly: the select of `v > 0 ? v * v : 0` is not if-converted), and
// relu² runs over the FFN's [T, 4C] activations once per layer. Every kernel
// gives the plain expression's bits: NaN and -0 map to +0 as the compare does.
#pragma once

#include <cstddef>

#include "kernels/cpu/gemm.h"

namespace rwkv::kernels::cpu {

// x[i] = x[i] > 0 ? x[i] : 0.
void relu(float* x, size_t n, Isa isa = best_isa());
// x[i] = x[i] > 0 ? x[i] * x[i] : 0.
void relu_squared(float* x, size_t n, Isa isa = best_isa());

}  // namespace rwkv::kernels::cpu
