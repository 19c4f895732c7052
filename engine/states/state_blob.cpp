#include "engine/states/state_blob.h"

#include <zlib.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/common/dtype.h"
#include "engine/common/head_size.h"
#include "engine/common/sha256.h"

namespace rwkv::states {

static_assert(std::endian::native == std::endian::little,
              "the state format is little-endian; this code copies tensors as they are in memory");

namespace {

// ---- Little-endian header fields ----

template <typename T>
void put_le(std::string& out, size_t offset, T value) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out[offset + i] = char((uint64_t(value) >> (8 * i)) & 0xff);
}

template <typename T>
T get_le(std::string_view in, size_t offset) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(uint8_t(in[offset + i])) << (8 * i);
  return T(v);
}

// Header layout (docs/state-format.md).
constexpr size_t kOffVersion = 8, kOffHeaderBytes = 10, kOffDtype = 12, kOffFingerprint = 16,
                 kOffLayers = 32, kOffHeads = 36, kOffChannels = 40, kOffHeadSize = 44,
                 kOffTokens = 48, kOffPayload = 56;

// Limits far above any real model that keep the size arithmetic in range.
constexpr uint32_t kMaxLayers = 4096, kMaxHeads = 4096, kMaxChannels = 1 << 20;

StateBlobError malformed(const std::string& message) {
  return StateBlobError(StateBlobError::Kind::kMalformed, "invalid state blob: " + message);
}

uint64_t shift_count(StateShape s) { return uint64_t(s.layers) * 2 * s.channels; }
uint64_t wkv_count(StateShape s) {
  return uint64_t(s.layers) * s.heads * common::kHeadSize * common::kHeadSize;
}

// ---- Tensor (de)serialization ----

// The float dtypes: each value as it is, in 4 or 2 bytes.
size_t float_bytes(StateDtype dtype) { return dtype == StateDtype::kFloat32 ? 4 : 2; }

void write_floats(char* out, const std::vector<float>& values, StateDtype dtype) {
  switch (dtype) {
    case StateDtype::kFloat32:
      std::memcpy(out, values.data(), values.size() * sizeof(float));
      return;
    case StateDtype::kFloat16:
      for (size_t i = 0; i < values.size(); ++i) {
        uint16_t h = common::float_to_half(values[i]);
        if ((h & 0x7fff) == 0x7c00 && std::isfinite(values[i]))
          h = (h & 0x8000) | 0x7bff;  // saturate
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case StateDtype::kBfloat16:
      for (size_t i = 0; i < values.size(); ++i) {
        uint16_t b = common::float_to_bfloat16(values[i]);
        if ((b & 0x7fff) == 0x7f80 && std::isfinite(values[i]))
          b = (b & 0x8000) | 0x7f7f;  // saturate
        std::memcpy(out + 2 * i, &b, 2);
      }
      return;
    case StateDtype::kInt8:
      break;
  }
}

void read_floats(const char* in, std::vector<float>& values, StateDtype dtype) {
  switch (dtype) {
    case StateDtype::kFloat32:
      std::memcpy(values.data(), in, values.size() * sizeof(float));
      return;
    case StateDtype::kFloat16:
      for (size_t i = 0; i < values.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, in + 2 * i, 2);
        values[i] = common::half_to_float(h);
      }
      return;
    case StateDtype::kBfloat16:
      for (size_t i = 0; i < values.size(); ++i) {
        uint16_t b;
        std::memcpy(&b, in + 2 * i, 2);
        values[i] = common::bfloat16_to_float(b);
      }
      return;
    case StateDtype::kInt8:
      break;
  }
}

// int8: a row's values are q * absmax / 127 with q in [-127, 127] and absmax
// its largest absolute value, kept exactly. Rows with absmax below this are
// zeros: above it every nonzero value decodes to a normal float, so that
// decoding and encoding again give the same bytes.
constexpr float kInt8MinAbsmax = 0x1p-119f;

uint64_t int8_rows(StateShape s) {
  return uint64_t(s.layers) * 2 + wkv_count(s) / common::kHeadSize;
}

