// Helpers shared by the product kernels of gemm.cpp and gemm_int8.cpp.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <utility>

namespace rwkv::kernels::cpu::detail {

// The first n of 16 lanes (none for n <= 0, all for n >= 16).
__attribute__((target("avx512f"))) inline __mmask16 lane_mask(int n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Calls kernel.template operator()<rows>() for rows in 1..kMax (each kernel
// is compiled per tile height, so its loops unroll).
template <int kMax, typename Kernel>
void with_height(int rows, const Kernel& kernel) {
  [&]<size_t... I>(std::index_sequence<I...>) {
    ((rows == int(I) + 1 ? kernel.template operator()<int(I) + 1>() : void()), ...);
  }
  (std::make_index_sequence<kMax>());
}

}  // namespace rwkv::kernels::cpu::detail
