// The 16-bit float formats of checkpoints, state blobs and half-precision
// weights: IEEE half (float16) and bfloat16, to and from float32.
#pragma once

#include <cstdint>

namespace rwkv::common {

// Exact: every half and bfloat16 value is a float32 value.
float half_to_float(uint16_t bits);
float bfloat16_to_float(uint16_t bits);

// Round to nearest even; NaN stays NaN (quiet); beyond the half range gives ±Inf.
uint16_t float_to_half(float value);
uint16_t float_to_bfloat16(float value);

}  // namespace rwkv::common
