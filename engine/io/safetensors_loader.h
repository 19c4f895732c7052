// safetensors checkpoints: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
// the raw little-endian tensor data.
#pragma once

#include <string>
#include <string_view>

#include "engine/io/checkpoint.h"

namespace rwkv::io {

// Loads every tensor (F32, F16 and BF16) as dense float32. Offsets, sizes
// and overlaps are validated before any data is converted; `__metadata__` is
// checked to be an object and otherwise ignored. Throws CheckpointError whose
// message starts with `name`.
Checkpoint load_safetensors(std::string_view bytes, const std::string& name);

}  // namespace rwkv::io
