// `POST /tokenize` and `POST /detokenize`: request parsing and validation.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/input_protocol.h"

namespace rwkv::api {

struct TokenizeRequest {
  std::vector<std::string> texts;  // from "input" (or "content" / "inputs")
  bool was_list = false;           // answer a list of id lists, not one list
  bool add_eos = true;
  // Opt-in: the ids the embedding routes run for each text (instruction and
  // EOS layout of `text`, resolved like /v1/embeddings), instead of the bare
  // tokenization.
  bool as_embedded = false;
  TextOptions text;
};

// {"input" | "content" | "inputs": string | string[], "add_eos"?: bool,
//  "as_embedded"?: bool, "input_type"?, "instruction"?, "eos_protocol"?};
// the first text key present (and not null) wins. The protocol fields need
// as_embedded, which excludes add_eos. Throws ApiError 400 naming the field.
TokenizeRequest parse_tokenize_request(const nlohmann::json& body);

// {"tokens": [id, ...]}: every id is EOS, token 0 or in the World vocabulary
// (Tokenizer::is_known). Throws ApiError 400 naming "tokens".
std::vector<int32_t> parse_detokenize_request(const nlohmann::json& body);

}  // namespace rwkv::api
