#include "api/openai_embeddings.h"

#include <algorithm>
#include <limits>

#include "api/api_error.h"
#include "api/json_fields.h"
#include "engine/text/tokenizer.h"

namespace rwkv::api {

namespace {

using nlohmann::json;

std::string indexed(std::string_view base, size_t i) {
  return std::string(base) + "[" + std::to_string(i) + "]";
}

ApiError input_error(const std::string& message) {
  return ApiError::bad_request(message, std::string("input"));
}

int32_t token_id(const json& value, const std::string& where) {
  const auto id = integer_value(value);
  if (!id) {
    throw input_error("'" + where + "' must be an integer token id, got " + describe_value(value));
  }
  if (*id < 0) {
    throw input_error("'" + where + "' is " + std::to_string(*id) +
                      ": token ids must be between 0 and 65535");
  }
  if (*id >= text::Tokenizer::kVocabSize) {
    // The usual sender: LangChain's OpenAIEmbeddings, which tokenizes with
    // tiktoken (cl100k_base, ids up to ~100k) before calling the API.
    throw input_error("'" + where + "' is " + std::to_string(*id) +
                      ": token ids must be < 65536 (the RWKV World vocabulary). Ids this large "
                      "are usually tiktoken (cl100k_base) ids: if you use LangChain "
                      "OpenAIEmbeddings, set check_embedding_ctx_length=False so that it sends "
                      "the texts");
  }
  // Every id below 65536 is a row of the embedding table, so the model
  // computes it (65530..65534 are never produced by the tokenizer).
  return static_cast<int32_t>(*id);
}

std::vector<int32_t> token_list(const json& array, const std::string& where,
                                const RequestLimits& limits) {
  if (array.size() > limits.max_input_tokens) {
    throw ApiError::too_many_tokens("'" + where + "'", array.size(), limits.max_input_tokens,
                                    "input");
  }
  std::vector<int32_t> ids;
  ids.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) ids.push_back(token_id(array[i], indexed(where, i)));
  return ids;
}

EmbeddingInput text_input(const json& value, const std::string& where,
                          const RequestLimits& limits) {
  EmbeddingInput input;
  input.text = value.get<std::string>();
  check_text_bytes(input.text, where, "input", limits.max_input_bytes);
  return input;
}

EmbeddingInput token_input(const json& array, const std::string& where,
                           const RequestLimits& limits) {
  EmbeddingInput input;
  input.is_tokens = true;
  input.tokens = token_list(array, where, limits);
  return input;
}

constexpr const char* kInputForms =
    "a string, an array of strings, an array of token ids or an array of token-id arrays";

// string | string[] | int[] | int[][]; the first item of an array decides
// which form it is, and every other item must have the same form.
std::vector<EmbeddingInput> parse_input(const json& input, const RequestLimits& limits) {
  std::vector<EmbeddingInput> out;
  if (input.is_string()) {
    out.push_back(text_input(input, "input", limits));
    return out;
  }
  if (!input.is_array()) {
    throw input_error(std::string("'input' must be ") + kInputForms + ", got " +
                      describe_value(input));
  }
  if (input.empty()) throw input_error("'input' must not be an empty array");

  const json& first = input.front();
  if (first.is_number()) {  // int[]: a single token-id input
    out.push_back(token_input(input, "input", limits));
    return out;
  }
  if (!first.is_string() && !first.is_array()) {
    throw input_error(std::string("'input[0]' must be a string or an array of token ids, got ") +
                      describe_value(first));
  }
  check_item_count(input.size(), "input", limits.max_inputs);
  out.reserve(input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    const json& item = input[i];
    const std::string where = indexed("input", i);
    if (first.is_string()) {
      if (!item.is_string()) {
        throw input_error("'" + where +
                          "' must be a string like 'input[0]' (arrays cannot mix "
                          "texts and token ids), got " +
                          describe_value(item));
      }
      out.push_back(text_input(item, where, limits));
    } else {
      if (!item.is_array()) {
        throw input_error("'" + where +
                          "' must be an array of token ids like 'input[0]' "
                          "(arrays cannot mix texts and token ids), got " +
                          describe_value(item));
      }
      out.push_back(token_input(item, where, limits));
    }
  }
  return out;
}

}  // namespace

EmbeddingsRequest parse_embeddings_request(const json& body, const RequestLimits& limits) {
  require_object(body);
  EmbeddingsRequest request;
  const json* input = find_field(body, "input");
  if (!input) throw input_error("'input' is required");
  request.inputs = parse_input(*input, limits);
  request.model = optional_string(body, "model").value_or("");
  if (const auto format = optional_enum(body, "encoding_format", {"float", "base64"})) {
    request.base64 = *format == "base64";
  }
  if (const auto dimensions =
          optional_int(body, "dimensions", 1, std::numeric_limits<int>::max())) {
    request.dimensions = static_cast<int>(*dimensions);
  }
  request.text = parse_text_options(body, kAllInputTypes);
  if (const auto task = optional_enum(body, "task", {"retrieval", "sts", "classification"}))
    apply_task(request.text, *task);
  if (request.text.instruction &&
      std::any_of(request.inputs.begin(), request.inputs.end(),
                  [](const EmbeddingInput& in) { return in.is_tokens; })) {
    throw ApiError::bad_request(
        "'instruction' applies to texts only: token-id inputs are used as given (put the "
        "instruction's tokens in the ids, see /tokenize with as_embedded)",
        "instruction");
  }
  if (const auto normalize = optional_bool(body, "normalize")) request.normalize = *normalize;
  // `user` and unknown fields are ignored, as OpenAI-compatible servers do.
  return request;
}

}  // namespace rwkv::api
