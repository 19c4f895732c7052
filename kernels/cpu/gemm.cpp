#include "kernels/cpu/gemm.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/common/dtype.h"
#include "kernels/cpu/tile_helpers.h"

namespace rwkv::kernels::cpu {
namespace {

using detail::lane_mask;
using detail::with_height;

// Blocking: a kKc-deep slice of one panel (32 KiB) stays in L1 while the row
// tiles of a kMc-row block (144 KiB of x) stream from L2. Neither changes any
// element's chain of fused multiply-adds, only when its accumulator is parked
// in y between slices.
constexpr int kKc = 256;
constexpr int kMc = 144;  // a multiple of every kernel's tile height

// One tile: rows × ncols outputs of one panel, over a kc-deep slice of k.
// T is the element type of x and of the packed weights (float, or the
// uint16_t bits of bfloat16).
template <typename T>
struct TileOf {
  int kc = 0;
  const T* a = nullptr;  // x at (first row, first k of the slice)
  int lda = 0;
  const T* b = nullptr;  // the panel at the first k of the slice
  float* c = nullptr;    // y at (first row, first column of the panel)
  int ldc = 0;
  int ncols = 0;        // valid columns of the panel (kPanel but in the last panel)
  bool load_c = false;  // continue the chains from c (else start from 0)
};
using Tile = TileOf<float>;
using Bf16Tile = TileOf<uint16_t>;

// ---- AVX-512: tiles of up to 12 rows × 32 columns (24 accumulators) --------

// The accumulators of a 32-column tile: y's values (or zeros) in, y out;
// the lanes past ncols are neither read nor written. The loops over rows
// are unrolled (here and in the AVX2 tile), so the accumulators go straight
// between y and registers: as loops GCC parks them on the stack (8-12% of
// a tile's time in perf).
template <int MR, typename T>
__attribute__((target("avx512f"), always_inline)) inline void load_accumulators(const TileOf<T>& t,
                                                                                __m512* acc0,
                                                                                __m512* acc1) {
  const __mmask16 m0 = lane_mask(t.ncols), m1 = lane_mask(t.ncols - 16);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    const float* c = t.c + int64_t(i) * t.ldc;
    acc0[i] = t.load_c ? _mm512_maskz_loadu_ps(m0, c) : _mm512_setzero_ps();
    acc1[i] = t.load_c ? _mm512_maskz_loadu_ps(m1, c + 16) : _mm512_setzero_ps();
  }
}
template <int MR, typename T>
__attribute__((target("avx512f"), always_inline)) inline void store_accumulators(
    const TileOf<T>& t, const __m512* acc0, const __m512* acc1) {
  const __mmask16 m0 = lane_mask(t.ncols), m1 = lane_mask(t.ncols - 16);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    float* c = t.c + int64_t(i) * t.ldc;
    _mm512_mask_storeu_ps(c, m0, acc0[i]);
    _mm512_mask_storeu_ps(c + 16, m1, acc1[i]);
  }
}

template <int MR>
__attribute__((target("avx512f"))) void tile_avx512(const Tile& t) {
  __m512 acc0[MR], acc1[MR];
  load_accumulators<MR>(t, acc0, acc1);
  const float* a = t.a;
  const float* b = t.b;
  for (int k = 0; k < t.kc; ++k, ++a, b += kPanel) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[int64_t(i) * t.lda]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
  }
  store_accumulators<MR>(t, acc0, acc1);
}

// ---- AVX-512 BF16: the same tiles, one k pair per dot-product instruction --

template <int MR>
__attribute__((target("avx512f,avx512bf16"))) void tile_avx512_bf16(const Bf16Tile& t) {
  __m512 acc0[MR], acc1[MR];
  load_accumulators<MR>(t, acc0, acc1);
  const uint16_t* a = t.a;
  const uint16_t* b = t.b;
  for (int k = 0; k < t.kc; k += 2, a += 2, b += 2 * kPanel) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + kPanel);
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, a + int64_t(i) * t.lda, sizeof(pair));
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(pair);
      acc0[i] = _mm512_dpbf16_ps(acc0[i], ai, b0);
      acc1[i] = _mm512_dpbf16_ps(acc1[i], ai, b1);
    }
  }
  store_accumulators<MR>(t, acc0, acc1);
}

