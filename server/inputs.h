// Embedding inputs to token sequences: the one text -> (instruction, EOS
// protocol) -> ids step of every embedding route, /tokenize and the `embed`
// CLI (docs/model.md "Input protocol"), and the checks on
// token-id inputs.
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

namespace rwkv::server {

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

// The server's protocol defaults (flags) applied to each text.
class InputPreprocessor {
 public:
  // The defaults of docs/model.md: chunked, and its table of instructions.
  InputPreprocessor();
  InputPreprocessor(api::EosProtocol protocol,
                    std::array<std::string, api::kAllInputTypes.size()> descriptions);

  static std::string_view default_description(api::InputType type);
  const std::string& description(api::InputType type) const;
  api::EosProtocol protocol() const { return protocol_; }

  // The ids of `text` as `options` ask (absent fields: this preprocessor's
  // defaults; `type` is the resolved input type). A text of more than
  // `max_tokens` own tokens: 400 naming `where` when `truncate` is kNone,
  // else its tokens are cut at the start or the end, before the instruction
  // is added.
  PreparedText prepare(std::string_view text, api::InputType type, const api::TextOptions& options,
                       size_t max_tokens, api::Truncate truncate, const std::string& where,
                       const std::string& param) const;

 private:
  api::EosProtocol protocol_;
  std::array<std::string, api::kAllInputTypes.size()> descriptions_;
};

// Token ids given by the client, used as given (the parsers checked each id
// and the length); 400 without EOS, which pooling needs.
std::vector<int32_t> embedding_tokens(std::vector<int32_t> ids, const std::string& where,
                                      const std::string& param);

}  // namespace rwkv::server
