// Helpers shared by the product kernels of gemm.cpp and gemm_int8.cpp.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <utility>

// Around AVX-512 code that uses unmasked intrinsics: GCC 12 wrongly warns
// that they read an uninitialized value once inlined into a target function
// (its headers pass an undefined vector as the unused merge source).
#if defined(__GNUC__) && !defined(__clang__)
#define RWKV_AVX512_WARNINGS_OFF \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define RWKV_AVX512_WARNINGS_ON _Pragma("GCC diagnostic pop")
#else
#define RWKV_AVX512_WARNINGS_OFF
#define RWKV_AVX512_WARNINGS_ON
#endif

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

// Runs item(m_begin, m_end, panel) for every block of `block_rows` rows of
// [0, M) × every one of `panels` panels, on the OpenMP threads of the caller.
// Items go to whichever thread is free next (a static split leaves one
// thread idle when the last block is short: 22% of a 1024-row product), and
// in row-block order, so a thread's consecutive items mostly share their
// rows, which stay in its L2. Which thread computes an item changes no bit.
template <typename Item>
void for_each_block_panel(int M, int panels, int block_rows, const Item& item) {
  const int blocks = (M + block_rows - 1) / block_rows;
#pragma omp parallel for schedule(dynamic)
  for (int i = 0; i < blocks * panels; ++i) {
    const int block = i / panels;
    item(block * block_rows, std::min(M, (block + 1) * block_rows), i % panels);
  }
}

}  // namespace rwkv::kernels::cpu::detail