// ---- AVX2: tiles of up to 6 rows × 16 columns (one half of a panel) --------

template <int MR>
__attribute__((target("avx2,fma"))) void half_tile_avx2(const Tile& t, int half) {
  const int ncols = std::clamp(t.ncols - 16 * half, 0, 16);
  if (ncols == 0) return;
  // A partial half goes through a full-width buffer: AVX2 has no cheap masks.
  float buffer[MR * 16];
  float* c = t.c + 16 * half;
  int ldc = t.ldc;
  if (ncols < 16) {
    for (int i = 0; i < MR; ++i) std::memcpy(buffer + i * 16, c + int64_t(i) * ldc, 4 * ncols);
    c = buffer;
    ldc = 16;
  }
  __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    acc0[i] = t.load_c ? _mm256_loadu_ps(c + int64_t(i) * ldc) : _mm256_setzero_ps();
    acc1[i] = t.load_c ? _mm256_loadu_ps(c + int64_t(i) * ldc + 8) : _mm256_setzero_ps();
  }
  const float* a = t.a;
  const float* b = t.b + 16 * half;
  for (int k = 0; k < t.kc; ++k, ++a, b += kPanel) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + int64_t(i) * t.lda);
      acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(c + int64_t(i) * ldc, acc0[i]);
    _mm256_storeu_ps(c + int64_t(i) * ldc + 8, acc1[i]);
  }
  if (c == buffer)
    for (int i = 0; i < MR; ++i)
      std::memcpy(t.c + 16 * half + int64_t(i) * t.ldc, buffer + i * 16, 4 * ncols);
}

template <int MR>
void tile_avx2(const Tile& t) {
  half_tile_avx2<MR>(t, 0);
  half_tile_avx2<MR>(t, 1);
}

// ---- Portable: any x86-64 (std::fma is exact, if slow without FMA units) ---

template <int MR>
void tile_portable(const Tile& t) {
  float acc[MR][kPanel];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kPanel; ++j)
      acc[i][j] = t.load_c && j < t.ncols ? t.c[int64_t(i) * t.ldc + j] : 0.0f;
  for (int k = 0; k < t.kc; ++k)
    for (int i = 0; i < MR; ++i) {
      const float ai = t.a[int64_t(i) * t.lda + k];
      for (int j = 0; j < kPanel; ++j) acc[i][j] = std::fma(ai, t.b[k * kPanel + j], acc[i][j]);
    }
  for (int i = 0; i < MR; ++i) std::memcpy(t.c + int64_t(i) * t.ldc, acc[i], 4 * t.ncols);
}

int tile_height(Isa isa) { return isa == Isa::kAvx512 ? 12 : isa == Isa::kAvx2 ? 6 : 4; }

void float_tile(Isa isa, int rows, const Tile& t) {
  switch (isa) {
    case Isa::kAvx512:
      return with_height<12>(rows, [&]<int MR>() { tile_avx512<MR>(t); });
    case Isa::kAvx2:
      return with_height<6>(rows, [&]<int MR>() { tile_avx2<MR>(t); });
    case Isa::kPortable:
      return with_height<4>(rows, [&]<int MR>() { tile_portable<MR>(t); });
  }
}

// The blocked loops around the tiles, for either element type. K is the
// packed depth (even for bfloat16); `tile(rows, t)` computes one tile.
template <typename T, typename TileFn>
void blocked_product(int M, int N, int K, const T* x, const T* packed, float* y, bool accumulate,
                     int height, TileFn tile) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) {
    if (!accumulate) std::memset(y, 0, sizeof(float) * size_t(M) * N);
    return;
  }
  const int panels = (N + kPanel - 1) / kPanel;
  detail::for_each_block_panel(M, panels, kMc, [&](int m_begin, int m_end, int p) {
    TileOf<T> t;
    t.lda = K;
    t.ldc = N;
    t.ncols = std::min(kPanel, N - p * kPanel);
    for (int k0 = 0; k0 < K; k0 += kKc) {
      t.kc = std::min(kKc, K - k0);
      t.b = packed + (size_t(p) * K + k0) * kPanel;
      t.load_c = accumulate || k0 > 0;
      for (int m = m_begin; m < m_end; m += height) {
        t.a = x + int64_t(m) * K + k0;
        t.c = y + int64_t(m) * N + p * kPanel;
        tile(std::min(height, m_end - m), t);
      }
    }
  });
}

