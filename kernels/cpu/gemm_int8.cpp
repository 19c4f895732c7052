#include "kernels/cpu/gemm_int8.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/tile_helpers.h"

namespace rwkv::kernels::cpu {
namespace {

using detail::lane_mask;
using detail::with_height;

// Rows of x per work item (a multiple of every kernel's tile height): one
// item is a row block × one panel, and a thread's consecutive items share the
// row block, which stays in its L2. A tile runs the whole depth in registers
// (integer accumulators cannot be parked in y between k slices).
constexpr int kMc = 144;

// The packed matrix: panels of kPanel columns, each [depth / 4][kPanel][4]
// bytes (4 consecutive k of one column side by side, as vpdpbusd reads them),
// then Σ_k q_w per column (int32) and s_w per column (float), padded panels
// included (zeros).
struct PackedInt8 {
  const int8_t* panels;
  const int32_t* sums;
  const float* scales;
};
PackedInt8 layout(const void* packed, int rows, int depth) {
  const int padded = (rows + kPanel - 1) / kPanel * kPanel;
  const auto* base = static_cast<const std::byte*>(packed);
  const auto* sums = base + size_t(padded) * depth;
  return {reinterpret_cast<const int8_t*>(base), reinterpret_cast<const int32_t*>(sums),
          reinterpret_cast<const float*>(sums + sizeof(int32_t) * padded)};
}

// One tile: rows × ncols outputs of one panel over the whole depth.
struct Tile {
  int depth = 0;
  const uint8_t* a = nullptr;  // x at the tile's first row
  const RowQuant* quant = nullptr;
  const int8_t* b = nullptr;  // the panel
  const int32_t* sums = nullptr;
  const float* scales = nullptr;  // of the panel's columns
  float* c = nullptr;             // y at (first row, first column of the panel)
  int ldc = 0;
  int ncols = 0;  // valid columns of the panel (kPanel but in the last panel)
  bool load_c = false;
};

inline int32_t four_bytes(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// ---- AVX512-VNNI: tiles of up to 12 rows × 32 columns (24 accumulators) ----

// y = fma(float(acc - zero · sum), scale · s_w, y0) for the 16 columns at j.
__attribute__((target("avx512f,avx512vnni"), always_inline)) inline void rescale_avx512(
    const Tile& t, int i, int j, __m512i acc) {
  const __mmask16 m = lane_mask(t.ncols - j);
  float* c = t.c + int64_t(i) * t.ldc + j;
  const __m512i zs =
      _mm512_mullo_epi32(_mm512_set1_epi32(t.quant[i].zero), _mm512_loadu_si512(t.sums + j));
  // (maskz: GCC 12 warns that the plain form reads an uninitialized value.)
  const __m512 dot = _mm512_maskz_cvtepi32_ps(__mmask16(0xFFFF), _mm512_sub_epi32(acc, zs));
  const __m512 scale =
      _mm512_mul_ps(_mm512_set1_ps(t.quant[i].scale), _mm512_loadu_ps(t.scales + j));
  const __m512 y0 = t.load_c ? _mm512_maskz_loadu_ps(m, c) : _mm512_setzero_ps();
  _mm512_mask_storeu_ps(c, m, _mm512_fmadd_ps(dot, scale, y0));
}

template <int MR>
__attribute__((target("avx512f,avx512vnni"))) void tile_avx512_vnni(const Tile& t) {
  __m512i acc0[MR], acc1[MR];
  const int lda = t.depth;
  const uint8_t* a = t.a;
  const int8_t* b = t.b;
  // The first k step starts the accumulators from zero in registers (zeroed
  // in a loop, GCC wrote them to the stack with rep stos: 7% of the time).
  {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi32(four_bytes(a + int64_t(i) * lda));
      acc0[i] = _mm512_dpbusd_epi32(zero, ai, b0);
      acc1[i] = _mm512_dpbusd_epi32(zero, ai, b1);
    }
    a += 4;
    b += 4 * kPanel;
  }
  for (int k = 4; k < t.depth; k += 4, a += 4, b += 4 * kPanel) {
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi32(four_bytes(a + int64_t(i) * lda));
      acc0[i] = _mm512_dpbusd_epi32(acc0[i], ai, b0);
      acc1[i] = _mm512_dpbusd_epi32(acc1[i], ai, b1);
    }
  }
  // Unrolled, so the accumulators stay in registers (indexed at run time,
  // GCC keeps the arrays in memory and stores them at every k).
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    rescale_avx512(t, i, 0, acc0[i]);
    rescale_avx512(t, i, 16, acc1[i]);
  }
}

