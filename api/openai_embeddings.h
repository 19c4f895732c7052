// OpenAI `POST /v1/embeddings`: request parsing and validation (its answer:
// api/response_bodies.h).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/input_protocol.h"
#include "api/limits.h"

namespace rwkv::api {

// One item of `input`: a text (laid out by the input protocol), or token
// ids used as given (they must hold EOS).
struct EmbeddingInput {
  bool is_tokens = false;
  std::string text;             // when !is_tokens; may be "" (embeds to just EOS)
  std::vector<int32_t> tokens;  // when is_tokens; every id is < 65536
};

struct EmbeddingsRequest {
  std::vector<EmbeddingInput> inputs;  // at least one
  std::string model;                   // "" when absent
  bool base64 = false;                 // encoding_format == "base64"
  std::optional<int> dimensions;       // positive; the route checks it against the model
  // Extensions: input_type (or the input type `task` implies), instruction
  // (texts only), eos_protocol. The route resolves what is absent.
  TextOptions text;
  bool normalize = true;  // extension: L2-normalize the output
};

// `input`: string | string[] | int[] | int[][]. Throws ApiError: 400 for a
// bad field (param names it), 413 for more inputs, bytes or tokens than
// `limits` allow.
EmbeddingsRequest parse_embeddings_request(const nlohmann::json& body,
                                           const RequestLimits& limits = {});

}  // namespace rwkv::api
