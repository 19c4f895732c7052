// Helpers the api/ tests share: ApiError expectations, object keys, a
// client's decoding of base64 embeddings, and the parsers called on JSON text.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "api/api_error.h"
#include "api/cohere_embed.h"
#include "api/encoding.h"
#include "api/limits.h"
#include "api/openai_embeddings.h"
#include "api/rerank.h"
#include "api/response_bodies.h"

namespace rwkv::api {

// What a client does with a base64 embedding: little-endian float32s; nullopt
// when `text` is not base64 of a multiple of 4 bytes.
inline std::optional<std::vector<float>> base64_to_floats(std::string_view text) {
  const auto bytes = base64_decode(text);
  if (!bytes || bytes->size() % 4 != 0) return std::nullopt;
  std::vector<float> out(bytes->size() / 4);
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t bits = 0;
    for (int k = 3; k >= 0; --k) bits = bits << 8 | static_cast<uint8_t>((*bytes)[i * 4 + k]);
    out[i] = std::bit_cast<float>(bits);
  }
  return out;
}

// Runs `f`, which must throw ApiError with `status`, `param` (nullopt: none)
// and a message containing `needle`.
template <typename F>
void expect_api_error(F&& f, int status, std::optional<std::string> param,
                      const std::string& needle) {
  try {
    f();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, status) << e.what();
    EXPECT_EQ(e.param, param) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << needle << "\"";
    // Whatever the message holds, the error bodies must serialize.
    EXPECT_NO_THROW(openai_error_body(e).dump());
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ApiError, got " << typeid(e).name() << ": " << e.what();
    return;
  }
  ADD_FAILURE() << "expected ApiError, nothing thrown";
}

#define EXPECT_API_ERROR(statement, status, param, needle)               \
  do {                                                                   \
    SCOPED_TRACE(#statement);                                            \
    expect_api_error([&] { (void)(statement); }, status, param, needle); \
  } while (0)

inline const std::optional<std::string> kNoParam = std::nullopt;

// Keys of an object, sorted.
inline std::set<std::string> keys(const nlohmann::json& object) {
  std::set<std::string> out;
  for (const auto& [key, value] : object.items()) out.insert(key);
  return out;
}

inline EmbeddingsRequest parse_embeddings(const std::string& body,
                                          const RequestLimits& limits = {}) {
  return parse_embeddings_request(nlohmann::json::parse(body), limits);
}

// `dimension`: the model's width (8 by default, so binary types are allowed).
inline CohereEmbedRequest parse_embed(const std::string& body, int version,
                                      const RequestLimits& limits = {}, int dimension = 8) {
  return parse_cohere_embed_request(nlohmann::json::parse(body), version, dimension, limits);
}

inline RerankRequest parse_rerank(const std::string& body, RerankApi api = RerankApi::kCohereV1,
                                  const RequestLimits& limits = {}) {
  return parse_rerank_request(nlohmann::json::parse(body), api, limits);
}

}  // namespace rwkv::api
