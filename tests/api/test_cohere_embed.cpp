// api/cohere_embed.h: Cohere /v1/embed and /v2/embed requests (texts, input
// types, embedding types, truncation, the input protocol fields, limits) and
// the exact response shapes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/input_protocol.h"
#include "api/response_bodies.h"
#include "tests/api/api_test_helpers.h"

namespace rwkv::api {
namespace {

using nlohmann::json;

TEST(ApiCohereEmbed, InputProtocolFields) {
  const auto request = parse_embed(
      R"({"texts": ["a"], "input_type": "search_query", "instruction": "", "eos_protocol": "single"})",
      1);
  EXPECT_EQ(request.text.instruction, "");
  EXPECT_EQ(request.text.eos_protocol, EosProtocol::kSingle);
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "eos_protocol": "double"})", 1), 400,
                   "eos_protocol", "'eos_protocol' must be one of \"chunked\", \"single\"");
}

// ---------------------------------------------------------------------------
// Cohere /v1/embed and /v2/embed

TEST(ApiCohereEmbed, V1MinimalDefaults) {
  const auto request = parse_embed(R"({"texts": ["a", ""]})", 1);
  EXPECT_EQ(request.api_version, 1);
  EXPECT_EQ(request.texts, (std::vector<std::string>{"a", ""}));
  EXPECT_EQ(request.model, "");
  EXPECT_EQ(request.text.input_type, std::nullopt);
  EXPECT_EQ(request.embedding_types, std::vector<EmbeddingType>{EmbeddingType::kFloat});
  EXPECT_FALSE(request.by_type);
  EXPECT_EQ(request.truncate, Truncate::kEnd);
  EXPECT_EQ(request.max_tokens, std::nullopt);
  EXPECT_EQ(request.output_dimension, std::nullopt);
}

TEST(ApiCohereEmbed, LangChainV1Request) {
  const auto request = parse_embed(R"({"model": "embed-english-v3.0", "texts": ["doc"],
      "input_type": "search_document", "truncate": "END", "embedding_types": ["float"]})",
                                   1);
  EXPECT_TRUE(request.by_type);
  EXPECT_EQ(request.model, "embed-english-v3.0");
  EXPECT_EQ(request.text.input_type, InputType::kSearchDocument);
}

TEST(ApiCohereEmbed, InputTypes) {
  const auto task = [](const std::string& input_type) {
    return parse_embed(R"({"texts": ["a"], "input_type": ")" + input_type + "\"}", 1)
        .text.input_type;
  };
  EXPECT_EQ(task("search_document"), InputType::kSearchDocument);
  EXPECT_EQ(task("search_query"), InputType::kSearchQuery);
  EXPECT_EQ(task("classification"), InputType::kClassification);
  EXPECT_EQ(task("clustering"), InputType::kClustering);
  EXPECT_API_ERROR(task("image"), 400, "input_type", "\"image\" is not supported");
  EXPECT_API_ERROR(task("query"), 400, "input_type",
                   "'input_type' must be one of \"search_document\", \"search_query\", "
                   "\"classification\", \"clustering\", got \"query\"");
  EXPECT_API_ERROR(task("sts"), 400, "input_type", "'input_type' must be one of");
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "input_type": 1})", 1), 400, "input_type",
                   "'input_type' must be a string");
}

TEST(ApiCohereEmbed, V2RequiresModelAndInputType) {
  const auto request =
      parse_embed(R"({"model": "m", "texts": ["a"], "input_type": "search_query"})", 2);
  EXPECT_EQ(request.api_version, 2);
  EXPECT_TRUE(request.by_type);
  EXPECT_EQ(request.embedding_types, std::vector<EmbeddingType>{EmbeddingType::kFloat});
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "input_type": "search_query"})", 2), 400,
                   "model", "'model' is required");
  EXPECT_API_ERROR(parse_embed(R"({"model": "m", "texts": ["a"]})", 2), 400, "input_type",
                   "'input_type' is required");
  EXPECT_API_ERROR(parse_embed(R"({"model": "m", "texts": ["a"], "input_type": null})", 2), 400,
                   "input_type", "'input_type' is required");
}

TEST(ApiCohereEmbed, TextsErrors) {
  EXPECT_API_ERROR(parse_embed("{}", 1), 400, "texts", "'texts' is required");
  EXPECT_API_ERROR(parse_embed(R"({"texts": null})", 1), 400, "texts", "'texts' is required");
  EXPECT_API_ERROR(parse_embed(R"({"texts": []})", 1), 400, "texts", "must not be empty");
  EXPECT_API_ERROR(parse_embed(R"({"texts": "a"})", 1), 400, "texts", "must be an array");
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a", 2]})", 1), 400, "texts",
                   "'texts[1]' must be a string");
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "images": ["data:..."]})", 1), 400, "images",
                   "not supported");
  EXPECT_API_ERROR(parse_embed(R"({"model": "m", "input_type": "search_query"})", 2), 400, "texts",
                   "'texts' (or 'inputs') is required");
}

