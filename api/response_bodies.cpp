#include "api/response_bodies.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "api/encoding.h"
#include "api/request_id.h"

namespace rwkv::api {

namespace {

using nlohmann::json;

// One vector in the wire form of `type`.
json encode_vector(const std::vector<float>& vector, EmbeddingType type) {
  switch (type) {
    case EmbeddingType::kFloat:
      return float_array(vector);
    case EmbeddingType::kInt8:
      return quantize_int8(vector);
    case EmbeddingType::kUint8:
      return quantize_uint8(vector);
    case EmbeddingType::kBinary:
      return pack_binary(vector);
    case EmbeddingType::kUbinary:
      return pack_ubinary(vector);
    case EmbeddingType::kBase64:
      return floats_to_base64(vector);
  }
  return nullptr;
}

}  // namespace

json embeddings_response(const std::vector<std::vector<float>>& vectors, bool base64,
                         const std::string& model, int64_t prompt_tokens) {
  json data = json::array();
  for (size_t i = 0; i < vectors.size(); ++i) {
    data.push_back(
        {{"object", "embedding"},
         {"index", i},
         {"embedding", base64 ? json(floats_to_base64(vectors[i])) : float_array(vectors[i])}});
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", model},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

json cohere_embed_response(const CohereEmbedRequest& request,
                           const std::vector<std::vector<float>>& vectors, int64_t input_tokens,
                           std::string id) {
  json embeddings;
  if (request.by_type) {
    embeddings = json::object();
    for (const EmbeddingType type : request.embedding_types) {
      json list = json::array();
      for (const auto& vector : vectors) list.push_back(encode_vector(vector, type));
      embeddings[std::string(embedding_type_name(type))] = std::move(list);
    }
  } else {
    embeddings = json::array();
    for (const auto& vector : vectors) embeddings.push_back(float_array(vector));
  }
  return {{"id", id.empty() ? random_uuid() : std::move(id)},
          {"response_type", request.by_type ? "embeddings_by_type" : "embeddings_floats"},
          {"embeddings", std::move(embeddings)},
          {"texts", request.texts},
          {"meta",
           {{"api_version", {{"version", std::to_string(request.api_version)}}},
            {"billed_units", {{"input_tokens", input_tokens}}}}}};
}

std::vector<size_t> rank_order(std::span<const float> scores, size_t top_n) {
  std::vector<size_t> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // NaN compares as lowest, so the order stays a strict weak ordering.
  const auto key = [&](size_t i) {
    return std::isnan(scores[i]) ? -std::numeric_limits<float>::infinity() : scores[i];
  };
  const auto better = [&](size_t a, size_t b) {
    const float ka = key(a), kb = key(b);
    if (ka != kb) return ka > kb;
    if (std::isnan(scores[a]) != std::isnan(scores[b])) return !std::isnan(scores[a]);
    return a < b;
  };
  top_n = std::min(top_n, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top_n), order.end(),
                    better);
  order.resize(top_n);
  return order;
}

int64_t search_units(size_t document_count) {
  return std::max<int64_t>(1, static_cast<int64_t>((document_count + 99) / 100));
}

json rerank_response(const RerankRequest& request, std::span<const float> scores,
                     const std::string& model, int64_t input_tokens, std::string id) {
  if (scores.size() != request.documents.size()) {
    throw std::invalid_argument("rerank_response: " + std::to_string(scores.size()) +
                                " scores for " + std::to_string(request.documents.size()) +
                                " documents");
  }
  const auto order = rank_order(scores, request.top_n);

  if (request.api == RerankApi::kTei) {
    json results = json::array();
    for (const size_t i : order) {
      json item = {{"index", i}, {"score", json_number(scores[i])}};
      const auto& document = request.documents[i];
      if (request.return_documents && document.kind == RerankDocument::Kind::kText) {
        item["text"] = document.text;
      }
      results.push_back(std::move(item));
    }
    return results;
  }

  json results = json::array();
  for (const size_t i : order) {
    json item = {{"index", i}, {"relevance_score", json_number(scores[i])}};
    if (request.return_documents) item["document"] = request.documents[i].source;
    results.push_back(std::move(item));
  }
  const std::string version = request.api == RerankApi::kCohereV2 ? "2" : "1";
  return {{"id", id.empty() ? random_uuid() : std::move(id)},
          {"results", std::move(results)},
          {"meta",
           {{"api_version", {{"version", version}}},
            {"billed_units", {{"search_units", search_units(request.documents.size())}}},
            {"tokens", {{"input_tokens", input_tokens}}}}},
          {"model", model},
          {"usage", {{"prompt_tokens", input_tokens}, {"total_tokens", input_tokens}}}};
}

}  // namespace rwkv::api