// ---- AVX-VNNI (256-bit): tiles of up to 6 rows × 16 columns (a half panel) -

// The same rescale for the 8 columns at j (AVX2 masks are lane vectors).
__attribute__((target("avx2,fma,avxvnni"), always_inline)) inline void rescale_avx2(const Tile& t,
                                                                                    int i, int j,
                                                                                    __m256i acc) {
  const __m256i m =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(t.ncols - j), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  float* c = t.c + int64_t(i) * t.ldc + j;
  const __m256i zs =
      _mm256_mullo_epi32(_mm256_set1_epi32(t.quant[i].zero),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.sums + j)));
  const __m256 dot = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, zs));
  const __m256 scale =
      _mm256_mul_ps(_mm256_set1_ps(t.quant[i].scale), _mm256_loadu_ps(t.scales + j));
  const __m256 y0 = t.load_c ? _mm256_maskload_ps(c, m) : _mm256_setzero_ps();
  _mm256_maskstore_ps(c, m, _mm256_fmadd_ps(dot, scale, y0));
}

template <int MR>
__attribute__((target("avx2,fma,avxvnni"))) void half_tile_avx_vnni(const Tile& t, int half) {
  if (t.ncols <= 16 * half) return;
  __m256i acc0[MR], acc1[MR];
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm256_setzero_si256();
  const int lda = t.depth;
  const uint8_t* a = t.a;
  const int8_t* b = t.b + 64 * half;
  for (int k = 0; k < t.depth; k += 4, a += 4, b += 4 * kPanel) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
    for (int i = 0; i < MR; ++i) {
      const __m256i ai = _mm256_set1_epi32(four_bytes(a + int64_t(i) * lda));
      acc0[i] = _mm256_dpbusd_avx_epi32(acc0[i], ai, b0);
      acc1[i] = _mm256_dpbusd_avx_epi32(acc1[i], ai, b1);
    }
  }
#pragma GCC unroll 6  // as above
  for (int i = 0; i < MR; ++i) {
    rescale_avx2(t, i, 16 * half, acc0[i]);
    rescale_avx2(t, i, 16 * half + 8, acc1[i]);
  }
}

template <int MR>
void tile_avx_vnni(const Tile& t) {
  half_tile_avx_vnni<MR>(t, 0);
  half_tile_avx_vnni<MR>(t, 1);
}

// ---- Portable: the reference the tests compare the others with ------------

template <int MR>
void tile_portable(const Tile& t) {
  int32_t acc[MR][kPanel] = {};
  for (int k = 0; k < t.depth; ++k)
    for (int i = 0; i < MR; ++i) {
      const int32_t ai = t.a[int64_t(i) * t.depth + k];
      const int8_t* b = t.b + (k / 4) * 4 * kPanel + k % 4;
      for (int j = 0; j < kPanel; ++j) acc[i][j] += ai * b[4 * j];
    }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < t.ncols; ++j) {
      float& c = t.c[int64_t(i) * t.ldc + j];
      const float dot = float(acc[i][j] - t.quant[i].zero * t.sums[j]);
      c = std::fma(dot, t.quant[i].scale * t.scales[j], t.load_c ? c : 0.0f);
    }
}

int tile_height(Int8Isa isa) {
  return isa == Int8Isa::kAvx512Vnni ? 12 : isa == Int8Isa::kAvxVnni ? 6 : 4;
}

void int8_tile(Int8Isa isa, int rows, const Tile& t) {
  switch (isa) {
    case Int8Isa::kAvx512Vnni:
      return with_height<12>(rows, [&]<int MR>() { tile_avx512_vnni<MR>(t); });
    case Int8Isa::kAvxVnni:
      return with_height<6>(rows, [&]<int MR>() { tile_avx_vnni<MR>(t); });
    case Int8Isa::kPortable:
      return with_height<4>(rows, [&]<int MR>() { tile_portable<MR>(t); });
  }
}

// ---- Row quantization --------------------------------------------------------

