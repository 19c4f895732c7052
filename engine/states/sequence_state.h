// One sequence's recurrent state on the host (docs/model.md "State"): what
// the engine reads out of a slot and loads into one, what the state format
// stores, and its dimensions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rwkv::states {

struct SequenceState {
  std::vector<float> shift;  // [L, 2, C]
  std::vector<float> wkv;    // [L, H, 64, 64]
};

// The dimensions of a state: shift [layers, 2, channels], wkv [layers, heads, 64, 64].
struct StateShape {
  uint32_t layers = 0, heads = 0, channels = 0;
  bool operator==(const StateShape&) const = default;
  std::string to_string() const;  // "L=12 H=12 C=768"
};

}  // namespace rwkv::states