// The values of rows of `row` values each: their absmax at `scales`, their
// multiples at `q`.
void write_int8(char* scales, char* q, const std::vector<float>& values, size_t row) {
  for (size_t r = 0; r * row < values.size(); ++r) {
    const float* v = values.data() + r * row;
    float absmax = 0;
    bool finite = true;
    for (size_t i = 0; i < row; ++i) {
      absmax = std::max(absmax, std::abs(v[i]));
      finite &= std::isfinite(v[i]);
    }
    if (!finite)
      absmax = std::numeric_limits<float>::quiet_NaN();  // refused when decoded
    else if (absmax < kInt8MinAbsmax)
      absmax = 0;
    std::memcpy(scales + 4 * r, &absmax, 4);
    for (size_t i = 0; i < row; ++i)
      q[r * row + i] = absmax > 0 ? char(std::lround(double(v[i]) * 127.0 / absmax)) : 0;
  }
}

// False when a row is not what write_int8 writes: absmax not finite, negative
// or below kInt8MinAbsmax (other than 0), a -128, or no ±127 (all zeros for 0).
bool read_int8(const char* scales, const char* q, std::vector<float>& values, size_t row) {
  for (size_t r = 0; r * row < values.size(); ++r) {
    float absmax;
    std::memcpy(&absmax, scales + 4 * r, 4);
    if (!(absmax == 0 || (absmax >= kInt8MinAbsmax && std::isfinite(absmax)))) return false;
    int top = 0;
    for (size_t i = 0; i < row; ++i) {
      const int8_t x = int8_t(q[r * row + i]);
      if (x == -128) return false;
      top = std::max(top, std::abs(int(x)));
      values[r * row + i] = float(double(x) * absmax / 127.0);
    }
    if (top != (absmax > 0 ? 127 : 0)) return false;
  }
  return true;
}

uint64_t payload_bytes(StateShape s, StateDtype dtype) {
  if (dtype == StateDtype::kInt8) return int8_rows(s) * 4 + shift_count(s) + wkv_count(s);
  return (shift_count(s) + wkv_count(s)) * float_bytes(dtype);
}

// Writes the payload of `state` at `out`.
void write_payload(char* out, const SequenceState& state, StateShape shape, StateDtype dtype) {
  if (dtype != StateDtype::kInt8) {
    write_floats(out, state.shift, dtype);
    write_floats(out + state.shift.size() * float_bytes(dtype), state.wkv, dtype);
    return;
  }
  char* q = out + int8_rows(shape) * 4;
  write_int8(out, q, state.shift, shape.channels);
  write_int8(out + uint64_t(shape.layers) * 2 * 4, q + state.shift.size(), state.wkv,
             common::kHeadSize);
}

// False for int8 rows write_int8 cannot have written.
bool read_payload(const char* in, SequenceState& state, StateShape shape, StateDtype dtype) {
  if (dtype != StateDtype::kInt8) {
    read_floats(in, state.shift, dtype);
    read_floats(in + state.shift.size() * float_bytes(dtype), state.wkv, dtype);
    return true;
  }
  const char* q = in + int8_rows(shape) * 4;
  return read_int8(in, q, state.shift, shape.channels) &&
         read_int8(in + uint64_t(shape.layers) * 2 * 4, q + state.shift.size(), state.wkv,
                   common::kHeadSize);
}

bool all_finite(const std::vector<float>& values) {
  bool ok = true;
  for (float v : values) ok &= std::isfinite(v);
  return ok;
}

}  // namespace

// ---- Dtypes ----

std::string_view state_dtype_name(StateDtype dtype) {
  switch (dtype) {
    case StateDtype::kFloat32:
      return "float32";
    case StateDtype::kFloat16:
      return "float16";
    case StateDtype::kBfloat16:
      return "bfloat16";
    case StateDtype::kInt8:
      return "int8";
  }
  return "unknown";
}

std::optional<StateDtype> parse_state_dtype(std::string_view name) {
  if (name == "float32") return StateDtype::kFloat32;
  if (name == "float16") return StateDtype::kFloat16;
  if (name == "bfloat16") return StateDtype::kBfloat16;
  if (name == "int8") return StateDtype::kInt8;
  return std::nullopt;
}

