// The matrix products of one RWKV-7 forward pass (as engine/model/model.cpp runs
// them), so benchmarks can time bare GEMMs on exactly the model's shapes.
#pragma once

#include <vector>

#include "engine/io/random_model.h"

namespace rwkv::bench {

struct Gemm {
  int n, k;  // y[M, n] = x[M, k] · W[n, k]ᵀ
};

inline std::vector<Gemm> model_gemms(const io::ModelShape& s) {
  std::vector<Gemm> g;
  const int C = s.channels;
  for (int l = 0; l < s.layers; ++l) {
    for (int i = 0; i < 4; ++i) g.push_back({C, C});  // r, k, v, output
    for (int d : {s.lora_w, s.lora_a, s.lora_g}) {
      g.push_back({d, C});
      g.push_back({C, d});
    }
    if (l > 0) {  // layer 0 has no value-residual LoRA
      g.push_back({s.lora_v, C});
      g.push_back({C, s.lora_v});
    }
    g.push_back({s.ffn, C});
    g.push_back({C, s.ffn});
  }
  return g;
}

inline double gemm_flops(const std::vector<Gemm>& gemms, double M) {
  double f = 0;
  for (const Gemm& g : gemms) f += 2.0 * M * g.n * g.k;
  return f;
}

}  // namespace rwkv::bench
