// Rerank requests: Cohere `/v1/rerank` (also the Jina shape), Cohere
// `/v2/rerank`, and TEI's `/rerank` (`texts`); their answers: api/response_bodies.h.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/limits.h"

namespace rwkv::api {

enum class RerankApi {
  kCohereV1,  // /v1/rerank: Cohere v1 and Jina (same request and a superset response)
  kCohereV2,  // /v2/rerank
  kTei,       // /rerank with `texts`: TEI
};

// The bare `/rerank` route serves two families: TEI when the body has
// `texts`, otherwise the Cohere v1 / Jina shape (vLLM and llama.cpp clients).
RerankApi rerank_api_for_bare_route(const nlohmann::json& body);

struct RerankDocument {
  enum class Kind { kText, kState };
  Kind kind = Kind::kText;
  std::string text;      // kText: what the query is ranked against (may be "")
  std::string state_id;  // kState: a cached document state (/v1/states)
  // What `return_documents` echoes: {"text": s} for a string, the object as
  // sent for an object document ({"text", ...extra fields} or {"state_id"}).
  nlohmann::json source;
};

struct RerankRequest {
  RerankApi api = RerankApi::kCohereV1;
  std::string model;                      // "" when absent
  std::string query;                      // not empty or whitespace-only
  std::vector<RerankDocument> documents;  // at least one
  size_t top_n = 0;                       // 1..documents.size() after parsing
  bool return_documents = false;          // TEI: `return_text`
  std::optional<int> max_tokens_per_doc;  // positive; absent means no limit
  bool raw_scores = false;                // TEI: the route passes logits, not sigmoids
};

// Parses the request of `api`. Throws ApiError: 400 naming the field, 413
// over `limits`. Choices where the APIs leave room:
//  - `top_n`: absent, null or 0 (vLLM's "all") means all documents; larger
//    than the count is clamped; negative is a 400.
//  - `max_tokens_per_doc`: null or 0 (vLLM's "no limit") means absent.
//  - object documents: `{"state_id": id}` is a cached state; otherwise the
//    text is `text`, or with `rank_fields` the listed fields that exist, in
//    order: one field gives its value as is, several give "field: value"
//    lines (Cohere ranks YAML-like "key: value" text). Non-string values are
//    written as JSON.
RerankRequest parse_rerank_request(const nlohmann::json& body, RerankApi api,
                                   const RequestLimits& limits = {});

}  // namespace rwkv::api
