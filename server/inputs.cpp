#include "server/inputs.h"

#include <algorithm>

#include "api/api_error.h"
#include "engine/tokenizer.h"

namespace rwkv::server {
namespace {

api::ApiError too_long(const std::string& where, const std::string& param, size_t n, size_t max) {
  return api::ApiError::bad_request(where + " has " + std::to_string(n) +
                                        " tokens, more than the limit of " + std::to_string(max) +
                                        "; shorten it or ask for truncation",
                                    param);
}

}  // namespace

std::vector<int32_t> embedding_tokens(std::string_view text, size_t max_tokens,
                                      api::Truncate truncate, const std::string& where,
                                      const std::string& param) {
  std::vector<int32_t> ids = Tokenizer::world().encode(text, false);
  const size_t keep = max_tokens > 0 ? max_tokens - 1 : 0;  // room for EOS
  if (ids.size() > keep) {
    if (truncate == api::Truncate::kNone) throw too_long(where, param, ids.size() + 1, max_tokens);
    if (truncate == api::Truncate::kStart)
      ids.erase(ids.begin(), ids.end() - keep);
    else
      ids.resize(keep);
  }
  ids.push_back(Tokenizer::kEos);
  return ids;
}

std::vector<int32_t> embedding_tokens(std::vector<int32_t> ids, size_t max_tokens,
                                      const std::string& where, const std::string& param) {
  // Ids without EOS have no embedding (upstream pools nothing: NaN). Their
  // usual sender is LangChain's OpenAIEmbeddings, whose tiktoken ids are
  // mostly < 65536 too: appending EOS would embed them as garbage, silently.
  if (std::find(ids.begin(), ids.end(), Tokenizer::kEos) == ids.end())
    throw api::ApiError::bad_request(
        where +
            " has no EOS token (65535). Token ids are used as given, and the embedding pools "
            "the EOS positions: append 65535 to RWKV World ids (/tokenize does). Ids from "
            "another tokenizer mean nothing to this model: if you use LangChain "
            "OpenAIEmbeddings, set check_embedding_ctx_length=False so that it sends the texts",
        param);
  if (ids.size() > max_tokens) throw too_long(where, param, ids.size(), max_tokens);
  return ids;
}

}  // namespace rwkv::server
