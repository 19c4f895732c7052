// Optional API-key authentication: `Authorization: Bearer <key>`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rwkv::server::http {

// True when no keys are configured, or the header carries one of them. The
// SHA-256 digests of the keys are compared in constant time, all of them, so
// response timing reveals nothing about the keys, not even their lengths.
bool authorized(const std::vector<std::string>& keys, std::string_view authorization_header);

// Who owns the states a request creates or may use (/v1/states): "" when no
// keys are configured, otherwise 32 hex digits of SHA-256 over the presented
// key (never the key itself: owner ids are written to disk and Redis). Call
// it after authorized() accepted the header.
std::string state_owner(const std::vector<std::string>& keys,
                        std::string_view authorization_header);

// Equality whose running time depends only on the lengths, not the contents.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace rwkv::server::http
