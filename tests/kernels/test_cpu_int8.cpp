// int8 products on the CPU (kernels/cpu/gemm_int8.h): every VNNI kernel this
// CPU runs gives the portable kernel's bits, for shapes with partial tiles and
// panels and odd depths, at 1 and 2 threads; a row's result does not depend on
// the row count; the result is the product of the quantized operands as their
// definitions give them. The model in int8 against float32 is in
// tests/model/test_cpu_int8_model.cpp.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/gemm_int8.h"
#include "tests/support/vector_compare.h"

namespace rwkv {
namespace {

using test::same_bits;

using kernels::cpu::Int8Isa;
using kernels::cpu::RowQuant;

std::vector<float> random_floats(size_t n, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

std::vector<Int8Isa> runnable_int8_isas() {
  std::vector<Int8Isa> isas;
  for (const Int8Isa isa : {Int8Isa::kPortable, Int8Isa::kAvxVnni, Int8Isa::kAvx512Vnni})
    if (kernels::cpu::cpu_runs(isa)) isas.push_back(isa);
  return isas;
}

// x quantized per row, and W packed, for products of [M, K] by [N, K].
struct Operands {
  int M, N, K;
  std::vector<float> x, w;
  std::vector<uint8_t> q;
  std::vector<RowQuant> rows;
  std::vector<std::byte> packed;
  Operands(int m, int n, int k, std::mt19937& rng)
      : M(m),
        N(n),
        K(k),
        x(random_floats(size_t(m) * k, rng)),
        w(random_floats(size_t(n) * k, rng)) {
    // Rows of every sign mix: shifted up, down, and one all zero.
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < K; ++j) x[size_t(i) * K + j] += float(i % 3) - 1.0f;
    if (M > 2) std::fill_n(x.begin() + 2 * size_t(K), K, 0.0f);
    q.resize(size_t(M) * kernels::cpu::int8_depth(K));
    rows.resize(M);
    kernels::cpu::quantize_rows(M, K, x.data(), q.data(), rows.data(), Int8Isa::kPortable);
    packed.resize(kernels::cpu::packed_int8_bytes(N, K));
    kernels::cpu::pack_weights_int8(w.data(), N, K, packed.data());
  }
  std::vector<float> product(int rows_, Int8Isa isa, const std::vector<float>& y0,
                             bool accumulate) const {
    std::vector<float> y(y0.begin(), y0.begin() + size_t(rows_) * N);
    kernels::cpu::gemm_int8(rows_, N, K, q.data(), rows.data(), packed.data(), y.data(), accumulate,
                            isa);
    return y;
  }
};

TEST(CpuInt8, EveryKernelGivesThePortableBits) {
  std::printf("[ info ] best int8 kernel on this CPU: %s\n",
              kernels::cpu::int8_isa_name(kernels::cpu::best_int8_isa()));
  std::mt19937 rng(5);
  struct Shape {
    int M, N, K;
  };
  const std::vector<Shape> shapes = {{1, 1, 1},     {1, 32, 64},   {5, 7, 3},     {12, 32, 256},
                                     {13, 33, 257}, {17, 64, 301}, {6, 100, 513}, {145, 40, 96},
                                     {300, 65, 70}, {2, 768, 3072}};
  const int saved_threads = omp_get_max_threads();
  for (const Shape& s : shapes) {
    const Operands op(s.M, s.N, s.K, rng);
    const auto y0 = random_floats(size_t(s.M) * s.N, rng);
    for (bool accumulate : {false, true}) {
      const auto want = op.product(s.M, Int8Isa::kPortable, y0, accumulate);
      for (Int8Isa isa : runnable_int8_isas())
        for (int threads : {1, 2}) {
          omp_set_num_threads(threads);
          EXPECT_TRUE(same_bits(op.product(s.M, isa, y0, accumulate), want))
              << kernels::cpu::int8_isa_name(isa) << " M=" << s.M << " N=" << s.N << " K=" << s.K
              << " accumulate=" << accumulate << " threads=" << threads;
        }
    }
  }
  omp_set_num_threads(saved_threads);
}

TEST(CpuInt8, VectorQuantizationGivesThePortableBytes) {
  if (runnable_int8_isas().size() == 1) GTEST_SKIP() << "this CPU has no VNNI";
  std::mt19937 rng(7);
  for (int K : {1, 7, 8, 9, 64, 301, 3072}) {
    const int M = 5, depth = kernels::cpu::int8_depth(K);
    auto x = random_floats(size_t(M) * K, rng, 3.0f);
    for (int k = 0; k < K; ++k) x[k] = std::abs(x[k]);           // all >= 0 (relu²)
    for (int k = 0; k < K; ++k) x[K + k] = -std::abs(x[K + k]);  // all <= 0
    std::fill_n(x.begin() + 2 * K, K, 0.0f);                     // all zero
    std::vector<uint8_t> want(size_t(M) * depth, 1), got(size_t(M) * depth, 2);
    std::vector<RowQuant> want_rows(M), got_rows(M);
    kernels::cpu::quantize_rows(M, K, x.data(), want.data(), want_rows.data(), Int8Isa::kPortable);
    for (const Int8Isa isa : runnable_int8_isas()) {
      kernels::cpu::quantize_rows(M, K, x.data(), got.data(), got_rows.data(), isa);
      const char* name = kernels::cpu::int8_isa_name(isa);
      EXPECT_EQ(got, want) << name << " K=" << K;
      for (int m = 0; m < M; ++m) {
        EXPECT_EQ(got_rows[m].scale, want_rows[m].scale) << name << " K=" << K << " row " << m;
        EXPECT_EQ(got_rows[m].zero, want_rows[m].zero) << name << " K=" << K << " row " << m;
      }
    }
  }
}

// A depth of 0 (no k step to run) is the empty sum: 0, or y unchanged.
TEST(CpuInt8, AnEmptyDepthGivesZerosOrLeavesY) {
  std::mt19937 rng(3);
  const Operands op(3, 5, 0, rng);
  const auto y0 = random_floats(15, rng);
  for (Int8Isa isa : runnable_int8_isas()) {
    EXPECT_EQ(op.product(3, isa, y0, true), y0) << kernels::cpu::int8_isa_name(isa);
    EXPECT_EQ(op.product(3, isa, y0, false), std::vector<float>(15, 0.0f))
        << kernels::cpu::int8_isa_name(isa);
  }
}

// The property the server relies on: the first rows of a product do not
// change when more rows share the call, or with the thread count.
TEST(CpuInt8, LeadingRowsDoNotDependOnTheRowCountOrThreads) {
  std::mt19937 rng(9);
  const Operands op(160, 768, 3072, rng);  // the FFN value product of the 0.1B shape
  const std::vector<float> zeros(size_t(160) * 768);
  const auto first = op.product(16, kernels::cpu::best_int8_isa(), zeros, false);
  const int saved_threads = omp_get_max_threads();
  for (int M : {1, 17, 32, 64, 160})
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      const auto y = op.product(M, kernels::cpu::best_int8_isa(), zeros, false);
      const int rows = std::min(M, 16);
      EXPECT_EQ(0, std::memcmp(y.data(), first.data(), sizeof(float) * rows * op.N))
          << "M=" << M << " threads=" << threads;
    }
  omp_set_num_threads(saved_threads);
}

// The product is that of the quantized operands, recomputed here from their
// definitions: x ≈ (q - zero)·s_x with |x - (q - zero)·s_x| <= s_x/2 (checked),
// w ≈ round(w / s_w)·s_w with s_w = absmax / 127. Within float rounding of it,
// and so within the quantization error of the float product:
// |y - x·w| <= Σ_k (|x_k| s_w/2 + |w_k| s_x/2 + s_x s_w/4).
TEST(CpuInt8, IsTheProductOfTheQuantizedOperands) {
  std::mt19937 rng(11);
  const Operands op(37, 100, 301, rng);
  const auto y = op.product(op.M, kernels::cpu::best_int8_isa(),
                            std::vector<float>(size_t(op.M) * op.N), false);
  const int depth = kernels::cpu::int8_depth(op.K);
  for (int m = 0; m < op.M; ++m)
    for (int k = 0; k < op.K; ++k) {
      const RowQuant& r = op.rows[m];
      const double back = (op.q[size_t(m) * depth + k] - r.zero) * double(r.scale);
      ASSERT_LE(std::abs(back - op.x[size_t(m) * op.K + k]), r.scale * 0.5001) << m << " " << k;
    }
  double worst = 0;
  for (int n = 0; n < op.N; ++n) {
    const float* w = &op.w[size_t(n) * op.K];
    double absmax = 0;
    for (int k = 0; k < op.K; ++k) absmax = std::max(absmax, double(std::abs(w[k])));
    const double sw = absmax / 127;
    for (int m = 0; m < op.M; ++m) {
      const float* x = &op.x[size_t(m) * op.K];
      const RowQuant& r = op.rows[m];
      double quantized = 0, magnitude = 0, exact = 0, bound = 0;
      for (int k = 0; k < op.K; ++k) {
        const double t = (op.q[size_t(m) * depth + k] - r.zero) * double(r.scale) *
                         (std::nearbyint(w[k] / sw) * sw);
        quantized += t;
        magnitude += std::abs(t);
        exact += double(x[k]) * w[k];
        bound += std::abs(x[k]) * sw / 2 + std::abs(w[k]) * r.scale / 2 + r.scale * sw / 4;
      }
      const double got = y[size_t(m) * op.N + n];
      ASSERT_NEAR(got, quantized, 1e-6 * magnitude + 1e-7) << "m=" << m << " n=" << n;
      ASSERT_LE(std::abs(got - exact), bound) << "m=" << m << " n=" << n;
      worst = std::max(worst, std::abs(got - exact) / bound);
    }
  }
  std::printf("[ info ] worst |error| / the quantization bound: %.3f\n", worst);
}

}  // namespace
}  // namespace rwkv
