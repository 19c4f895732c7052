#include "api/tokenize_request.h"

#include <optional>

#include "api/api_error.h"
#include "api/json_fields.h"
#include "engine/text/tokenizer.h"

namespace rwkv::api {

using nlohmann::json;

TokenizeRequest parse_tokenize_request(const json& body) {
  require_object(body);
  TokenizeRequest request;
  const std::optional<bool> add_eos = optional_bool(body, "add_eos");
  request.add_eos = add_eos.value_or(true);
  request.as_embedded = optional_bool(body, "as_embedded").value_or(false);
  request.text = parse_text_options(body, kAllInputTypes);
  if (request.as_embedded && add_eos)
    throw ApiError::bad_request(
        "'add_eos' does not apply with 'as_embedded': the input protocol places the EOS tokens",
        "add_eos");
  const TextOptions& t = request.text;
  if (!request.as_embedded && (t.input_type || t.instruction || t.eos_protocol)) {
    const char* field = t.input_type    ? "input_type"
                        : t.instruction ? "instruction"
                                        : "eos_protocol";
    throw ApiError::bad_request("'" + std::string(field) +
                                    "' needs \"as_embedded\": true (the ids the embedding "
                                    "routes run)",
                                field);
  }
  for (const char* key : {"input", "content", "inputs"}) {
    const json* value = find_field(body, key);
    if (!value) continue;
    const auto wrong_type = [key] {
      return ApiError::bad_request(
          "'" + std::string(key) + "' must be a string or a list of strings", key);
    };
    request.was_list = value->is_array();
    if (value->is_string()) {
      request.texts.push_back(value->get<std::string>());
    } else if (value->is_array()) {
      for (const json& text : *value) {
        if (!text.is_string()) throw wrong_type();
        request.texts.push_back(text.get<std::string>());
      }
    } else {
      throw wrong_type();
    }
    return request;
  }
  throw ApiError::bad_request("'input' is required", "input");
}

std::vector<int32_t> parse_detokenize_request(const json& body) {
  require_object(body);
  const json* tokens = find_field(body, "tokens");
  if (!tokens || !tokens->is_array())
    throw ApiError::bad_request("'tokens' must be a list of token ids", "tokens");
  std::vector<int32_t> ids;
  ids.reserve(tokens->size());
  for (const json& token : *tokens) {
    const std::optional<int64_t> id = integer_value(token);
    if (!id || *id < 0 || *id >= text::Tokenizer::kVocabSize ||
        !text::Tokenizer::world().is_known(static_cast<int32_t>(*id)))
      throw ApiError::bad_request(
          "'tokens' holds " + describe_value(token) + ", not an id of the vocabulary", "tokens");
    ids.push_back(static_cast<int32_t>(*id));
  }
  return ids;
}

}  // namespace rwkv::api
