// Everything that turns a request's texts into token sequences, in one place:
// embedding inputs (text -> instruction -> EOS protocol -> ids, docs/model.md
// "Input protocol"), the reranker's online pairs, offline queries and the
// document states of /v1/states (docs/model.md "Reranker"), truncation and the
// token limit. Used by every service, /tokenize and the command-line tools.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/cohere_embed.h"
#include "api/input_protocol.h"
#include "engine/model/engine.h"

namespace rwkv::server::service {

// The chunked protocol's numbers: EOS every 512 tokens of a 2048 context.
inline constexpr size_t kProtocolContext = 2048;
inline constexpr size_t kProtocolChunk = 512;
inline constexpr size_t kProtocolEos = kProtocolContext / kProtocolChunk;  // 4

// The head an input type is embedded with.
model::EmbeddingHead head_of(api::InputType type);

// `text_ids` (no EOS) laid out with the EOS tokens of `protocol`.
std::vector<int32_t> eos_layout(std::span<const int32_t> text_ids, api::EosProtocol protocol);

// "Instruct: {description}\nQuery: {text}"; `text` itself when `description`
// is empty.
std::string instructed_text(std::string_view description, std::string_view text);

// A text's token sequence, and what it costs.
struct PreparedText {
  std::vector<int32_t> ids;  // what the model runs: instruction, text, EOS tokens
  size_t text_tokens = 0;    // the text's own tokens (no instruction, no EOS)
};

class Preprocessor {
 public:
  // The defaults of docs/model.md (chunked, its table of instructions), no token limit.
  Preprocessor();
  // The server's flags: the protocol, the instruction per input type, and
  // --max-input-tokens.
  Preprocessor(api::EosProtocol protocol,
               std::array<std::string, api::kAllInputTypes.size()> descriptions,
               size_t max_input_tokens);

  static std::string_view default_description(api::InputType type);
  const std::string& description(api::InputType type) const;
  api::EosProtocol protocol() const { return protocol_; }
  size_t max_input_tokens() const { return max_input_tokens_; }

  // The ids of an embedding input `text` as `options` ask (absent fields:
  // this preprocessor's defaults; `type` is the resolved input type). A text
  // of more than `max_tokens` own tokens (at most max_input_tokens()): 400
  // naming `where` when `truncate` is kNone, else its tokens are cut at the
  // start or the end, before the instruction is added.
  PreparedText embedding_text(std::string_view text, api::InputType type,
                              const api::TextOptions& options, size_t max_tokens,
                              api::Truncate truncate, const std::string& where,
                              const std::string& param) const;

  // Token ids given by the client, used as given (the parsers checked each id
  // and the length); 400 without EOS, which pooling needs.
  std::vector<int32_t> embedding_ids(std::vector<int32_t> ids, const std::string& where,
                                     const std::string& param) const;

  // The online sequence of (document, query), EOS included. A document of
  // more than `max_document_tokens` tokens keeps its first ones (cut at the
  // token level: cutting its text and encoding the template around it could
  // split a UTF-8 character or tokenize the cut anew). Over the token limit:
  // 400 naming `where`.
  std::vector<int32_t> rerank_pair(const std::string& document, const std::string& query,
                                   std::optional<int> max_document_tokens,
                                   const std::string& where) const;
  // Offline: the query run on a copy of a cached document state, EOS included.
  std::vector<int32_t> rerank_query(const std::string& query) const;
  // Offline: the cached part of a document (no EOS), the state /v1/states stores.
  std::vector<int32_t> state_document(const std::string& document, const std::string& where) const;

 private:
  api::EosProtocol protocol_;
  std::array<std::string, api::kAllInputTypes.size()> descriptions_;
  size_t max_input_tokens_;
};

}  // namespace rwkv::server::service
