#include "kernels/cpu/elementwise.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/tile_helpers.h"

// SLEEF's deterministic functions (libsleef-dev). sleef.h declares an ISA's
// functions only in a translation unit compiled for that ISA (-mavx512f),
// and this one picks its kernel at run time, so the few it calls are
// declared here, each with the instruction set it runs on.
extern "C" {
__attribute__((target("avx512f"))) __m512 Sleef_finz_expf16_u10avx512f(__m512);
__attribute__((target("avx512f"))) __m512 Sleef_finz_tanhf16_u10avx512f(__m512);
__attribute__((target("avx2,fma"))) __m256 Sleef_finz_expf8_u10avx2(__m256);
__attribute__((target("avx2,fma"))) __m256 Sleef_finz_tanhf8_u10avx2(__m256);
__attribute__((target("fma"))) float Sleef_finz_expf1_u10purecfma(float);
__attribute__((target("fma"))) float Sleef_finz_tanhf1_u10purecfma(float);
float Sleef_expf1_u10purec(float);
float Sleef_tanhf1_u10purec(float);
}

namespace rwkv::kernels::cpu {
namespace {

// The plain expressions: the definition the vector kernels must match, and
// the tail of every vector loop.
inline float relu_of(float v) { return v > 0 ? v : 0; }
inline float relu_squared_of(float v) { return v > 0 ? v * v : 0; }

// The ordered compare is false for NaN, so NaN and -0 lanes are zeroed (+0).
__attribute__((target("avx512f"))) void relu_avx512(float* x, size_t n, bool square) {
  const __m512 zero = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __mmask16 positive = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
    _mm512_storeu_ps(
        x + i, square ? _mm512_maskz_mul_ps(positive, v, v) : _mm512_maskz_mov_ps(positive, v));
  }
  for (; i < n; ++i) x[i] = square ? relu_squared_of(x[i]) : relu_of(x[i]);
}

__attribute__((target("avx2"))) void relu_avx2(float* x, size_t n, bool square) {
  const __m256 zero = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 positive = _mm256_cmp_ps(v, zero, _CMP_GT_OQ);
    _mm256_storeu_ps(x + i, _mm256_and_ps(positive, square ? _mm256_mul_ps(v, v) : v));
  }
  for (; i < n; ++i) x[i] = square ? relu_squared_of(x[i]) : relu_of(x[i]);
}

void relu_any(float* x, size_t n, bool square, Isa isa) {
  if (isa == Isa::kAvx512) return relu_avx512(x, n, square);
  if (isa == Isa::kAvx2) return relu_avx2(x, n, square);
  for (size_t i = 0; i < n; ++i) x[i] = square ? relu_squared_of(x[i]) : relu_of(x[i]);
}

enum class Function { kExp, kSigmoid, kTanh };

// Each kernel applies the same operations in the same order: the SLEEF call
// of its width, and for the sigmoid a negation, an add and a division, which
// are exact-rounded everywhere. Tails run as a full vector (zero lanes).
__attribute__((target("avx512f"))) __m512 apply_avx512(Function f, __m512 v) {
  if (f == Function::kTanh) return Sleef_finz_tanhf16_u10avx512f(v);
  if (f == Function::kExp) return Sleef_finz_expf16_u10avx512f(v);
  const __m512 e = Sleef_finz_expf16_u10avx512f(_mm512_sub_ps(_mm512_setzero_ps(), v));
  return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

__attribute__((target("avx512f"))) void transcendental_avx512(Function f, float* x, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::lane_mask(int(std::min<size_t>(16, n - i)));
    _mm512_mask_storeu_ps(x + i, m, apply_avx512(f, _mm512_maskz_loadu_ps(m, x + i)));
  }
}

__attribute__((target("avx2,fma"))) __m256 apply_avx2(Function f, __m256 v) {
  if (f == Function::kTanh) return Sleef_finz_tanhf8_u10avx2(v);
  if (f == Function::kExp) return Sleef_finz_expf8_u10avx2(v);
  const __m256 e = Sleef_finz_expf8_u10avx2(_mm256_sub_ps(_mm256_setzero_ps(), v));
  return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

__attribute__((target("avx2,fma"))) void transcendental_avx2(Function f, float* x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, apply_avx2(f, _mm256_loadu_ps(x + i)));
  if (i == n) return;
  float tail[8] = {};
  std::memcpy(tail, x + i, sizeof(float) * (n - i));
  _mm256_storeu_ps(tail, apply_avx2(f, _mm256_loadu_ps(tail)));
  std::memcpy(x + i, tail, sizeof(float) * (n - i));
}

// Without AVX2: SLEEF's scalar FMA functions where the CPU has FMA (the
// vector kernels' bits), its plain scalar ones where it has not.
float apply_scalar(Function f, float v) {
  static const bool fma = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") != 0;
  }();
  if (f == Function::kTanh)
    return fma ? Sleef_finz_tanhf1_u10purecfma(v) : Sleef_tanhf1_u10purec(v);
  const auto e = [&](float a) {
    return fma ? Sleef_finz_expf1_u10purecfma(a) : Sleef_expf1_u10purec(a);
  };
  if (f == Function::kExp) return e(v);
  return 1.0f / (1.0f + e(0.0f - v));
}

void transcendental(Function f, float* x, size_t n, Isa isa) {
  if (isa == Isa::kAvx512) return transcendental_avx512(f, x, n);
  if (isa == Isa::kAvx2) return transcendental_avx2(f, x, n);
  for (size_t i = 0; i < n; ++i) x[i] = apply_scalar(f, x[i]);
}

}  // namespace

void relu(float* x, size_t n, Isa isa) { relu_any(x, n, false, isa); }

void relu_squared(float* x, size_t n, Isa isa) { relu_any(x, n, true, isa); }

void exp(float* x, size_t n, Isa isa) { transcendental(Function::kExp, x, n, isa); }

void sigmoid(float* x, size_t n, Isa isa) { transcendental(Function::kSigmoid, x, n, isa); }

void tanh(float* x, size_t n, Isa isa) { transcendental(Function::kTanh, x, n, isa); }

}  // namespace rwkv::kernels::cpu
