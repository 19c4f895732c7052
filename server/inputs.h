// Turning request texts into token sequences under the server's length limit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/cohere_embed.h"

namespace rwkv::server {

// The text's ids plus EOS. Longer than `max_tokens` (EOS included): 400
// naming `where` when `truncate` is kNone, else tokens are dropped from the
// start or the end (EOS is kept).
std::vector<int32_t> embedding_tokens(std::string_view text, size_t max_tokens,
                                      api::Truncate truncate, const std::string& where,
                                      const std::string& param);

// Token ids given by the client, used as given; 400 without EOS (pooling
// needs one) or over `max_tokens`.
std::vector<int32_t> embedding_tokens(std::vector<int32_t> ids, size_t max_tokens,
                                      const std::string& where, const std::string& param);

}  // namespace rwkv::server
