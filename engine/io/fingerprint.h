// What ties a cached state to the weights that computed it: a hash over
// every tensor of the embedding checkpoint.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "engine/io/checkpoint.h"

namespace rwkv::io {

// 16 bytes identifying the embedding model's weights (model_fingerprint).
struct ModelFingerprint {
  std::array<uint8_t, 16> bytes{};
  std::string hex() const;
  bool operator==(const ModelFingerprint&) const = default;
};

// A hash over every tensor of the embedding checkpoint: names, shapes and
// float32 values, in name order. Fast (several GB/s) and computed once at
// load; identification, not security. Two checkpoints holding the same
// values (e.g. the same weights saved as bfloat16 and float32) agree.
ModelFingerprint model_fingerprint(const Checkpoint& embedding);

}  // namespace rwkv::io
