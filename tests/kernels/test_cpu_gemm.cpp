// The CPU product kernel computes every output as one chain of fused
// multiply-adds over k in order (kernels/cpu/gemm.h). Checked here bit for
// bit against that chain written plainly, for every kernel this CPU runs, for
// shapes that exercise every partial tile, panel and k slice, at 1 and 2
// threads: whatever the row count, a row's result is the same.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/common/dtype.h"
#include "kernels/cpu/gemm.h"
#include "tests/support/vector_compare.h"

namespace rwkv::kernels::cpu {
namespace {

using test::same_bits;

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

// y[m, n] = fma(x[m, K-1], w[n, K-1], ... fma(x[m, 0], w[n, 0], y0)).
std::vector<float> chain_reference(int M, int N, int K, const std::vector<float>& x,
                                   const std::vector<float>& w, const std::vector<float>& y0) {
  std::vector<float> y = y0;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float acc = y[size_t(m) * N + n];
      for (int k = 0; k < K; ++k) acc = std::fma(x[size_t(m) * K + k], w[size_t(n) * K + k], acc);
      y[size_t(m) * N + n] = acc;
    }
  return y;
}

std::vector<Isa> runnable_isas() {
  std::vector<Isa> isas = {Isa::kPortable};
  if (best_isa() != Isa::kPortable) isas.push_back(Isa::kAvx2);
  if (best_isa() == Isa::kAvx512) isas.push_back(Isa::kAvx512);
  return isas;
}

TEST(CpuGemm, EveryKernelEqualsTheFmaChainBitForBit) {
  std::printf("[ info ] best kernel on this CPU: %s\n", isa_name(best_isa()));
  std::mt19937 rng(5);
  struct Shape {
    int M, N, K;
  };
  const std::vector<Shape> shapes = {{1, 1, 1},     {1, 32, 64},   {5, 7, 3},     {12, 32, 256},
                                     {13, 33, 257}, {17, 64, 300}, {6, 100, 513}, {145, 40, 96},
                                     {300, 65, 70}, {2, 768, 768}};
  const int saved_threads = omp_get_max_threads();
  for (const Shape& s : shapes) {
    const auto x = random_floats(size_t(s.M) * s.K, rng);
    const auto w = random_floats(size_t(s.N) * s.K, rng);
    const auto y0 = random_floats(size_t(s.M) * s.N, rng);
    std::vector<float> packed(packed_size(s.N, s.K));
    pack_weights(w.data(), s.N, s.K, packed.data());
    for (bool accumulate : {false, true}) {
      const auto want =
          chain_reference(s.M, s.N, s.K, x, w, accumulate ? y0 : std::vector<float>(y0.size()));
      for (Isa isa : runnable_isas())
        for (int threads : {1, 2}) {
          omp_set_num_threads(threads);
          std::vector<float> y = y0;
          gemm(s.M, s.N, s.K, x.data(), packed.data(), y.data(), accumulate, isa);
          EXPECT_TRUE(same_bits(y, want))
              << isa_name(isa) << " M=" << s.M << " N=" << s.N << " K=" << s.K
              << " accumulate=" << accumulate << " threads=" << threads;
        }
    }
  }
  omp_set_num_threads(saved_threads);
}

// The property the server relies on, stated directly: the first rows of a
// product do not change when more rows share the call (the case OpenBLAS's
// Haswell kernels fail for 16 rows against 32, 64 and 160).
TEST(CpuGemm, LeadingRowsDoNotDependOnTheRowCount) {
  std::mt19937 rng(9);
  const int N = 768, K = 768;
  const auto x = random_floats(size_t(160) * K, rng);
  const auto w = random_floats(size_t(N) * K, rng);
  std::vector<float> packed(packed_size(N, K));
  pack_weights(w.data(), N, K, packed.data());
  std::vector<float> first(size_t(16) * N);
  gemm(16, N, K, x.data(), packed.data(), first.data(), false);
  for (int M : {1, 17, 32, 64, 160}) {
    std::vector<float> y(size_t(M) * N);
    gemm(M, N, K, x.data(), packed.data(), y.data(), false);
    const int rows = std::min(M, 16);
    EXPECT_EQ(0, std::memcmp(y.data(), first.data(), sizeof(float) * rows * N)) << "M=" << M;
  }
}

// The AVX-512 rounding gives common::float_to_bfloat16's bits: ties to even,
// NaN quiet, infinities, subnormals (not flushed), every tail length.
TEST(CpuGemm, Bfloat16RoundingOfEveryKernelIsTheScalarOne) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int K : {1, 2, 15, 16, 17, 301}) {
    const int M = 3;
    std::vector<float> x(size_t(M) * K);
    const uint32_t special[] = {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u,
                                0xFF800001u, 0x7F800001u, 0x00000001u, 0x807FFFFFu, 0x3F808000u,
                                0x3F818000u, 0x3F808001u, 0x7F7FFFFFu, 0xFFFFFFFFu};
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = std::bit_cast<float>(i % 2 ? special[(i / 2) % std::size(special)] : any_bits(rng));
    std::vector<uint16_t> want(size_t(M) * (K + K % 2));
    for (int m = 0; m < M; ++m)
      for (int k = 0; k < K; ++k)
        want[size_t(m) * (K + K % 2) + k] = common::float_to_bfloat16(x[size_t(m) * K + k]);
    for (const Isa isa : {Isa::kPortable, best_isa()}) {
      std::vector<uint16_t> got(want.size(), 0xABCD);
      round_to_bf16(M, K, x.data(), got.data(), isa);
      EXPECT_EQ(got, want) << isa_name(isa) << " K=" << K;
    }
  }
}

