#include "api/cohere_embed.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <utility>

#include "api/api_error.h"
#include "api/json_fields.h"

namespace rwkv::api {

namespace {

using nlohmann::json;

constexpr std::array kAllTypes = {EmbeddingType::kFloat,   EmbeddingType::kInt8,
                                  EmbeddingType::kUint8,   EmbeddingType::kBinary,
                                  EmbeddingType::kUbinary, EmbeddingType::kBase64};

std::string indexed(std::string_view base, size_t i) {
  return std::string(base) + "[" + std::to_string(i) + "]";
}

std::vector<std::string> parse_texts(const json& texts, const RequestLimits& limits) {
  if (!texts.is_array()) {
    throw ApiError::bad_request("'texts' must be an array of strings, got " + describe_value(texts),
                                "texts");
  }
  if (texts.empty()) throw ApiError::bad_request("'texts' must not be empty", "texts");
  check_item_count(texts.size(), "texts", limits.max_inputs);
  std::vector<std::string> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!texts[i].is_string()) {
      throw ApiError::bad_request(
          "'" + indexed("texts", i) + "' must be a string, got " + describe_value(texts[i]),
          "texts");
    }
    out.push_back(texts[i].get<std::string>());
    check_text_bytes(out.back(), indexed("texts", i), "texts", limits.max_input_bytes);
  }
  return out;
}

// v2 `inputs`: [{"content": [{"type": "text", "text": "..."}, ...]}, ...].
std::vector<std::string> parse_inputs(const json& inputs, const RequestLimits& limits) {
  const auto bad = [](const std::string& message) {
    return ApiError::bad_request(message, std::string("inputs"));
  };
  if (!inputs.is_array()) {
    throw bad("'inputs' must be an array of {\"content\": [...]} objects, got " +
              describe_value(inputs));
  }
  if (inputs.empty()) throw bad("'inputs' must not be empty");
  check_item_count(inputs.size(), "inputs", limits.max_inputs);
  std::vector<std::string> out;
  out.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string where = indexed("inputs", i);
    const json* content = find_field(inputs[i], "content");
    if (!content || !content->is_array() || content->empty()) {
      throw bad("'" + where + ".content' must be a non-empty array of content parts");
    }
    std::string text;
    for (size_t k = 0; k < content->size(); ++k) {
      const json& part = (*content)[k];
      const std::string part_where = where + ".content" + "[" + std::to_string(k) + "]";
      const json* type = find_field(part, "type");
      if (type && type->is_string() && *type != "text") {
        throw bad("'" + part_where + "' has type " + describe_value(*type) +
                  ": this server embeds text only");
      }
      const json* part_text = find_field(part, "text");
      if (!part_text || !part_text->is_string()) {
        throw bad("'" + part_where + "' must be {\"type\": \"text\", \"text\": <string>}");
      }
      if (k > 0) text += '\n';
      text += part_text->get_ref<const std::string&>();
    }
    check_text_bytes(text, where, "inputs", limits.max_input_bytes);
    out.push_back(std::move(text));
  }
  return out;
}

std::vector<EmbeddingType> parse_embedding_types(const std::vector<std::string>& names) {
  std::vector<EmbeddingType> out;
  for (size_t i = 0; i < names.size(); ++i) {
    const auto it = std::find_if(kAllTypes.begin(), kAllTypes.end(), [&](EmbeddingType type) {
      return embedding_type_name(type) == names[i];
    });
    if (it == kAllTypes.end()) {
      throw ApiError::bad_request("'" + indexed("embedding_types", i) +
                                      "' must be one of \"float\", \"int8\", \"uint8\", "
                                      "\"binary\", \"ubinary\", \"base64\", got " +
                                      describe_value(json(names[i])),
                                  "embedding_types");
    }
    if (std::find(out.begin(), out.end(), *it) == out.end()) out.push_back(*it);
  }
  return out;
}

bool wants_binary(const std::vector<EmbeddingType>& types) {
  return std::any_of(types.begin(), types.end(), [](EmbeddingType type) {
    return type == EmbeddingType::kBinary || type == EmbeddingType::kUbinary;
  });
}

