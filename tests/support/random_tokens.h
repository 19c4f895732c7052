// Random token sequences that end with EOS, for tests that need many inputs.
#pragma once

#include <random>
#include <vector>

#include "engine/text/tokenizer.h"

namespace rwkv::test {

inline std::vector<int32_t> random_tokens(std::mt19937& rng, int n) {
  std::uniform_int_distribution<int32_t> id(1, 65529);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = id(rng);
  t.back() = text::Tokenizer::kEos;
  return t;
}

}  // namespace rwkv::test
