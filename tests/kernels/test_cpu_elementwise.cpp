// The CPU activations (kernels/cpu/elementwise.h): relu and relu² against
// their plain expressions, bit for bit; exp, sigmoid and tanh the same bits
// in every kernel and within SLEEF's 1 ULP of the double-precision value
// (2.5 for the sigmoid: 1 + e^-x and the division round once more each); for
// every kernel this CPU runs, on special values (NaN, ±0, ±inf, subnormals,
// overflow) and random ones, at lengths with every tail.
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

// Distance in ULPs from float(want) (the nearer of its neighbours counts 0.5
// apart per step); want is the double-precision value.
double ulps(float got, double want) {
  const float near = float(want);
  if (got == near) return 0;
  const float step = std::abs(std::nextafter(near, near < got ? INFINITY : -INFINITY) - near);
  return std::abs(double(got) - want) / step;
}

struct Transcendental {
  const char* name;
  void (*kernel)(float*, size_t, Isa);
  double (*exact)(double);
  double max_ulps;
};

TEST(CpuActivations, TranscendentalsGiveTheSameBitsInEveryKernelWithin1Ulp) {
  const Transcendental functions[] = {
      {"exp", &exp, [](double v) { return std::exp(v); }, 1.0},
      {"sigmoid", &sigmoid, [](double v) { return 1.0 / (1.0 + std::exp(-v)); }, 2.5},
      {"tanh", &tanh, [](double v) { return std::tanh(v); }, 1.0},
  };
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> range(-90.0f, 90.0f);
  const std::vector<Isa> isas = isas_here();
  for (const auto& f : functions) {
    for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(15), size_t(16), size_t(17),
                     size_t(100003)}) {
      std::vector<float> x = values(n, rng);
      for (size_t i = 1; i < n; i += 3) x[i] = range(rng);  // the whole range of exp
      std::vector<float> first;
      for (const Isa isa : isas) {
        std::vector<float> got = x;
        f.kernel(got.data(), n, isa);
        if (first.empty() && n > 0) {
          first = got;
        } else {
          EXPECT_TRUE(test::same_bits(got, first)) << f.name << " " << isa_name(isa) << " n=" << n;
        }
        for (size_t i = 0; i < n; ++i) {
          const double want = f.exact(x[i]);
          if (std::isnan(want)) {
            EXPECT_TRUE(std::isnan(got[i])) << f.name << "(" << x[i] << ")";
            continue;
          }
          if (std::abs(want) < std::numeric_limits<float>::min()) {  // SLEEF flushes to 0
            EXPECT_LE(std::abs(got[i]), std::numeric_limits<float>::min())
                << f.name << "(" << x[i] << ")";
            continue;
          }
          EXPECT_LE(ulps(got[i], want), f.max_ulps)
              << f.name << "(" << x[i] << ") = " << got[i] << ", want " << want << " ("
              << isa_name(isa) << ")";
        }
      }
    }
  }
}

}  // namespace
}  // namespace rwkv::kernels::cpu