Truncate parse_truncate(const json& body) {
  const auto value = optional_string(body, "truncate");
  if (!value) return Truncate::kEnd;
  std::string upper = *value;  // the SDK sends upper case; be lenient about it
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper == "NONE") return Truncate::kNone;
  if (upper == "START") return Truncate::kStart;
  if (upper == "END") return Truncate::kEnd;
  throw ApiError::bad_request("'truncate' must be one of \"NONE\", \"START\", \"END\", got " +
                                  describe_value(body.at("truncate")),
                              "truncate");
}

}  // namespace

std::string_view embedding_type_name(EmbeddingType type) {
  switch (type) {
    case EmbeddingType::kFloat:
      return "float";
    case EmbeddingType::kInt8:
      return "int8";
    case EmbeddingType::kUint8:
      return "uint8";
    case EmbeddingType::kBinary:
      return "binary";
    case EmbeddingType::kUbinary:
      return "ubinary";
    case EmbeddingType::kBase64:
      return "base64";
  }
  return "";
}

CohereEmbedRequest parse_cohere_embed_request(const json& body, int api_version,
                                              int model_dimension, const RequestLimits& limits) {
  require_object(body);
  CohereEmbedRequest request;
  request.api_version = api_version;

  if (find_field(body, "images")) {
    throw ApiError::bad_request("'images' is not supported: this server embeds text only",
                                "images");
  }
  const json* texts = find_field(body, "texts");
  const json* inputs = api_version >= 2 ? find_field(body, "inputs") : nullptr;
  if (texts && inputs) {
    throw ApiError::bad_request("give either 'texts' or 'inputs', not both", "texts");
  }
  if (texts) {
    request.texts = parse_texts(*texts, limits);
  } else if (inputs) {
    request.texts = parse_inputs(*inputs, limits);
  } else {
    throw ApiError::bad_request(
        api_version >= 2 ? "'texts' (or 'inputs') is required" : "'texts' is required", "texts");
  }

  request.model = api_version >= 2 ? required_string(body, "model")
                                   : optional_string(body, "model").value_or("");

  if (optional_string(body, "input_type") == "image") {
    throw ApiError::bad_request(
        "'input_type' \"image\" is not supported: this server embeds text only", "input_type");
  }
  request.text = parse_text_options(body, kCohereInputTypes);
  if (!request.text.input_type && api_version >= 2) {
    // Cohere's wording for the same mistake.
    throw ApiError::bad_request(
        "'input_type' is required: valid input_type must be provided (one of "
        "\"search_document\", \"search_query\", \"classification\", \"clustering\")",
        "input_type");
  }

  // An empty list counts as absent, like null.
  const auto types = optional_string_list(body, "embedding_types");
  if (types && !types->empty()) {
    request.embedding_types = parse_embedding_types(*types);
  }
  request.by_type = api_version >= 2 || (types && !types->empty());

  request.truncate = parse_truncate(body);
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (const auto max_tokens = optional_int(body, "max_tokens", 1, kIntMax)) {
    request.max_tokens = static_cast<int>(*max_tokens);
  }
  if (const auto dimension = optional_int(body, "output_dimension", 1, kIntMax)) {
    if (*dimension != model_dimension) {
      throw ApiError::bad_request("'output_dimension' must be " + std::to_string(model_dimension) +
                                      ", the model's width (it is not trained for shorter "
                                      "embeddings)",
                                  "output_dimension");
    }
    request.output_dimension = static_cast<int>(*dimension);
  }
  // Checked here, not on the vectors: nothing may be refused once the model ran.
  if (wants_binary(request.embedding_types) && model_dimension % 8 != 0) {
    throw ApiError::bad_request(
        "binary and ubinary embeddings need a dimension that is a "
        "multiple of 8; this model's is " +
            std::to_string(model_dimension),
        "embedding_types");
  }
  return request;
}

}  // namespace rwkv::api
