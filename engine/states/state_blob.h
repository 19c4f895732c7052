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

#include "engine/io/fingerprint.h"
#include "engine/states/sequence_state.h"

namespace rwkv::states {

// How the tensors of a blob are stored. The engine always works in float32;
// the smaller types are decoded back to float32 for use. int8: each row (a
// shift vector, a row of a head's WKV matrix) is stored as its largest
// absolute value (float32) and 8-bit multiples of 1/127 of it.
enum class StateDtype : uint32_t { kFloat32 = 0, kFloat16 = 1, kBfloat16 = 2, kInt8 = 3 };

// "float32", "float16", "bfloat16", "int8"
std::string_view state_dtype_name(StateDtype dtype);
std::optional<StateDtype> parse_state_dtype(std::string_view name);

inline constexpr std::string_view kStateMagic = "RWKVSTAT";
// Version 2 added int8; float blobs are still written as version 1, which
// older servers read. Both versions are read.
inline constexpr uint16_t kStateFormatVersion = 2;
inline constexpr size_t kStateHeaderBytes = 64;
inline constexpr size_t kStateTrailerBytes = 4;  // CRC-32

// The exact size of a blob of this shape and dtype.
uint64_t state_blob_size(StateShape shape, StateDtype dtype);

// What the header of a valid blob says.
struct StateBlobInfo {
  uint16_t version = 0;
  StateDtype dtype = StateDtype::kFloat32;
  io::ModelFingerprint fingerprint;
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
std::string encode_state(const SequenceState& state, const io::ModelFingerprint& fingerprint,
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
SequenceState decode_state(std::string_view blob, const io::ModelFingerprint& fingerprint,
                           StateShape shape, StateBlobInfo* info = nullptr);

// The same state in another dtype (`blob` itself when it has that dtype
// already): decoded for the model its header names, encoded again. Throws
// StateBlobError(kMalformed).
std::string convert_state_blob(std::string_view blob, StateDtype dtype);

// ---- Helpers ----

// CRC-32 of zlib / Python's zlib.crc32 (IEEE polynomial), continuing `crc`.
uint32_t crc32_of(std::string_view data, uint32_t crc = 0);

}  // namespace rwkv::states
