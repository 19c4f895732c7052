// Optional API-key authentication: `Authorization: Bearer <key>`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rwkv::server {

// True when no keys are configured, or the header carries one of them. Keys
// are compared in constant time so response timing reveals nothing about them.
bool authorized(const std::vector<std::string>& keys, std::string_view authorization_header);

// Equality whose running time depends only on the lengths, not the contents.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace rwkv::server
