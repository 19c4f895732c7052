// The WKV-7 recurrence of one head (kernels/cpu/wkv7.h) against its order
// written plainly, bit for bit, for every kernel this CPU runs: the AVX-512
// kernel may not move an output by a bit from the portable one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/wkv7.h"

namespace rwkv::kernels::cpu {
namespace {

constexpr int N = kWkvHeadSize;

// Four partial sums by j mod 4, each from 0 in j order, then added in order to 0.
float dot_in_order(const float* a, const float* b) {
  float part[4] = {0, 0, 0, 0};
  for (int j = 0; j < N; ++j) part[j % 4] = part[j % 4] + a[j] * b[j];
  return (((0.0f + part[0]) + part[1]) + part[2]) + part[3];
}

struct Inputs {
  int T;
  int64_t stride;
  std::vector<float> r, decay, k, v, alpha, beta;
};

Inputs random_inputs(int T, int64_t stride, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.5f, 1.0f);
  Inputs in{T, stride, {}, {}, {}, {}, {}, {}};
  const size_t n = size_t(std::max(T, 1)) * stride;
  for (auto* x : {&in.r, &in.k, &in.v, &in.alpha, &in.beta}) {
    x->resize(n);
    for (float& f : *x) f = normal(rng);
  }
  in.decay.resize(n);
  for (float& f : in.decay) f = unit(rng);
  return in;
}

void reference(std::vector<float>& S, const Inputs& in, std::vector<float>& y) {
  for (int t = 0; t < in.T; ++t) {
    const int64_t o = t * in.stride;
    for (int i = 0; i < N; ++i) {
      float* row = S.data() + i * N;
      const float sa = dot_in_order(row, in.alpha.data() + o);
      for (int j = 0; j < N; ++j)
        row[j] = row[j] * in.decay[o + j] + sa * in.beta[o + j] + in.v[o + i] * in.k[o + j];
      y[o + i] = dot_in_order(row, in.r.data() + o);
    }
  }
}

TEST(CpuWkv7, EveryKernelEqualsThePlainOrderBitForBit) {
  std::vector<Isa> isas = {Isa::kPortable};
  if (best_isa() == Isa::kAvx512) isas.push_back(Isa::kAvx512);
  std::printf("[ info ] WKV-7 kernel on this CPU: %s\n", isa_name(isas.back()));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int T : {0, 1, 2, 7, 64}) {
    for (int64_t stride : {int64_t(N), int64_t(3 * N + 5)}) {
      const Inputs in = random_inputs(T, stride, rng);
      std::vector<float> S0(N * N);
      for (float& f : S0) f = normal(rng);
      std::vector<float> S_ref = S0, y_ref(in.r.size(), 0.0f);
      reference(S_ref, in, y_ref);
      for (Isa isa : isas) {
        std::vector<float> S = S0, y(in.r.size(), 0.0f);
        wkv7_head(S.data(), T, stride, in.r.data(), in.decay.data(), in.k.data(), in.v.data(),
                  in.alpha.data(), in.beta.data(), y.data(), isa);
        EXPECT_EQ(std::memcmp(S.data(), S_ref.data(), S.size() * sizeof(float)), 0)
            << isa_name(isa) << " state, T=" << T << " stride=" << stride;
        EXPECT_EQ(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)), 0)
            << isa_name(isa) << " output, T=" << T << " stride=" << stride;
      }
    }
  }
}

}  // namespace
}  // namespace rwkv::kernels::cpu
