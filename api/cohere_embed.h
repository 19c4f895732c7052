// Cohere `POST /v1/embed` and `/v2/embed`: request parsing and validation
// (its answer: api/response_bodies.h).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/input_protocol.h"
#include "api/limits.h"

namespace rwkv::api {

enum class EmbeddingType { kFloat, kInt8, kUint8, kBinary, kUbinary, kBase64 };
// "float", "int8", "uint8", "binary", "ubinary", "base64".
std::string_view embedding_type_name(EmbeddingType type);

// What to do with a text longer than `max_tokens`: fail, or drop tokens from
// the start or the end.
enum class Truncate { kNone, kStart, kEnd };

struct CohereEmbedRequest {
  int api_version = 1;             // 1 or 2 (the route's path)
  std::vector<std::string> texts;  // at least one; "" allowed (embeds to just EOS)
  std::string model;               // required in v2, "" when absent in v1
  // input_type (absent only in v1), and the extensions instruction and
  // eos_protocol; the route resolves what is absent.
  TextOptions text;
  // Requested types in request order without duplicates; {kFloat} when absent.
  std::vector<EmbeddingType> embedding_types{EmbeddingType::kFloat};
  // Response shape: v1 without `embedding_types` answers "embeddings_floats"
  // (a bare list); otherwise "embeddings_by_type" (an object keyed by type).
  bool by_type = true;
  Truncate truncate = Truncate::kEnd;   // Cohere's default
  std::optional<int> max_tokens;        // positive
  std::optional<int> output_dimension;  // the model's width when given
};

// `api_version` is 1 or 2; `model_dimension` is the model's width, which
// `output_dimension` must equal and binary types must divide by 8 (so that
// the response cannot fail once the model ran). Throws ApiError (400 naming
// the field, 413 over `limits`). v2 requires `model` and `input_type`, and
// takes the texts from
// `texts` or from `inputs` ([{"content": [{"type": "text", "text": ...}]}],
// the text parts of one input joined by "\n"). Images are refused (400).
CohereEmbedRequest parse_cohere_embed_request(const nlohmann::json& body, int api_version,
                                              int model_dimension,
                                              const RequestLimits& limits = {});

}  // namespace rwkv::api
