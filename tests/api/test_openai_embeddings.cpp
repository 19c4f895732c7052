// api/openai_embeddings.h: OpenAI /v1/embeddings requests (inputs, token ids,
// options, the input protocol fields, limits) and the exact response shapes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/input_protocol.h"
#include "api/response_bodies.h"
#include "tests/api/api_test_helpers.h"

namespace rwkv::api {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------
// OpenAI /v1/embeddings

TEST(ApiEmbeddings, SingleStringAndDefaults) {
  const auto request = parse_embeddings(R"({"input": "hello", "model": "m"})");
  ASSERT_EQ(request.inputs.size(), 1u);
  EXPECT_FALSE(request.inputs[0].is_tokens);
  EXPECT_EQ(request.inputs[0].text, "hello");
  EXPECT_EQ(request.model, "m");
  EXPECT_FALSE(request.base64);
  EXPECT_EQ(request.dimensions, std::nullopt);
  EXPECT_EQ(request.text.input_type, std::nullopt);  // the route: alias, else search_document
  EXPECT_EQ(request.text.instruction, std::nullopt);
  EXPECT_EQ(request.text.eos_protocol, std::nullopt);
  EXPECT_TRUE(request.normalize);
}

TEST(ApiEmbeddings, EmptyStringIsAccepted) {
  // LangChain embeds an empty document with a separate `input: ""` call.
  const auto request = parse_embeddings(R"({"input": ""})");
  ASSERT_EQ(request.inputs.size(), 1u);
  EXPECT_EQ(request.inputs[0].text, "");
  EXPECT_EQ(request.model, "");
  EXPECT_EQ(parse_embeddings(R"({"input": ["a", ""]})").inputs[1].text, "");
}

TEST(ApiEmbeddings, StringArray) {
  const auto request = parse_embeddings(R"({"input": ["a", "b c", "é"]})");
  ASSERT_EQ(request.inputs.size(), 3u);
  EXPECT_EQ(request.inputs[2].text, "é");
  for (const auto& input : request.inputs) EXPECT_FALSE(input.is_tokens);
}

TEST(ApiEmbeddings, TokenArrayIsOneInput) {
  const auto request = parse_embeddings(R"({"input": [0, 1, 65529, 65535]})");
  ASSERT_EQ(request.inputs.size(), 1u);
  EXPECT_TRUE(request.inputs[0].is_tokens);
  EXPECT_EQ(request.inputs[0].tokens, (std::vector<int32_t>{0, 1, 65529, 65535}));
}

TEST(ApiEmbeddings, ArrayOfTokenArrays) {
  const auto request = parse_embeddings(R"({"input": [[1, 2], [3], []]})");
  ASSERT_EQ(request.inputs.size(), 3u);
  EXPECT_EQ(request.inputs[0].tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(request.inputs[1].tokens, (std::vector<int32_t>{3}));
  EXPECT_TRUE(request.inputs[2].is_tokens);
  EXPECT_TRUE(request.inputs[2].tokens.empty());  // embeds to just EOS, like ""
}

TEST(ApiEmbeddings, InputErrors) {
  EXPECT_API_ERROR(parse_embeddings("{}"), 400, "input", "'input' is required");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": null})"), 400, "input", "'input' is required");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": []})"), 400, "input", "must not be an empty");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": 5})"), 400, "input", "'input' must be a string");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": {"text": "a"}})"), 400, "input", "got an object");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [{"text": "a"}]})"), 400, "input", "'input[0]'");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [null]})"), 400, "input", "'input[0]'");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [true]})"), 400, "input", "'input[0]'");
  // Mixed forms.
  EXPECT_API_ERROR(parse_embeddings(R"({"input": ["a", 1]})"), 400, "input",
                   "'input[1]' must be a string");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": ["a", ["b"]]})"), 400, "input", "'input[1]'");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [1, "a"]})"), 400, "input",
                   "'input[1]' must be an integer token id");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[1], 2]})"), 400, "input",
                   "'input[1]' must be an array of token ids");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[1], ["a"]]})"), 400, "input",
                   "'input[1][0]' must be an integer token id");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[1, [2]]]})"), 400, "input", "'input[0][1]'");
}

