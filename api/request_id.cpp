#include "api/request_id.h"

#include <cstdint>
#include <random>

namespace rwkv::api {

std::string random_uuid() {
  // One generator per thread: no lock, and seeded so that threads and
  // processes differ.
  thread_local std::mt19937_64 generator{[] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }()};
  uint64_t high = generator();
  uint64_t low = generator();
  high = (high & ~0xF000ull) | 0x4000ull;                // version 4
  low = (low & ~(0xC000ull << 48)) | (0x8000ull << 48);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 32; ++i) {
    const uint64_t word = i < 16 ? high : low;
    const int shift = 60 - 4 * (i % 16);
    if (i == 8 || i == 12 || i == 16 || i == 20) out += '-';
    out += kHex[(word >> shift) & 0xF];
  }
  return out;
}

}  // namespace rwkv::api