// ---- Fingerprint and shape ----

std::string StateShape::to_string() const {
  return "L=" + std::to_string(layers) + " H=" + std::to_string(heads) +
         " C=" + std::to_string(channels);
}

uint64_t state_blob_size(StateShape shape, StateDtype dtype) {
  return kStateHeaderBytes + payload_bytes(shape, dtype) + kStateTrailerBytes;
}

// ---- Encode / decode ----

std::string encode_state(const SequenceState& state, const io::ModelFingerprint& fingerprint,
                         StateShape shape, StateDtype dtype, uint64_t tokens) {
  if (state.shift.size() != shift_count(shape) || state.wkv.size() != wkv_count(shape))
    throw std::invalid_argument("encode_state: the state's sizes do not match " +
                                shape.to_string());
  const uint64_t payload = payload_bytes(shape, dtype);
  std::string out(kStateHeaderBytes + payload + kStateTrailerBytes, '\0');
  std::memcpy(out.data(), kStateMagic.data(), kStateMagic.size());
  put_le<uint16_t>(out, kOffVersion, dtype == StateDtype::kInt8 ? kStateFormatVersion : 1);
  put_le<uint16_t>(out, kOffHeaderBytes, uint16_t(kStateHeaderBytes));
  put_le<uint32_t>(out, kOffDtype, uint32_t(dtype));
  std::memcpy(out.data() + kOffFingerprint, fingerprint.bytes.data(), fingerprint.bytes.size());
  put_le<uint32_t>(out, kOffLayers, shape.layers);
  put_le<uint32_t>(out, kOffHeads, shape.heads);
  put_le<uint32_t>(out, kOffChannels, shape.channels);
  put_le<uint32_t>(out, kOffHeadSize, common::kHeadSize);
  put_le<uint64_t>(out, kOffTokens, tokens);
  put_le<uint64_t>(out, kOffPayload, payload);
  write_payload(out.data() + kStateHeaderBytes, state, shape, dtype);
  const size_t body = kStateHeaderBytes + payload;
  put_le<uint32_t>(out, body, crc32_of(std::string_view(out.data(), body)));
  return out;
}

StateBlobInfo read_state_header(std::string_view blob) {
  const size_t magic_part = std::min(blob.size(), kStateMagic.size());
  if (blob.empty() || blob.substr(0, magic_part) != kStateMagic.substr(0, magic_part))
    throw malformed("it does not start with the magic \"RWKVSTAT\" (not an rwkv-emb-server state)");
  if (blob.size() < kStateHeaderBytes)
    throw malformed("truncated: " + std::to_string(blob.size()) + " bytes, shorter than the " +
                    std::to_string(kStateHeaderBytes) + "-byte header");
  StateBlobInfo info;
  info.version = get_le<uint16_t>(blob, kOffVersion);
  if (info.version < 1 || info.version > kStateFormatVersion)
    throw malformed("format version " + std::to_string(info.version) +
                    " is not supported (this server reads versions 1 to " +
                    std::to_string(kStateFormatVersion) + ")");
  const uint16_t header_bytes = get_le<uint16_t>(blob, kOffHeaderBytes);
  if (header_bytes != kStateHeaderBytes)
    throw malformed("header size " + std::to_string(header_bytes) + ", expected " +
                    std::to_string(kStateHeaderBytes));
  const uint32_t dtype = get_le<uint32_t>(blob, kOffDtype);
  const uint32_t max_dtype =
      uint32_t(info.version == 1 ? StateDtype::kBfloat16 : StateDtype::kInt8);
  if (dtype > max_dtype)
    throw malformed("unknown dtype code " + std::to_string(dtype) + " for format version " +
                    std::to_string(info.version) + " (0 float32, 1 float16, 2 bfloat16" +
                    (info.version == 1 ? ")" : ", 3 int8)"));
  info.dtype = StateDtype(dtype);
  std::memcpy(info.fingerprint.bytes.data(), blob.data() + kOffFingerprint,
              info.fingerprint.bytes.size());
  info.shape = {get_le<uint32_t>(blob, kOffLayers), get_le<uint32_t>(blob, kOffHeads),
                get_le<uint32_t>(blob, kOffChannels)};
  const StateShape& s = info.shape;
  if (s.layers == 0 || s.layers > kMaxLayers || s.heads == 0 || s.heads > kMaxHeads ||
      s.channels == 0 || s.channels > kMaxChannels)
    throw malformed("implausible dimensions " + s.to_string());
  const uint32_t head_size = get_le<uint32_t>(blob, kOffHeadSize);
  if (head_size != common::kHeadSize)
    throw malformed("head size " + std::to_string(head_size) + ", expected " +
                    std::to_string(common::kHeadSize));
  info.tokens = get_le<uint64_t>(blob, kOffTokens);
  const uint64_t payload = get_le<uint64_t>(blob, kOffPayload);
  const uint64_t want_payload = payload_bytes(s, info.dtype);
  if (payload != want_payload)
    throw malformed("payload size field says " + std::to_string(payload) + " bytes, but " +
                    s.to_string() + " in " + std::string(state_dtype_name(info.dtype)) + " takes " +
                    std::to_string(want_payload));
  info.bytes = kStateHeaderBytes + payload + kStateTrailerBytes;
  return info;
}