// The row's range with zero included, and its scale and zero point.
struct Range {
  float lo, hi;
};
RowQuant row_quant(Range r, float& inv) {
  const float width = r.hi - r.lo;
  if (!(width > 0)) {  // an all-zero row (or NaNs): every q is 0
    inv = 0;
    return {0.0f, 0};
  }
  inv = 255.0f / width;
  return {width / 255.0f, int32_t(std::nearbyint(-r.lo * inv))};
}

// q = clamp(round(x · inv) + zero, 0, 255); NaN goes to 0 (max picks 0).
inline uint8_t quantize(float x, float inv, float zero) {
  return uint8_t(std::fmin(std::fmax(std::nearbyint(x * inv) + zero, 0.0f), 255.0f));
}

void quantize_row_portable(int K, const float* x, uint8_t* out, RowQuant& q) {
  Range r{0, 0};
  for (int k = 0; k < K; ++k) {
    r.lo = std::min(r.lo, x[k]);
    r.hi = std::max(r.hi, x[k]);
  }
  float inv;
  q = row_quant(r, inv);
  for (int k = 0; k < K; ++k) out[k] = quantize(x[k], inv, float(q.zero));
}

__attribute__((target("avx2,fma"))) void quantize_row_avx2(int K, const float* x, uint8_t* out,
                                                           RowQuant& q) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 v = _mm256_loadu_ps(x + k);
    lo = _mm256_min_ps(lo, v);
    hi = _mm256_max_ps(hi, v);
  }
  alignas(32) float los[8], his[8];
  _mm256_store_ps(los, lo);
  _mm256_store_ps(his, hi);
  Range r{0, 0};
  for (int i = 0; i < 8; ++i) r = {std::min(r.lo, los[i]), std::max(r.hi, his[i])};
  for (int j = k; j < K; ++j) r = {std::min(r.lo, x[j]), std::max(r.hi, x[j])};
  float inv;
  q = row_quant(r, inv);
  const __m256 vinv = _mm256_set1_ps(inv), vzero = _mm256_set1_ps(float(q.zero));
  const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(255.0f);
  for (k = 0; k + 8 <= K; k += 8) {
    const __m256 r8 = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k), vinv),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // max(v, 0) returns 0 for a NaN v, like std::fmax.
    const __m256i i8 =
        _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r8, vzero), zero), top));
    const __m128i w16 =
        _mm_packus_epi32(_mm256_castsi256_si128(i8), _mm256_extracti128_si256(i8, 1));
    const __m128i b8 = _mm_packus_epi16(w16, w16);
    std::memcpy(out + k, &b8, 8);
  }
  for (; k < K; ++k) out[k] = quantize(x[k], inv, float(q.zero));
}

// Masked tails load zeros, which the range includes anyway; min and max
// return their second operand for a NaN, so a NaN is skipped as in the
// portable loop.
RWKV_AVX512_WARNINGS_OFF
__attribute__((target("avx512f"))) void quantize_row_avx512(int K, const float* x, uint8_t* out,
                                                            RowQuant& q) {
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  for (int k = 0; k < K; k += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(lane_mask(K - k), x + k);
    lo = _mm512_min_ps(v, lo);
    hi = _mm512_max_ps(v, hi);
  }
  alignas(64) float los[16], his[16];
  _mm512_store_ps(los, lo);
  _mm512_store_ps(his, hi);
  float inv;
  q = row_quant({*std::min_element(los, los + 16), *std::max_element(his, his + 16)}, inv);
  const __m512 vinv = _mm512_set1_ps(inv), vzero = _mm512_set1_ps(float(q.zero));
  const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
  for (int k = 0; k < K; k += 16) {
    const __mmask16 m = lane_mask(K - k);
    const __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), vinv),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // max(v, 0) returns 0 for a NaN v, like std::fmax.
    const __m512 clamped = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, vzero), zero), top);
    _mm512_mask_cvtepi32_storeu_epi8(out + k, m, _mm512_cvtps_epi32(clamped));
  }
}
RWKV_AVX512_WARNINGS_ON

}  // namespace

const char* int8_isa_name(Int8Isa isa) {
  return isa == Int8Isa::kAvx512Vnni ? "AVX512-VNNI"
         : isa == Int8Isa::kAvxVnni  ? "AVX-VNNI"
                                     : "portable";
}

bool cpu_runs(Int8Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Int8Isa::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
    case Int8Isa::kAvxVnni: {
      // AVX-VNNI is CPUID leaf 7, sub-leaf 1, EAX bit 4; read directly because
      // clang 14's __builtin_cpu_supports does not know "avxvnni".
      unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax >> 4 & 1);
    }
    case Int8Isa::kPortable:
      return true;
  }
  return false;
}

