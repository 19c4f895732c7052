#include "server/http/auth.h"

#include <algorithm>

#include "engine/common/sha256.h"

namespace rwkv::server::http {

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
  // Digests of equal length: the time taken reveals neither the contents nor
  // the lengths of the keys.
  auto bytes = [](const common::Sha256Digest& d) {
    return std::string_view(reinterpret_cast<const char*>(d.data()), d.size());
  };
  const common::Sha256Digest presented = common::sha256(header.substr(kBearer.size()));
  bool ok = false;
  for (const std::string& key : keys)  // no early exit
    ok |= constant_time_equal(bytes(presented), bytes(common::sha256(key)));
  return ok;
}

std::string state_owner(const std::vector<std::string>& keys, std::string_view header) {
  if (keys.empty()) return "";
  constexpr std::string_view kBearer = "Bearer ";
  const std::string_view presented =
      header.starts_with(kBearer) ? header.substr(kBearer.size()) : header;
  const auto digest =
      common::sha256(std::string("rwkv-emb-server state owner\n").append(presented));
  return common::to_hex(digest.data(), 16);
}

}  // namespace rwkv::server::http