StateBlobInfo inspect_state_blob(std::string_view blob) {
  const StateBlobInfo info = read_state_header(blob);
  if (blob.size() < info.bytes)
    throw malformed("truncated: " + std::to_string(blob.size()) + " bytes, the header announces " +
                    std::to_string(info.bytes));
  if (blob.size() > info.bytes)
    throw malformed("oversized: " + std::to_string(blob.size()) + " bytes, the header announces " +
                    std::to_string(info.bytes) + " (trailing data)");
  const size_t body = info.bytes - kStateTrailerBytes;
  const uint32_t stored = get_le<uint32_t>(blob, body);
  const uint32_t actual = crc32_of(blob.substr(0, body));
  if (stored != actual) throw malformed("checksum mismatch (the blob is corrupted)");
  return info;
}

SequenceState decode_state(std::string_view blob, const io::ModelFingerprint& fingerprint,
                           StateShape shape, StateBlobInfo* info_out) {
  const StateBlobInfo info = inspect_state_blob(blob);
  if (info.shape != shape)
    throw StateBlobError(StateBlobError::Kind::kShape,
                         "the state has shape " + info.shape.to_string() +
                             ", but this server's model has " + shape.to_string());
  if (info.fingerprint != fingerprint)
    throw StateBlobError(StateBlobError::Kind::kModel,
                         "the state was computed by another model (fingerprint " +
                             info.fingerprint.hex() + "; this server's model is " +
                             fingerprint.hex() + "); recompute it with POST /v1/states");
  SequenceState state;
  state.shift.resize(shift_count(shape));
  state.wkv.resize(wkv_count(shape));
  if (!read_payload(blob.data() + kStateHeaderBytes, state, shape, info.dtype))
    throw malformed(
        "an int8 row is not canonical (its scale must be 0 or a finite absmax of at least 2^-119, "
        "its values -127..127 with a ±127, all 0 for scale 0)");
  if (!all_finite(state.shift) || !all_finite(state.wkv))
    throw malformed("it holds NaN or infinite values");
  if (info_out) *info_out = info;
  return state;
}

std::string convert_state_blob(std::string_view blob, StateDtype dtype) {
  const StateBlobInfo header = read_state_header(blob);
  StateBlobInfo info;
  const SequenceState state = decode_state(blob, header.fingerprint, header.shape, &info);
  if (info.dtype == dtype) return std::string(blob);
  return encode_state(state, info.fingerprint, info.shape, dtype, info.tokens);
}

// ---- Helpers ----

uint32_t crc32_of(std::string_view data, uint32_t crc) {
  uLong c = crc;
  constexpr size_t kStep = size_t(1) << 30;  // zlib takes uInt lengths
  for (size_t off = 0; off < data.size(); off += kStep) {
    const size_t n = std::min(kStep, data.size() - off);
    c = ::crc32(c, reinterpret_cast<const Bytef*>(data.data() + off), uInt(n));
  }
  return uint32_t(c);
}

}  // namespace rwkv::states