Int8Isa best_int8_isa() {
  static const Int8Isa isa = cpu_runs(Int8Isa::kAvx512Vnni) ? Int8Isa::kAvx512Vnni
                             : cpu_runs(Int8Isa::kAvxVnni)  ? Int8Isa::kAvxVnni
                                                            : Int8Isa::kPortable;
  return isa;
}

bool has_vnni() { return best_int8_isa() != Int8Isa::kPortable; }

int int8_depth(int K) { return (K + 3) / 4 * 4; }

size_t packed_int8_bytes(int rows, int cols) {
  const size_t padded = size_t(rows + kPanel - 1) / kPanel * kPanel;
  return padded * int8_depth(cols) + padded * (sizeof(int32_t) + sizeof(float));
}

void pack_weights_int8(const float* w, int rows, int cols, void* packed) {
  if (cols > kMaxInt8Depth)
    throw std::invalid_argument("int8 products: a depth of " + std::to_string(cols) +
                                " could overflow their int32 sums (at most " +
                                std::to_string(kMaxInt8Depth) + ")");
  const int depth = int8_depth(cols), panels = (rows + kPanel - 1) / kPanel;
  auto* base = static_cast<std::byte*>(packed);
  std::memset(base, 0, packed_int8_bytes(rows, cols));
  auto* q = reinterpret_cast<int8_t*>(base);
  auto* sums = reinterpret_cast<int32_t*>(base + size_t(panels) * kPanel * depth);
  auto* scales = reinterpret_cast<float*>(sums + size_t(panels) * kPanel);
  for (int n = 0; n < rows; ++n) {
    const float* row = w + size_t(n) * cols;
    float absmax = 0;
    for (int k = 0; k < cols; ++k) absmax = std::max(absmax, std::abs(row[k]));
    const float inv = absmax > 0 ? 127.0f / absmax : 0.0f;
    scales[n] = absmax / 127.0f;
    int8_t* panel = q + size_t(n / kPanel) * kPanel * depth;
    const int j = n % kPanel;
    for (int k = 0; k < cols; ++k) {
      const auto v = int8_t(std::clamp(std::nearbyint(row[k] * inv), -127.0f, 127.0f));
      panel[size_t(k / 4) * 4 * kPanel + 4 * j + k % 4] = v;
      sums[n] += v;
    }
  }
}

void quantize_rows(int M, int K, const float* x, uint8_t* out, RowQuant* rows, Int8Isa isa) {
  const int depth = int8_depth(K);
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) {
    uint8_t* row = out + int64_t(m) * depth;
    if (isa == Int8Isa::kAvx512Vnni)
      quantize_row_avx512(K, x + int64_t(m) * K, row, rows[m]);
    else if (isa == Int8Isa::kAvxVnni)
      quantize_row_avx2(K, x + int64_t(m) * K, row, rows[m]);
    else
      quantize_row_portable(K, x + int64_t(m) * K, row, rows[m]);
    std::fill(row + K, row + depth, uint8_t(0));
  }
}

void gemm_int8(int M, int N, int K, const uint8_t* x, const RowQuant* rows, const void* packed,
               float* y, bool accumulate, Int8Isa isa) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) {  // empty sums (the tiles take at least one k step)
    if (!accumulate) std::memset(y, 0, sizeof(float) * size_t(M) * N);
    return;
  }
  const int depth = int8_depth(K), height = tile_height(isa);
  const PackedInt8 w = layout(packed, N, depth);
  const int panels = (N + kPanel - 1) / kPanel;
  detail::for_each_block_panel(M, panels, kMc, [&](int m_begin, int m_end, int p) {
    Tile t;
    t.depth = depth;
    t.b = w.panels + size_t(p) * kPanel * depth;
    t.sums = w.sums + p * kPanel;
    t.scales = w.scales + p * kPanel;
    t.ldc = N;
    t.ncols = std::min(kPanel, N - p * kPanel);
    t.load_c = accumulate;
    for (int m = m_begin; m < m_end; m += height) {
      t.a = x + int64_t(m) * depth;
      t.quant = rows + m;
      t.c = y + int64_t(m) * N + p * kPanel;
      int8_tile(isa, std::min(height, m_end - m), t);
    }
  });
}

}  // namespace rwkv::kernels::cpu
