#include "server/auth.h"

#include <algorithm>

#include "engine/sha256.h"

namespace rwkv::server {

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() != b.size();
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool authorized(const std::vector<std::string>& keys, std::string_view header) {
  if (keys.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  if (!header.starts_with(kBearer)) return false;
  const std::string_view presented = header.substr(kBearer.size());
  bool ok = false;
  for (const std::string& key : keys) ok |= constant_time_equal(presented, key);  // no early exit
  return ok;
}

std::string state_owner(const std::vector<std::string>& keys, std::string_view header) {
  if (keys.empty()) return "";
  constexpr std::string_view kBearer = "Bearer ";
  const std::string_view presented =
      header.starts_with(kBearer) ? header.substr(kBearer.size()) : header;
  const auto digest = sha256(std::string("rwkv-emb-server state owner\n").append(presented));
  return to_hex(digest.data(), 16);
}

}  // namespace rwkv::server