TEST(ApiEmbeddings, TokenIdValidation) {
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [1, 2.5]})"), 400, "input",
                   "'input[1]' must be an integer token id, got 2.5");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [-1]})"), 400, "input", "is -1");
  // 65530..65534 are no tokenizer output, but rows of the embedding table
  // that the model computes (and the CLI accepts): every id below 65536 goes.
  for (const int id : {65530, 65531, 65534}) {
    EXPECT_EQ(parse_embeddings("{\"input\": [[5, " + std::to_string(id) + "]]}").inputs[0].tokens,
              (std::vector<int32_t>{5, id}));
  }
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[1], [2, 3, 65536]]})"), 400, "input",
                   "'input[1][2]' is 65536");
  // tiktoken cl100k ids, as LangChain's OpenAIEmbeddings sends them.
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[9906, 100257]]})"), 400, "input",
                   "token ids must be < 65536");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[65536]]})"), 400, "input",
                   "check_embedding_ctx_length=False");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[1], [99999999999999]]})"), 400, "input",
                   "'input[1][0]' is 99999999999999");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [1e30]})"), 400, "input",
                   "must be an integer token id");
}

TEST(ApiEmbeddings, EncodingFormat) {
  EXPECT_TRUE(parse_embeddings(R"({"input": "a", "encoding_format": "base64"})").base64);
  EXPECT_FALSE(parse_embeddings(R"({"input": "a", "encoding_format": "float"})").base64);
  EXPECT_FALSE(parse_embeddings(R"({"input": "a", "encoding_format": null})").base64);
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "a", "encoding_format": "int8"})"), 400,
                   "encoding_format", "'encoding_format' must be one of \"float\", \"base64\"");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "a", "encoding_format": 1})"), 400,
                   "encoding_format", "encoding_format");
}

TEST(ApiEmbeddings, Dimensions) {
  EXPECT_EQ(parse_embeddings(R"({"input": "a", "dimensions": 256})").dimensions, 256);
  EXPECT_EQ(parse_embeddings(R"({"input": "a", "dimensions": null})").dimensions, std::nullopt);
  for (const char* bad : {"0", "-8", "\"8\"", "1.5", "true", "4294967296"}) {
    EXPECT_API_ERROR(parse_embeddings(std::string(R"({"input": "a", "dimensions": )") + bad + "}"),
                     400, "dimensions", "'dimensions' must be");
  }
}

TEST(ApiEmbeddings, TaskNormalizeModelAndIgnoredFields) {
  const auto type = [](const std::string& body) { return parse_embeddings(body).text.input_type; };
  EXPECT_EQ(type(R"({"input": "a", "task": "sts"})"), InputType::kSts);
  EXPECT_EQ(type(R"({"input": "a", "task": "classification"})"), InputType::kClassification);
  EXPECT_EQ(type(R"({"input": "a", "task": "retrieval"})"), InputType::kSearchDocument);
  EXPECT_EQ(type(R"({"input": "a", "task": null})"), std::nullopt);
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "a", "task": "rerank"})"), 400, "task",
                   "'task' must be one of \"retrieval\", \"sts\", \"classification\"");
  EXPECT_FALSE(parse_embeddings(R"({"input": "a", "normalize": false})").normalize);
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "a", "normalize": "no"})"), 400, "normalize",
                   "'normalize' must be a boolean");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "a", "model": 3})"), 400, "model",
                   "'model' must be a string");
  EXPECT_NO_THROW(parse_embeddings(R"({"input": "a", "user": "u", "extra": {"x": 1}})"));
  EXPECT_API_ERROR(parse_embeddings_request(json::array(), {}), 400, kNoParam,
                   "must be a JSON object");
}

TEST(ApiEmbeddings, InputProtocolFields) {
  const auto request = parse_embeddings(
      R"({"input": "a", "input_type": "search_query", "instruction": "Find", "eos_protocol": "single"})");
  EXPECT_EQ(request.text.input_type, InputType::kSearchQuery);
  EXPECT_EQ(request.text.instruction, "Find");
  EXPECT_EQ(request.text.eos_protocol, EosProtocol::kSingle);
  EXPECT_EQ(parse_embeddings(R"({"input": "a", "input_type": "sts"})").text.input_type,
            InputType::kSts);
  EXPECT_EQ(parse_embeddings(R"({"input": "a", "eos_protocol": "chunked"})").text.eos_protocol,
            EosProtocol::kChunked);
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "a", "input_type": "query"})"), 400, "input_type",
                   "'input_type' must be one of \"search_document\", \"search_query\", \"sts\", "
                   "\"classification\", \"clustering\", got \"query\"");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "a", "eos_protocol": "many"})"), 400,
                   "eos_protocol", "'eos_protocol' must be one of \"chunked\", \"single\"");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "a", "instruction": 1})"), 400, "instruction",
                   "'instruction' must be a string");
  // task and input_type together: the same head, or a 400.
  EXPECT_EQ(parse_embeddings(R"({"input": "a", "task": "retrieval", "input_type": "search_query"})")
                .text.input_type,
            InputType::kSearchQuery);
  EXPECT_API_ERROR(
      parse_embeddings(R"({"input": "a", "task": "sts", "input_type": "search_query"})"), 400,
      "task", "pick different heads");
  // Token ids are used as given: no instruction for them.
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[1, 65535]], "instruction": "Find"})"), 400,
                   "instruction", "'instruction' applies to texts only");
  EXPECT_EQ(parse_embeddings(R"({"input": [[1, 65535]], "input_type": "sts"})").text.input_type,
            InputType::kSts);  // the head of the ids
}

