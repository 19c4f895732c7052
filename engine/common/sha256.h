// SHA-256 (FIPS 180-4) through OpenSSL's EVP interface: the project's one
// digest (state owners, downloaded checkpoints), and hex for printing digests.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace rwkv::common {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental: update() with each piece of the data, then finish() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view data);
  Sha256Digest finish();

 private:
  evp_md_ctx_st* ctx_;
};

Sha256Digest sha256(std::string_view data);

// Lower-case hex of `n` bytes.
std::string to_hex(const uint8_t* bytes, size_t n);

}  // namespace rwkv::common
