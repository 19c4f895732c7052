// Cached document states as bytes: the versioned binary format of
// docs/state-format.md (what /v1/states stores, uploads and downloads), the
// model fingerprint that ties a state to the weights that computed it, and
// the small hash helpers both need.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "engine/checkpoint.h"
#include "engine/engine.h"

namespace rwkv {

// How the tensors of a blob are stored. The engine always works in float32;
// the smaller types are decoded back to float32 for use. int8: each row (a
// shift vector, a row of a head's WKV matrix) is stored as its largest
// absolute value (float32) and 8-bit multiples of 1/127 of it.
enum class StateDtype : uint32_t { kFloat32 = 0, kFloat16 = 1, kBfloat16 = 2, kInt8 = 3 };

// "float32", "float16", "bfloat16", "int8"
std::string_view state_dtype_name(StateDtype dtype);
std::optional<StateDtype> parse_state_dtype(std::string_view name);

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

// The dimensions of a state: shift [layers, 2, channels], wkv [layers, heads, 64, 64].
struct StateShape {
  uint32_t layers = 0, heads = 0, channels = 0;
  bool operator==(const StateShape&) const = default;
  std::string to_string() const;  // "L=12 H=12 C=768"
};
StateShape state_shape_of(const EmbeddingWeights& model);

inline constexpr std::string_view kStateMagic = "RWKVSTAT";
// Version 2 added int8; float blobs are still written as version 1, which
// older servers read. Both versions are read.
inline constexpr uint16_t kStateFormatVersion = 2;
inline constexpr size_t kStateHeaderBytes = 64;
inline constexpr size_t kStateTrailerBytes = 4;  // CRC-32
inline constexpr uint32_t kStateHeadSize = 64;

// The exact size of a blob of this shape and dtype.
uint64_t state_blob_size(StateShape shape, StateDtype dtype);

// What the header of a valid blob says.
struct StateBlobInfo {
  uint16_t version = 0;
  StateDtype dtype = StateDtype::kFloat32;
  ModelFingerprint fingerprint;
  StateShape shape;
  uint64_t tokens = 0;  // tokens the state has consumed (informational)
  uint64_t bytes = 0;   // whole blob
};

// Why a blob was refused. kMalformed: not a valid blob (truncated, trailing
// bytes, bad magic/version/dtype/sizes, checksum mismatch, non-finite
// values); kShape: a valid blob whose dimensions are not the model's;
// kModel: same dimensions, another model's fingerprint.
class StateBlobError : public std::runtime_error {
 public:
  enum class Kind { kMalformed, kShape, kModel };
  StateBlobError(Kind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// The blob of `state` (float32, shaped as `shape`). Values beyond the range
// of float16 are saturated to ±65504; int8 rows whose largest value is below
// 2^-119 are stored as zeros. Throws std::invalid_argument when the state's
// sizes do not match `shape`.
std::string encode_state(const SequenceState& state, const ModelFingerprint& fingerprint,
                         StateShape shape, StateDtype dtype, uint64_t tokens);

// The header fields of a blob, from its first kStateHeaderBytes (more may be
// given): magic, version, dtype and sizes are checked, not the length or the
// checksum. Throws StateBlobError(kMalformed).
StateBlobInfo read_state_header(std::string_view blob);

// Checks everything that needs no model: sizes, magic, version, dtype and
// the checksum. Throws StateBlobError(kMalformed).
StateBlobInfo inspect_state_blob(std::string_view blob);

// inspect_state_blob, then the model checks (kShape, then kModel) and the
// values (finite), and the state as float32.
SequenceState decode_state(std::string_view blob, const ModelFingerprint& fingerprint,
                           StateShape shape, StateBlobInfo* info = nullptr);

// The same state in another dtype (`blob` itself when it has that dtype
// already): decoded for the model its header names, encoded again. Throws
// StateBlobError(kMalformed).
std::string convert_state_blob(std::string_view blob, StateDtype dtype);

// ---- Helpers ----

// CRC-32 of zlib / Python's zlib.crc32 (IEEE polynomial), continuing `crc`.
uint32_t crc32_of(std::string_view data, uint32_t crc = 0);

// float32 to IEEE half and bfloat16, round to nearest even (NaN stays NaN).
// The other way: half_to_float and bfloat16_to_float of pth_loader.h.
uint16_t float_to_half(float value);
uint16_t float_to_bfloat16(float value);

}  // namespace rwkv
