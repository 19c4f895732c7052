// Wire encodings of embedding vectors: base64 (OpenAI `encoding_format`,
// Cohere `base64`), Cohere's quantized types, and compact JSON floats.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv::api {

// ---- base64 (RFC 4648 standard alphabet, '=' padding) ----

std::string base64_encode(std::string_view bytes);
// nullopt on a character outside the alphabet, misplaced padding, or an
// impossible length. Padding may be omitted; whitespace is not accepted.
std::optional<std::string> base64_decode(std::string_view text);

// The vector as little-endian float32 bytes, base64-encoded: what
// `np.frombuffer(base64.b64decode(s), "<f4")` reads back (OpenAI SDKs).
std::string floats_to_base64(std::span<const float> values);

// ---- JSON floats ----

// The double whose shortest decimal form is the float's shortest decimal
// form: 0.1f becomes 0.1 on the wire, not 0.10000000149011612, and reads
// back as the same float. Non-finite values pass through (they dump as null).
double json_number(float value);
// [json_number(v) for v in values].
nlohmann::json float_array(std::span<const float> values);

// ---- Cohere embedding types ----
//
// Cohere does not publish its int8/uint8 calibration. Ours is a fixed scale
// on the L2-normalized vector: int8 = clamp(round(v * 127), -127, 127),
// uint8 = int8 + 128 (so 1..255 and uint8 - 128 == int8). A fixed scale
// (rather than per-vector max-abs) keeps int8 dot products proportional to
// cosine similarity across vectors, and never clips a unit vector. The cost
// is resolution: for C = 1024 the quantized vector keeps a cosine of ~0.997
// with the original. `scale` lets a deployment calibrate per model.
constexpr float kInt8Scale = 127.0f;
std::vector<int8_t> quantize_int8(std::span<const float> values, float scale = kInt8Scale);
std::vector<uint8_t> quantize_uint8(std::span<const float> values, float scale = kInt8Scale);

// Sign bits (v >= 0 -> 1), 8 dimensions per byte, most significant bit
// first. ubinary is the byte (0..255); binary is byte - 128 (-128..127).
// Throws std::invalid_argument unless the size is a multiple of 8.
std::vector<uint8_t> pack_ubinary(std::span<const float> values);
std::vector<int8_t> pack_binary(std::span<const float> values);

}  // namespace rwkv::api