TEST(ApiCohereEmbed, V2Inputs) {
  const auto request = parse_embed(R"({"model": "m", "input_type": "classification",
      "inputs": [{"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                 {"content": [{"text": "c"}]}]})",
                                   2);
  EXPECT_EQ(request.texts, (std::vector<std::string>{"a\nb", "c"}));
  EXPECT_EQ(request.text.input_type, InputType::kClassification);
  const std::string head = R"({"model": "m", "input_type": "search_query", )";
  EXPECT_API_ERROR(parse_embed(head + R"("inputs": [{"content": [{"type": "image_url",
      "image_url": {"url": "x"}}]}]})",
                               2),
                   400, "inputs", "embeds text only");
  EXPECT_API_ERROR(parse_embed(head + R"("inputs": []})", 2), 400, "inputs", "must not be empty");
  EXPECT_API_ERROR(parse_embed(head + R"("inputs": [{}]})", 2), 400, "inputs",
                   "'inputs[0].content'");
  EXPECT_API_ERROR(parse_embed(head + R"("inputs": [{"content": [{"type": "text"}]}]})", 2), 400,
                   "inputs", "'inputs[0].content[0]'");
  EXPECT_API_ERROR(parse_embed(head + R"("texts": ["a"], "inputs": [{"content": []}]})", 2), 400,
                   "texts", "not both");
}

TEST(ApiCohereEmbed, EmbeddingTypes) {
  auto request = parse_embed(
      R"({"texts": ["a"], "embedding_types": ["int8", "float", "int8", "ubinary", "binary",
                                              "uint8", "base64"]})",
      1);
  EXPECT_EQ(request.embedding_types,
            (std::vector<EmbeddingType>{EmbeddingType::kInt8, EmbeddingType::kFloat,
                                        EmbeddingType::kUbinary, EmbeddingType::kBinary,
                                        EmbeddingType::kUint8, EmbeddingType::kBase64}));
  EXPECT_TRUE(request.by_type);
  // null and [] count as absent.
  EXPECT_FALSE(parse_embed(R"({"texts": ["a"], "embedding_types": null})", 1).by_type);
  request = parse_embed(R"({"texts": ["a"], "embedding_types": []})", 1);
  EXPECT_FALSE(request.by_type);
  EXPECT_EQ(request.embedding_types, std::vector<EmbeddingType>{EmbeddingType::kFloat});
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "embedding_types": ["float", "fp16"]})", 1), 400,
                   "embedding_types", "'embedding_types[1]' must be one of");
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "embedding_types": "float"})", 1), 400,
                   "embedding_types", "an array of strings");
  for (const auto type :
       {EmbeddingType::kFloat, EmbeddingType::kInt8, EmbeddingType::kUint8, EmbeddingType::kBinary,
        EmbeddingType::kUbinary, EmbeddingType::kBase64}) {
    EXPECT_FALSE(embedding_type_name(type).empty());
  }
}

TEST(ApiCohereEmbed, TruncateMaxTokensOutputDimension) {
  EXPECT_EQ(parse_embed(R"({"texts": ["a"], "truncate": "NONE"})", 1).truncate, Truncate::kNone);
  EXPECT_EQ(parse_embed(R"({"texts": ["a"], "truncate": "start"})", 1).truncate, Truncate::kStart);
  EXPECT_EQ(parse_embed(R"({"texts": ["a"], "truncate": null})", 1).truncate, Truncate::kEnd);
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "truncate": "MIDDLE"})", 1), 400, "truncate",
                   "'truncate' must be one of \"NONE\", \"START\", \"END\", got \"MIDDLE\"");
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "truncate": false})", 1), 400, "truncate",
                   "'truncate' must be a string");

  EXPECT_EQ(parse_embed(R"({"texts": ["a"], "max_tokens": 512})", 1).max_tokens, 512);
  EXPECT_EQ(parse_embed(R"({"texts": ["a"], "max_tokens": null})", 1).max_tokens, std::nullopt);
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "max_tokens": 0})", 1), 400, "max_tokens",
                   "'max_tokens' must be a positive integer, got 0");

  EXPECT_EQ(parse_embed(R"({"texts": ["a"], "output_dimension": 8})", 1).output_dimension, 8);
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "output_dimension": -1})", 1), 400,
                   "output_dimension", "positive integer");
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "output_dimension": 12})", 1), 400,
                   "output_dimension", "'output_dimension' must be 8, the model's width");
  EXPECT_EQ(parse_embed(R"({"texts": ["a"], "output_dimension": 16,
                            "embedding_types": ["binary"]})",
                        1, {}, 16)
                .output_dimension,
            16);
}

// Issue 12: binary types of a width that is no multiple of 8 were refused by
// cohere_embed_response, a 400 after the model ran. Now the parse refuses
// them, and the response of a parsed request cannot fail.
TEST(ApiCohereEmbed, BinaryTypesAreCheckedBeforeTheModelRuns) {
  for (const char* types : {R"(["ubinary"])", R"(["float", "binary"])"}) {
    EXPECT_API_ERROR(
        parse_embed(std::string(R"({"texts": ["a"], "embedding_types": )") + types + "}", 1, {},
                    12),
        400, "embedding_types", "multiple of 8; this model's is 12");
  }
  const auto request = parse_embed(R"({"texts": ["a"], "embedding_types": ["int8"]})", 1, {}, 12);
  EXPECT_NO_THROW(cohere_embed_response(request, {std::vector<float>(12, 0.5f)}, 1));
}

