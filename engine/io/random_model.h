// Deterministic random checkpoints with the real key layout: the demo model
// the server runs without --model, and the models benchmarks measure.
#pragma once

#include <cstdint>

#include "engine/io/checkpoint.h"

namespace rwkv::io {

struct ModelShape {
  int layers = 12, channels = 768, ffn = 3072;
  int lora_w = 64, lora_a = 64, lora_v = 32, lora_g = 128;
  int vocab_rows = 65536;
  static ModelShape tiny_01b() { return {}; }  // EmbeddingRWKV 0.1B (L12 C768 H12)
  static ModelShape demo() { return {2, 128, 512, 16, 16, 16, 32, 65536}; }
};

Checkpoint make_random_embedding_checkpoint(const ModelShape& shape, uint64_t seed);
// A reranker reading every layer of a model of `shape`.
Checkpoint make_random_reranker_checkpoint(const ModelShape& shape, uint64_t seed);

}  // namespace rwkv::io