// bfloat16 products: close to float32 products of the rounded inputs (the
// dot-product instruction rounds its sums in float32), and the same bits for a
// row whatever the row count and thread count.
TEST(CpuGemm, Bfloat16ProductsAreCloseAndRowInvariant) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16: bfloat16 products are refused";
  std::mt19937 rng(13);
  const int N = 100, K = 301;  // a partial panel, an odd depth
  const auto w = random_floats(size_t(N) * K, rng);
  std::vector<uint16_t> w16(size_t(N) * (K + 1));  // rows padded to an even depth
  round_to_bf16(N, K, w.data(), w16.data());
  std::vector<uint16_t> w_rows(size_t(N) * K);
  for (int n = 0; n < N; ++n)
    std::copy_n(w16.begin() + size_t(n) * (K + 1), K, w_rows.begin() + size_t(n) * K);
  std::vector<uint16_t> packed(packed_bf16_size(N, K));
  pack_weights_bf16(w_rows.data(), N, K, packed.data());
  const auto widen = [](uint16_t b) {
    const uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
  };

  const int rows = 37;
  const auto x = random_floats(size_t(rows) * K, rng);
  std::vector<uint16_t> x16(size_t(rows) * (K + 1));
  round_to_bf16(rows, K, x.data(), x16.data());
  std::vector<float> all(size_t(rows) * N);
  gemm_bf16(rows, N, K, x16.data(), packed.data(), all.data(), false);
  for (int m = 0; m < rows; ++m)
    for (int n = 0; n < N; ++n) {
      double want = 0, scale = 0;
      for (int k = 0; k < K; ++k) {
        const double p =
            double(widen(x16[size_t(m) * (K + 1) + k])) * widen(w_rows[size_t(n) * K + k]);
        want += p;
        scale += std::abs(p);
      }
      ASSERT_NEAR(all[size_t(m) * N + n], want, 1e-6 * scale) << "m=" << m << " n=" << n;
    }

  const int saved_threads = omp_get_max_threads();
  for (int M : {1, 5, 13})
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      std::vector<float> y(size_t(M) * N);
      gemm_bf16(M, N, K, x16.data(), packed.data(), y.data(), false);
      EXPECT_EQ(0, std::memcmp(y.data(), all.data(), sizeof(float) * M * N))
          << "M=" << M << " threads=" << threads;
    }
  omp_set_num_threads(saved_threads);
}

}  // namespace
}  // namespace rwkv::kernels::cpu
