// The CPU activations (kernels/cpu/elementwise.h) against their plain
// expressions, bit for bit, for every kernel this CPU runs: special values
// (NaN, ±0, ±inf, subnormals, overflow of the square) and random ones, at
// lengths with every tail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "tests/support/vector_compare.h"

namespace rwkv::kernels::cpu {
namespace {

std::vector<Isa> isas_here() {
  std::vector<Isa> isas = {Isa::kPortable};
  if (best_isa() != Isa::kPortable) isas.push_back(Isa::kAvx2);
  if (best_isa() == Isa::kAvx512) isas.push_back(Isa::kAvx512);
  std::printf("[ info ] activation kernels on this CPU: up to %s\n", isa_name(isas.back()));
  return isas;
}

std::vector<float> values(size_t n, std::mt19937& rng) {
  using limits = std::numeric_limits<float>;
  const std::vector<float> special = {limits::quiet_NaN(),
                                      -limits::quiet_NaN(),
                                      0.0f,
                                      -0.0f,
                                      limits::infinity(),
                                      -limits::infinity(),
                                      limits::denorm_min(),
                                      -limits::denorm_min(),
                                      1e30f,
                                      -1e30f,
                                      limits::max(),
                                      1.0f};
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i)
    x[i] = i % 3 == 0 ? special[(i / 3) % special.size()] : normal(rng);
  return x;
}

TEST(CpuActivations, EveryKernelEqualsThePlainExpressionBitForBit) {
  std::mt19937 rng(7);
  for (const Isa isa : isas_here()) {
    for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(15), size_t(16), size_t(17),
                     size_t(33), size_t(100003)}) {
      const std::vector<float> x = values(n, rng);
      std::vector<float> relu_want(n), square_want(n);
      for (size_t i = 0; i < n; ++i) {
        relu_want[i] = x[i] > 0 ? x[i] : 0.0f;
        square_want[i] = x[i] > 0 ? x[i] * x[i] : 0.0f;
      }
      std::vector<float> got = x;
      relu(got.data(), n, isa);
      EXPECT_TRUE(test::same_bits(got, relu_want)) << isa_name(isa) << " relu, n=" << n;
      got = x;
      relu_squared(got.data(), n, isa);
      EXPECT_TRUE(test::same_bits(got, square_want)) << isa_name(isa) << " relu², n=" << n;
    }
  }
}

TEST(CpuActivations, NegativeZeroAndNaNBecomePositiveZero) {
  for (const Isa isa : isas_here()) {
    std::vector<float> x(40, -0.0f);
    for (size_t i = 0; i < x.size(); i += 2) x[i] = std::numeric_limits<float>::quiet_NaN();
    relu_squared(x.data(), x.size(), isa);
    for (float v : x) EXPECT_FALSE(std::signbit(v) || std::isnan(v)) << isa_name(isa);
  }
}

}  // namespace
}  // namespace rwkv::kernels::cpu
