// Built with -ffp-contract=off (CMakeLists.txt): a compiler that fused a
// multiply and an add here would round differently from the other kernel.
#include "kernels/cpu/wkv7.h"

#include <immintrin.h>

namespace rwkv::kernels::cpu {
namespace {

constexpr int N = kWkvHeadSize;

// Four lanes of GCC/Clang vector extensions: SSE2 on every x86-64, so the
// portable kernel is vectorized without reordering anything.
typedef float Lanes4 __attribute__((vector_size(16)));

inline Lanes4 load4(const float* p) {
  Lanes4 x;
  __builtin_memcpy(&x, p, sizeof(x));
  return x;
}

// The dot product of wkv7.h: lane l holds the partial sum of j = l mod 4.
inline float dot(const float* a, const float* b) {
  Lanes4 part = {0, 0, 0, 0};
  for (int j = 0; j < N; j += 4) part = part + load4(a + j) * load4(b + j);
  float sum = 0;
  for (int l = 0; l < 4; ++l) sum = sum + part[l];
  return sum;
}

void head_portable(float* S, int T, int64_t stride, const float* r, const float* decay,
                   const float* k, const float* v, const float* alpha, const float* beta,
                   float* y) {
  for (int t = 0; t < T; ++t) {
    const int64_t o = t * stride;
    for (int i = 0; i < N; ++i) {
      float* row = S + i * N;
      const float sa = dot(row, alpha + o), vi = v[o + i];
      for (int j = 0; j < N; ++j) row[j] = row[j] * decay[o + j] + sa * beta[o + j] + vi * k[o + j];
      y[o + i] = dot(row, r + o);
    }
  }
}

// All 64 rows i at once, sixteen to a vector, one row per lane: the state is
// held transposed (column j of S is four vectors over i), so each lane runs
// the portable order exactly; the 4 x 4 partial sums are independent chains.
constexpr int kBlocks = N / 16;

__attribute__((target("avx512f"))) inline __m512 sum_parts(const __m512 part[4]) {
  __m512 sum = _mm512_setzero_ps();
  for (int p = 0; p < 4; ++p) sum = _mm512_add_ps(sum, part[p]);
  return sum;
}

__attribute__((target("avx512f"))) void head_avx512(float* S, int T, int64_t stride, const float* r,
                                                    const float* decay, const float* k,
                                                    const float* v, const float* alpha,
                                                    const float* beta, float* y) {
  alignas(64) float st[N * N];  // st[j * N + i] = S[i][j]
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) st[j * N + i] = S[i * N + j];
  for (int t = 0; t < T; ++t) {
    const int64_t o = t * stride;
    __m512 part[kBlocks][4], sa[kBlocks], vi[kBlocks];
    for (auto& block : part)
      for (__m512& p : block) p = _mm512_setzero_ps();
    for (int j = 0; j < N; ++j) {
      const __m512 a = _mm512_set1_ps(alpha[o + j]);
      for (int b = 0; b < kBlocks; ++b)
        part[b][j % 4] =
            _mm512_add_ps(part[b][j % 4], _mm512_mul_ps(_mm512_load_ps(st + j * N + 16 * b), a));
    }
    for (int b = 0; b < kBlocks; ++b) {
      sa[b] = sum_parts(part[b]);
      vi[b] = _mm512_loadu_ps(v + o + 16 * b);
      for (__m512& p : part[b]) p = _mm512_setzero_ps();
    }
    for (int j = 0; j < N; ++j) {
      const __m512 dj = _mm512_set1_ps(decay[o + j]), bj = _mm512_set1_ps(beta[o + j]);
      const __m512 kj = _mm512_set1_ps(k[o + j]), rj = _mm512_set1_ps(r[o + j]);
      for (int b = 0; b < kBlocks; ++b) {
        float* col = st + j * N + 16 * b;
        __m512 s = _mm512_mul_ps(_mm512_load_ps(col), dj);
        s = _mm512_add_ps(s, _mm512_mul_ps(sa[b], bj));
        s = _mm512_add_ps(s, _mm512_mul_ps(vi[b], kj));
        _mm512_store_ps(col, s);
        part[b][j % 4] = _mm512_add_ps(part[b][j % 4], _mm512_mul_ps(s, rj));
      }
    }
    for (int b = 0; b < kBlocks; ++b) _mm512_storeu_ps(y + o + 16 * b, sum_parts(part[b]));
  }
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) S[i * N + j] = st[j * N + i];
}

}  // namespace

void wkv7_head(float* S, int T, int64_t stride, const float* r, const float* decay, const float* k,
               const float* v, const float* alpha, const float* beta, float* y, Isa isa) {
  if (isa == Isa::kAvx512)
    head_avx512(S, T, stride, r, decay, k, v, alpha, beta, y);
  else
    head_portable(S, T, stride, r, decay, k, v, alpha, beta, y);
}

}  // namespace rwkv::kernels::cpu