TEST(ApiEmbeddings, Limits) {
  RequestLimits limits;
  limits.max_inputs = 2;
  limits.max_input_bytes = 4;
  limits.max_input_tokens = 3;
  EXPECT_NO_THROW(parse_embeddings(R"({"input": ["a", "abcd"]})", limits));
  EXPECT_API_ERROR(parse_embeddings(R"({"input": ["a", "b", "c"]})", limits), 413, "input",
                   "'input' has 3 items, over the limit of 2");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[1], [2], [3]]})", limits), 413, "input",
                   "over the limit of 2");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": ["a", "abcde"]})", limits), 413, "input",
                   "'input[1]' is 5 bytes long, over the limit of 4");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": "abcde"})", limits), 413, "input", "'input'");
  EXPECT_NO_THROW(parse_embeddings(R"({"input": [1, 2, 3]})", limits));  // one input
  // The one --max-input-tokens limit: 400 as for a text over it (the route).
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [1, 2, 3, 4]})", limits), 400, "input",
                   "4 tokens, more than the limit of 3");
  EXPECT_API_ERROR(parse_embeddings(R"({"input": [[1, 2, 3, 4]]})", limits), 400, "input",
                   "'input[0]' has 4 tokens");
}

TEST(ApiEmbeddings, WhatClientsSend) {
  // OpenAI Python SDK default.
  auto request = parse_embeddings(R"({"input": ["hi"], "model": "text-embedding-3-small",
                           "encoding_format": "base64"})");
  EXPECT_TRUE(request.base64);
  // LangChain OpenAIEmbeddings default: cl100k token arrays.
  request = parse_embeddings(R"({"input": [[15339, 1917]], "model": "text-embedding-ada-002",
                                 "encoding_format": "base64"})");
  EXPECT_TRUE(request.inputs[0].is_tokens);
}

TEST(ApiEmbeddings, FloatResponseShape) {
  const json response = embeddings_response({{0.1f, -0.5f}, {1.0f, 0.0f}}, false, "rwkv", 7);
  EXPECT_EQ(keys(response), (std::set<std::string>{"object", "data", "model", "usage"}));
  EXPECT_EQ(response["object"], "list");
  EXPECT_EQ(response["model"], "rwkv");
  EXPECT_EQ(response["usage"], json({{"prompt_tokens", 7}, {"total_tokens", 7}}));
  ASSERT_EQ(response["data"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const json& item = response["data"][i];
    EXPECT_EQ(keys(item), (std::set<std::string>{"object", "index", "embedding"}));
    EXPECT_EQ(item["object"], "embedding");
    EXPECT_TRUE(item["index"].is_number_integer());
    EXPECT_EQ(item["index"], i);
    EXPECT_TRUE(item["embedding"].is_array());
  }
  // Floats go on the wire in their shortest form.
  EXPECT_EQ(response["data"][0]["embedding"].dump(), "[0.1,-0.5]");
  EXPECT_EQ(response["data"][1]["embedding"].dump(), "[1.0,0.0]");
}

TEST(ApiEmbeddings, Base64ResponseShape) {
  const json response = embeddings_response({{1.0f, -2.0f}}, true, "m", 3);
  const json& embedding = response["data"][0]["embedding"];
  ASSERT_TRUE(embedding.is_string());
  EXPECT_EQ(embedding, "AACAPwAAAMA=");
}

TEST(ApiEmbeddings, EmptyResponse) {
  const json response = embeddings_response({}, false, "m", 0);
  EXPECT_TRUE(response["data"].is_array());
  EXPECT_TRUE(response["data"].empty());
}

}  // namespace
}  // namespace rwkv::api
