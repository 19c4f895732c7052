#include "engine/io/fingerprint.h"

#include <bit>
#include <cstring>

#include "engine/common/sha256.h"

namespace rwkv::io {
namespace {

// A streaming 4-lane multiply-rotate hash (xxHash-style construction, own
// parameters) with a 256-bit running state and a 128-bit result.
class FastHasher {
 public:
  void update(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    total_ += n;
    if (buffered_ > 0) {
      const size_t take = std::min(n, sizeof(buffer_) - buffered_);
      std::memcpy(buffer_ + buffered_, p, take);
      buffered_ += take;
      p += take;
      n -= take;
      if (buffered_ < sizeof(buffer_)) return;
      stripe(buffer_);
      buffered_ = 0;
    }
    for (; n >= sizeof(buffer_); p += sizeof(buffer_), n -= sizeof(buffer_)) stripe(p);
    std::memcpy(buffer_, p, n);
    buffered_ = n;
  }
  void update_u64(uint64_t v) { update(&v, sizeof(v)); }

  ModelFingerprint finish() {
    uint64_t tail[4] = {};
    std::memcpy(tail, buffer_, buffered_);
    for (int i = 0; i < 4; ++i) lane_[i] = round(lane_[i], tail[i] ^ (uint64_t(buffered_) << 56));
    const uint64_t h1 = avalanche(std::rotl(lane_[0], 1) + std::rotl(lane_[1], 7) +
                                  std::rotl(lane_[2], 12) + std::rotl(lane_[3], 18) + total_ * kP5);
    const uint64_t h2 = avalanche((lane_[0] ^ std::rotl(lane_[2], 29)) * kP3 +
                                  (lane_[1] ^ std::rotl(lane_[3], 41)) * kP4 + h1 + total_);
    ModelFingerprint f;
    std::memcpy(f.bytes.data(), &h1, 8);
    std::memcpy(f.bytes.data() + 8, &h2, 8);
    return f;
  }

 private:
  static constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full,
                            kP3 = 0x165667B19E3779F9ull, kP4 = 0x85EBCA77C2B2AE63ull,
                            kP5 = 0x27D4EB2F165667C5ull;
  static uint64_t round(uint64_t acc, uint64_t input) {
    return std::rotl(acc + input * kP2, 31) * kP1;
  }
  static uint64_t avalanche(uint64_t h) {
    h ^= h >> 33;
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    h ^= h >> 32;
    return h;
  }
  void stripe(const uint8_t* p) {
    uint64_t w[4];
    std::memcpy(w, p, sizeof(w));
    for (int i = 0; i < 4; ++i) lane_[i] = round(lane_[i], w[i]);
  }

  uint64_t lane_[4] = {kP1 + kP2, kP2, 0x5257'4B56'2D65'6D62ull /* "RWKV-emb" */, 0 - kP1};
  uint8_t buffer_[32];
  size_t buffered_ = 0;
  uint64_t total_ = 0;
};

}  // namespace

std::string ModelFingerprint::hex() const { return common::to_hex(bytes.data(), bytes.size()); }

ModelFingerprint model_fingerprint(const Checkpoint& embedding) {
  FastHasher h;
  h.update("rwkv-emb-fingerprint-v1", 23);
  h.update_u64(embedding.tensors.size());
  for (const auto& [name, tensor] : embedding.tensors) {  // std::map: name order
    h.update_u64(name.size());
    h.update(name.data(), name.size());
    h.update_u64(tensor.shape.size());
    for (int64_t d : tensor.shape) h.update_u64(uint64_t(d));
    h.update_u64(tensor.data.size());
    h.update(tensor.data.data(), tensor.data.size() * sizeof(float));
  }
  return h.finish();
}

}  // namespace rwkv::io
