#include "kernels/cpu/elementwise.h"

#include <immintrin.h>

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

}  // namespace

void relu(float* x, size_t n, Isa isa) { relu_any(x, n, false, isa); }

void relu_squared(float* x, size_t n, Isa isa) { relu_any(x, n, true, isa); }

}  // namespace rwkv::kernels::cpu
