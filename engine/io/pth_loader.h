// PyTorch zip checkpoints (torch.save since 1.6): `<prefix>/data.pkl` holds a
// pickled dict of name -> tensor, whose storages are raw little-endian records
// `<prefix>/data/<key>`. The prefix is whatever the writer chose.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/io/checkpoint.h"
#include "engine/io/pickle_vm.h"

namespace rwkv::io {

class ZipArchive;

// Loads every float32/float16/bfloat16 tensor of the top-level dict (any
// storage offset and strides) as dense float32. Top-level values that are
// lists or tuples of ints go to `int_lists`; other non-tensor values are
// ignored. Throws CheckpointError whose message starts with `name`.
Checkpoint load_pth(const ZipArchive& zip, const std::string& name);

// Element conversions, shared with the safetensors loader.
bool is_float_dtype(DType dtype);  // float32, float16 or bfloat16
// Converts `count` contiguous little-endian elements at `src` (any alignment)
// to float32. `dtype` must satisfy is_float_dtype.
void convert_to_float32(DType dtype, const void* src, size_t count, float* dst);

}  // namespace rwkv::io