TEST(ApiCohereEmbed, Limits) {
  RequestLimits limits;
  limits.max_inputs = 1;
  limits.max_input_bytes = 3;
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a", "b"]})", 1, limits), 413, "texts",
                   "over the limit of 1");
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["abcd"]})", 1, limits), 413, "texts",
                   "'texts[0]' is 4 bytes long");
}

TEST(ApiCohereEmbed, V1FloatsResponseShape) {
  const auto request = parse_embed(R"({"texts": ["a", "b"]})", 1);
  const json response =
      cohere_embed_response(request, {{0.5f, -0.25f}, {1.0f, 0.0f}}, 11, "fixed-id");
  EXPECT_EQ(keys(response),
            (std::set<std::string>{"id", "response_type", "embeddings", "texts", "meta"}));
  EXPECT_EQ(response["id"], "fixed-id");
  EXPECT_EQ(response["response_type"], "embeddings_floats");
  EXPECT_EQ(response["embeddings"], json({{0.5, -0.25}, {1.0, 0.0}}));
  EXPECT_EQ(response["texts"], json({"a", "b"}));
  EXPECT_EQ(response["meta"], json::parse(R"({"api_version": {"version": "1"},
                                               "billed_units": {"input_tokens": 11}})"));
}

TEST(ApiCohereEmbed, ByTypeResponseShape) {
  const auto request = parse_embed(R"({"texts": ["a"], "embedding_types":
      ["float", "int8", "uint8", "binary", "ubinary", "base64"]})",
                                   1);
  const std::vector<float> v = {1.0f, -1.0f, 0.5f, 0.0f, -0.5f, 0.25f, -0.25f, 0.125f};
  const json response = cohere_embed_response(request, {v}, 4);
  EXPECT_EQ(response["response_type"], "embeddings_by_type");
  const json& embeddings = response["embeddings"];
  EXPECT_EQ(keys(embeddings),
            (std::set<std::string>{"float", "int8", "uint8", "binary", "ubinary", "base64"}));
  EXPECT_EQ(embeddings["float"], json({{1.0, -1.0, 0.5, 0.0, -0.5, 0.25, -0.25, 0.125}}));
  // round(v * 127): 63.5 -> 64, 31.75 -> 32, 15.875 -> 16.
  EXPECT_EQ(embeddings["int8"], json({{127, -127, 64, 0, -64, 32, -32, 16}}));
  EXPECT_EQ(embeddings["uint8"], json({{255, 1, 192, 128, 64, 160, 96, 144}}));
  // Signs 1 0 1 1 0 1 0 1 = 181.
  EXPECT_EQ(embeddings["ubinary"], json({{181}}));
  EXPECT_EQ(embeddings["binary"], json({{53}}));
  ASSERT_TRUE(embeddings["base64"][0].is_string());
  EXPECT_EQ(base64_to_floats(embeddings["base64"][0].get<std::string>()), v);
  EXPECT_EQ(response["meta"]["billed_units"]["input_tokens"], 4);
  EXPECT_TRUE(response["id"].is_string());
  EXPECT_FALSE(response["id"].get<std::string>().empty());
}

TEST(ApiCohereEmbed, OnlyRequestedTypesArePresent) {
  const auto request = parse_embed(R"({"texts": ["a", "b"], "embedding_types": ["int8"]})", 1);
  const json response = cohere_embed_response(request, {{0.5f}, {-0.5f}}, 2);
  EXPECT_EQ(keys(response["embeddings"]), std::set<std::string>{"int8"});
  EXPECT_EQ(response["embeddings"]["int8"], json({{64}, {-64}}));
}

TEST(ApiCohereEmbed, V2ResponseShape) {
  const auto request =
      parse_embed(R"({"model": "m", "texts": ["x"], "input_type": "search_query"})", 2);
  const json response = cohere_embed_response(request, {{0.5f}}, 1);
  EXPECT_TRUE(keys(response).count("id"));
  EXPECT_EQ(keys(response["embeddings"]), std::set<std::string>{"float"});
  EXPECT_EQ(response["embeddings"]["float"], json({{0.5}}));
  EXPECT_EQ(response["texts"], json({"x"}));
  EXPECT_EQ(response["meta"]["api_version"]["version"], "2");
}

TEST(ApiCohereEmbed, IdsAreUniqueStrings) {
  const auto request = parse_embed(R"({"texts": ["a"]})", 1);
  const json a = cohere_embed_response(request, {{1.0f}}, 1);
  const json b = cohere_embed_response(request, {{1.0f}}, 1);
  EXPECT_NE(a["id"], b["id"]);
}

}  // namespace
}  // namespace rwkv::api
