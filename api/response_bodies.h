// The response bodies of the embedding and rerank endpoints: the last step
// of a route (parse → service → render), apart from request parsing so that a
// request enters each file once.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "api/cohere_embed.h"
#include "api/rerank.h"

namespace rwkv::api {

// {"object":"list","data":[{"object":"embedding","index":i,"embedding":...}],
//  "model":...,"usage":{"prompt_tokens":N,"total_tokens":N}}, with each
// embedding a float array or base64 of little-endian float32.
nlohmann::json embeddings_response(const std::vector<std::vector<float>>& vectors, bool base64,
                                   const std::string& model, int64_t prompt_tokens);

// The response for `request` (as parsed for the vectors' dimension) given one
// vector per text (L2-normalized; int8/uint8/binary assume unit length).
// v1 floats: {"id","response_type":"embeddings_floats","embeddings":[[...]],
//             "texts","meta"}
// otherwise: {"id","response_type":"embeddings_by_type",
//             "embeddings":{"float":[[...]],"int8":[[...]],...},"texts","meta"}
// with only the requested types, and meta = {"api_version":{"version":"1"|"2"},
// "billed_units":{"input_tokens":N}}. A fresh random id when `id` is empty.
nlohmann::json cohere_embed_response(const CohereEmbedRequest& request,
                                     const std::vector<std::vector<float>>& vectors,
                                     int64_t input_tokens, std::string id = {});

// Indices of the `top_n` best scores, highest first; ties keep the lower
// index first; NaN ranks last.
std::vector<size_t> rank_order(std::span<const float> scores, size_t top_n);

// Cohere search units: one per query per started 100 documents.
int64_t search_units(size_t document_count);

// The response for `request`, given one score per document in request order
// (throws std::invalid_argument on a count mismatch). `model` is the served
// name; a fresh random id when `id` is empty.
// Cohere / Jina:
//   {"id","results":[{"index","relevance_score","document"?}],
//    "meta":{"api_version":{"version":"1"|"2"},"billed_units":{"search_units"},
//            "tokens":{"input_tokens"}},
//    "model","usage":{"prompt_tokens","total_tokens"}}
// TEI: [{"index","score","text"?}] (text only for text documents).
nlohmann::json rerank_response(const RerankRequest& request, std::span<const float> scores,
                               const std::string& model, int64_t input_tokens, std::string id = {});

}  // namespace rwkv::api