int even(int k) { return k + (k & 1); }

// The row's bfloat16 bits as common::float_to_bfloat16 gives them (nearest
// even, NaN quiet), 16 at a time: vcvtneps2bf16 would flush subnormals.
RWKV_AVX512_WARNINGS_OFF
__attribute__((target("avx512f"))) void round_row_bf16_avx512(const float* x, int K,
                                                              uint16_t* out) {
  const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7FFF);
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF), inf = _mm512_set1_epi32(0x7F800000);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  for (int k = 0; k < K; k += 16) {
    const __mmask16 m = lane_mask(K - k);
    const __m512i u = _mm512_maskz_loadu_epi32(m, x + k);
    const __m512i high = _mm512_srli_epi32(u, 16);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, half), _mm512_and_si512(high, one)), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
    const __m512i bits = _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(high, quiet));
    _mm512_mask_cvtepi32_storeu_epi16(out + k, m, bits);
  }
}
RWKV_AVX512_WARNINGS_ON

}  // namespace

const char* isa_name(Isa isa) {
  return isa == Isa::kAvx512 ? "AVX-512" : isa == Isa::kAvx2 ? "AVX2+FMA" : "portable";
}

Isa best_isa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
    return Isa::kPortable;
  }();
  return isa;
}

size_t packed_size(int rows, int cols) {
  return size_t((rows + kPanel - 1) / kPanel) * kPanel * cols;
}

void pack_weights(const float* w, int rows, int cols, float* packed) {
  const int panels = (rows + kPanel - 1) / kPanel;
  for (int p = 0; p < panels; ++p) {
    float* panel = packed + size_t(p) * kPanel * cols;
    for (int k = 0; k < cols; ++k)
      for (int j = 0; j < kPanel; ++j) {
        const int row = p * kPanel + j;
        panel[size_t(k) * kPanel + j] = row < rows ? w[size_t(row) * cols + k] : 0.0f;
      }
  }
}

void gemm(int M, int N, int K, const float* x, const float* packed, float* y, bool accumulate,
          Isa isa) {
  blocked_product(M, N, K, x, packed, y, accumulate, tile_height(isa),
                  [isa](int rows, const Tile& t) { float_tile(isa, rows, t); });
}

bool has_bf16() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  }();
  return yes;
}

size_t packed_bf16_size(int rows, int cols) {
  return size_t((rows + kPanel - 1) / kPanel) * kPanel * even(cols);
}

void pack_weights_bf16(const uint16_t* w, int rows, int cols, uint16_t* packed) {
  const int panels = (rows + kPanel - 1) / kPanel, depth = even(cols);
  for (int p = 0; p < panels; ++p) {
    uint16_t* panel = packed + size_t(p) * kPanel * depth;
    for (int k = 0; k < depth; ++k)
      for (int j = 0; j < kPanel; ++j) {
        const int row = p * kPanel + j;
        // k pairs side by side: (k, column j) at pair k/2, lane 2j + k%2.
        panel[size_t(k / 2) * 2 * kPanel + 2 * j + k % 2] =
            row < rows && k < cols ? w[size_t(row) * cols + k] : 0;
      }
  }
}

void round_to_bf16(int M, int K, const float* x, uint16_t* out, Isa isa) {
  const int depth = even(K);
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) {
    uint16_t* row = out + int64_t(m) * depth;
    if (isa == Isa::kAvx512)
      round_row_bf16_avx512(x + int64_t(m) * K, K, row);
    else
      for (int k = 0; k < K; ++k) row[k] = common::float_to_bfloat16(x[int64_t(m) * K + k]);
    if (depth > K) row[K] = 0;
  }
}

void gemm_bf16(int M, int N, int K, const uint16_t* x, const uint16_t* packed, float* y,
               bool accumulate) {
  blocked_product(M, N, even(K), x, packed, y, accumulate, 12, [](int rows, const Bf16Tile& t) {
    with_height<12>(rows, [&]<int MR>() { tile_avx512_bf16<MR>(t); });
  });
}

}  // namespace rwkv::kernels::cpu
