// The api/ layer: request parsing and validation (every bad input is an
// ApiError with the right status and a message naming the field), exact
// response shapes for OpenAI, Cohere, Jina and TEI, and the wire encodings.
#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "api/api_error.h"
#include "api/cohere_embed.h"
#include "api/encoding.h"
#include "api/input_protocol.h"
#include "api/json_fields.h"
#include "api/limits.h"
#include "api/openai_embeddings.h"
#include "api/request_id.h"
#include "api/rerank.h"
#include "api/states_request.h"
#include "api/tokenize_request.h"

namespace rwkv::api {
namespace {

using nlohmann::json;

// What a client does with a base64 embedding: little-endian float32s; nullopt
// when `text` is not base64 of a multiple of 4 bytes.
std::optional<std::vector<float>> base64_to_floats(std::string_view text) {
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

// ---------------------------------------------------------------------------
// Helpers

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

const std::optional<std::string> kNoParam = std::nullopt;

// Keys of an object, sorted.
std::set<std::string> keys(const json& object) {
  std::set<std::string> out;
  for (const auto& [key, value] : object.items()) out.insert(key);
  return out;
}

EmbeddingsRequest parse_embeddings(const std::string& body, const RequestLimits& limits = {}) {
  return parse_embeddings_request(json::parse(body), limits);
}

// `dimension`: the model's width (8 by default, so binary types are allowed).
CohereEmbedRequest parse_embed(const std::string& body, int version,
                               const RequestLimits& limits = {}, int dimension = 8) {
  return parse_cohere_embed_request(json::parse(body), version, dimension, limits);
}

RerankRequest parse_rerank(const std::string& body, RerankApi api = RerankApi::kCohereV1,
                           const RequestLimits& limits = {}) {
  return parse_rerank_request(json::parse(body), api, limits);
}

// ---------------------------------------------------------------------------
// ApiError and error bodies

TEST(ApiError, FactoriesSetStatusAndOpenAiType) {
  EXPECT_EQ(ApiError::bad_request("x").status, 400);
  EXPECT_EQ(ApiError::bad_request("x").type, "invalid_request_error");
  EXPECT_EQ(ApiError::unauthorized("x").status, 401);
  EXPECT_EQ(ApiError::unauthorized("x").type, "authentication_error");
  EXPECT_EQ(ApiError(403, "x").type, "permission_error");
  EXPECT_EQ(ApiError::not_found("x").status, 404);
  EXPECT_EQ(ApiError::not_found("x").type, "invalid_request_error");
  EXPECT_EQ(ApiError::payload_too_large("x").status, 413);
  EXPECT_EQ(ApiError::unprocessable("x").status, 422);
  EXPECT_EQ(ApiError::too_many_requests("x").status, 429);
  EXPECT_EQ(ApiError::too_many_requests("x").type, "rate_limit_error");
  EXPECT_EQ(ApiError::internal("x").status, 500);
  EXPECT_EQ(ApiError::internal("x").type, "server_error");
  EXPECT_EQ(ApiError::unavailable("x").status, 503);
  EXPECT_EQ(ApiError::unavailable("x").type, "server_error");
}

TEST(ApiError, OpenAiBodyShape) {
  const json body = openai_error_body(ApiError::bad_request("bad thing", "input"));
  EXPECT_EQ(keys(body), (std::set<std::string>{"error"}));
  const json& error = body["error"];
  EXPECT_EQ(keys(error), (std::set<std::string>{"message", "type", "param", "code"}));
  EXPECT_EQ(error["message"], "bad thing");
  EXPECT_EQ(error["type"], "invalid_request_error");
  EXPECT_EQ(error["param"], "input");
  EXPECT_TRUE(error["code"].is_null());

  ApiError not_found = ApiError::not_found("no such model", "model");
  not_found.code = "model_not_found";
  const json nf = openai_error_body(not_found)["error"];
  EXPECT_EQ(nf["code"], "model_not_found");

  const json no_param = openai_error_body(ApiError::unavailable("loading"))["error"];
  EXPECT_TRUE(no_param["param"].is_null());
  EXPECT_EQ(no_param["type"], "server_error");
}

TEST(ApiError, CohereBodyShape) {
  const json body = cohere_error_body(ApiError::bad_request("invalid request: x", "query"));
  EXPECT_EQ(body, json({{"message", "invalid request: x"}}));
}

TEST(ApiError, BodiesSerializeInvalidUtf8Messages) {
  const ApiError error = ApiError::bad_request("bad byte \xff here", std::string("f\xc3"));
  EXPECT_NO_THROW(openai_error_body(error).dump());
  EXPECT_NO_THROW(cohere_error_body(error).dump());
  EXPECT_EQ(cohere_error_body(error)["message"], "bad byte \xEF\xBF\xBD here");
}

// ---------------------------------------------------------------------------
// Body parsing, UTF-8, field readers

TEST(ApiJson, ParsesAnObject) {
  const json body = parse_body(R"({"a": [1, {"b": "c"}], "d": null})");
  EXPECT_EQ(body["a"][1]["b"], "c");
}

TEST(ApiJson, RejectsEmptyAndNonObjectBodies) {
  EXPECT_API_ERROR(parse_body(""), 400, kNoParam, "empty");
  EXPECT_API_ERROR(parse_body(" \n\t"), 400, kNoParam, "empty");
  EXPECT_API_ERROR(parse_body("[1, 2]"), 400, kNoParam, "must be a JSON object, got an array");
  EXPECT_API_ERROR(parse_body("\"text\""), 400, kNoParam, "must be a JSON object");
  EXPECT_API_ERROR(parse_body("42"), 400, kNoParam, "must be a JSON object, got 42");
  EXPECT_API_ERROR(parse_body("null"), 400, kNoParam, "must be a JSON object, got null");
}

TEST(ApiJson, RejectsMalformedJson) {
  EXPECT_API_ERROR(parse_body("{\"a\": }"), 400, kNoParam, "request body is not valid JSON: ");
  EXPECT_API_ERROR(parse_body("{\"a\": 1"), 400, kNoParam, "not valid JSON");
  EXPECT_API_ERROR(parse_body("{\"a\": 1} trailing"), 400, kNoParam, "not valid JSON");
  EXPECT_API_ERROR(parse_body("{\"a\": NaN}"), 400, kNoParam, "not valid JSON");
  EXPECT_API_ERROR(parse_body("{\"a\": 1e999999}"), 400, kNoParam, "not valid JSON");
  EXPECT_API_ERROR(parse_body("{\"a\": \"\\ud800\"}"), 400, kNoParam, "not valid JSON");
  // The parser's internal prefix is not shown to clients.
  try {
    parse_body("{oops}");
  } catch (const ApiError& e) {
    EXPECT_EQ(std::string(e.what()).find("json.exception"), std::string::npos) << e.what();
  }
}

TEST(ApiJson, InvalidUtf8BodyIsA400) {
  // Inside a string, outside one, overlong, a surrogate, truncated.
  for (const std::string& body :
       {std::string("{\"input\": \"caf\xe9\"}"), std::string("{\"input\": \"x\"}\xff"),
        std::string("{\"input\": \"\xc0\x80\"}"), std::string("{\"input\": \"\xed\xa0\x80\"}"),
        std::string("{\"input\": \"\xe2\x82\"}")}) {
    SCOPED_TRACE(body);
    EXPECT_API_ERROR(parse_body(body), 400, kNoParam, "not valid JSON");
  }
}

TEST(ApiJson, BoundsTheMessageQuotingALongToken) {
  const std::string body = "{\"a\": \"" + std::string(100000, 'x') + "\xff\"}";
  try {
    parse_body(body);
    ADD_FAILURE() << "no error";
  } catch (const ApiError& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_TRUE(is_valid_utf8(e.what()));
  }
}

TEST(ApiJson, DeeplyNestedBodyIsRejectedWithoutCrashing) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_API_ERROR(parse_body(std::string(100000, '[')), 400, kNoParam, "nested more than 64");
  EXPECT_API_ERROR(
      parse_body("{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}"), 400,
      kNoParam, "nested");
  EXPECT_API_ERROR(parse_body(std::string(100000, '{')), 400, kNoParam, "nested");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(ApiJson, DepthLimitIsExact) {
  // The top-level object is level 1: 1 + 63 arrays = 64 levels pass.
  const auto nested = [](size_t arrays) {
    return "{\"a\": " + std::string(arrays, '[') + std::string(arrays, ']') + "}";
  };
  EXPECT_NO_THROW(parse_body(nested(63)));
  EXPECT_API_ERROR(parse_body(nested(64)), 400, kNoParam, "nested");
  EXPECT_NO_THROW(parse_body(nested(3), 4));
  EXPECT_API_ERROR(parse_body(nested(4), 4), 400, kNoParam, "nested more than 4");
}

TEST(ApiJson, BracketsInsideStringsDoNotCount) {
  const std::string brackets(1000, '[');
  EXPECT_NO_THROW(parse_body("{\"a\": \"" + brackets + "\"}"));
  // An escaped quote does not end the string.
  EXPECT_NO_THROW(parse_body("{\"a\": \"\\\"" + brackets + "\\\\\"}"));
  EXPECT_FALSE(nesting_exceeds("\"\\\"[[[\"", 1));
  EXPECT_TRUE(nesting_exceeds("[[\"]]\"", 1));
}

TEST(ApiJson, Utf8Validator) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9"));           // é
  EXPECT_TRUE(is_valid_utf8("\xe2\x82\xac"));          // €
  EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x98\x80"));      // 😀
  EXPECT_TRUE(is_valid_utf8("\xef\xbf\xbf"));          // U+FFFF
  EXPECT_TRUE(is_valid_utf8("\xf4\x8f\xbf\xbf"));      // U+10FFFF
  EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));  // NUL is a character
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\x80"));              // lone continuation
  EXPECT_FALSE(is_valid_utf8("caf\xe9"));           // Latin-1
  EXPECT_FALSE(is_valid_utf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(is_valid_utf8("\xc1\xbf"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\x80"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xf0\x80\x80\x80"));  // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\xf0\x9f\x98"));      // truncated
  EXPECT_FALSE(is_valid_utf8("\xc3\x28"));          // bad continuation
}

TEST(ApiJson, SanitizeReplacesEachInvalidByte) {
  EXPECT_EQ(sanitize_utf8("ok \xc3\xa9"), "ok \xc3\xa9");
  EXPECT_EQ(sanitize_utf8("a\xff"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(sanitize_utf8("\xe2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ApiJson, NullMeansAbsent) {
  const json body =
      json::parse(R"({"s": null, "b": null, "i": null, "e": null, "l": null, "present": "x"})");
  EXPECT_EQ(find_field(body, "s"), nullptr);
  EXPECT_EQ(find_field(body, "missing"), nullptr);
  EXPECT_NE(find_field(body, "present"), nullptr);
  EXPECT_EQ(optional_string(body, "s"), std::nullopt);
  EXPECT_EQ(optional_bool(body, "b"), std::nullopt);
  EXPECT_EQ(optional_int(body, "i", 1), std::nullopt);
  EXPECT_EQ(optional_enum(body, "e", {"a"}), std::nullopt);
  EXPECT_EQ(optional_string_list(body, "l"), std::nullopt);
  EXPECT_API_ERROR(required_string(body, "s"), 400, "s", "'s' is required");
}

TEST(ApiJson, TypeErrorsNameTheField) {
  const json body = json::parse(
      R"({"s": 1, "b": "true", "i": "3", "f": 1.5, "neg": -2, "e": "x", "l": ["a", 2]})");
  EXPECT_API_ERROR(optional_string(body, "s"), 400, "s", "'s' must be a string, got 1");
  EXPECT_API_ERROR(optional_bool(body, "b"), 400, "b", "'b' must be a boolean, got \"true\"");
  EXPECT_API_ERROR(optional_int(body, "i", 1), 400, "i", "'i' must be a positive integer");
  EXPECT_API_ERROR(optional_int(body, "f"), 400, "f", "'f' must be an integer between");
  EXPECT_API_ERROR(optional_int(body, "neg", 0), 400, "neg", "non-negative integer, got -2");
  EXPECT_API_ERROR(optional_int(body, "neg", -1, 5), 400, "neg", "between -1 and 5");
  EXPECT_API_ERROR(optional_enum(body, "e", {"a", "b"}), 400, "e",
                   "'e' must be one of \"a\", \"b\", got \"x\"");
  EXPECT_API_ERROR(optional_string_list(body, "l"), 400, "l[1]", "'l[1]' must be a string");
  EXPECT_API_ERROR(optional_string_list(body, "s"), 400, "s", "an array of strings");
}

TEST(ApiJson, IntegerValues) {
  EXPECT_EQ(integer_value(json(3)), 3);
  EXPECT_EQ(integer_value(json(-3)), -3);
  EXPECT_EQ(integer_value(json(3.0)), 3);  // Python clients may send 3.0
  EXPECT_EQ(integer_value(json(3.5)), std::nullopt);
  EXPECT_EQ(integer_value(json("3")), std::nullopt);
  EXPECT_EQ(integer_value(json(true)), std::nullopt);
  EXPECT_EQ(integer_value(json(std::numeric_limits<uint64_t>::max())), std::nullopt);
  EXPECT_EQ(integer_value(json(1e300)), std::nullopt);
  EXPECT_EQ(integer_value(json::parse("18446744073709551615")), std::nullopt);
}

TEST(ApiJson, DescribeValueIsShort) {
  EXPECT_EQ(describe_value(json::object()), "an object");
  EXPECT_EQ(describe_value(json::array()), "an array");
  EXPECT_EQ(describe_value(json(nullptr)), "null");
  EXPECT_EQ(describe_value(json(true)), "true");
  EXPECT_LT(describe_value(json(std::string(1000, 'x'))).size(), 70u);
}

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

TEST(ApiCohereEmbed, InputProtocolFields) {
  const auto request = parse_embed(
      R"({"texts": ["a"], "input_type": "search_query", "instruction": "", "eos_protocol": "single"})",
      1);
  EXPECT_EQ(request.text.instruction, "");
  EXPECT_EQ(request.text.eos_protocol, EosProtocol::kSingle);
  EXPECT_API_ERROR(parse_embed(R"({"texts": ["a"], "eos_protocol": "double"})", 1), 400,
                   "eos_protocol", "'eos_protocol' must be one of \"chunked\", \"single\"");
}

TEST(ApiTokenize, AsEmbeddedIsOptIn) {
  const auto plain = parse_tokenize_request(json::parse(R"({"input": "a"})"));
  EXPECT_FALSE(plain.as_embedded);
  const auto embedded = parse_tokenize_request(json::parse(
      R"({"input": "a", "as_embedded": true, "input_type": "sts", "eos_protocol": "single"})"));
  EXPECT_TRUE(embedded.as_embedded);
  EXPECT_EQ(embedded.text.input_type, InputType::kSts);
  EXPECT_EQ(embedded.text.eos_protocol, EosProtocol::kSingle);
  EXPECT_API_ERROR(parse_tokenize_request(json::parse(R"({"input": "a", "input_type": "sts"})")),
                   400, "input_type", "needs \"as_embedded\": true");
  EXPECT_API_ERROR(parse_tokenize_request(
                       json::parse(R"({"input": "a", "as_embedded": true, "add_eos": true})")),
                   400, "add_eos", "does not apply");
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

// ---------------------------------------------------------------------------
// Encodings

TEST(ApiEncoding, Base64Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain);
  }
  // Every byte value survives, and uses + and /.
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
}

TEST(ApiEncoding, Base64DecodeIsStrict) {
  EXPECT_EQ(base64_decode("Zg"), "f");  // padding may be omitted
  EXPECT_EQ(base64_decode("Zm8"), "fo");
  EXPECT_EQ(base64_decode("Zm9v!"), std::nullopt);
  EXPECT_EQ(base64_decode("Zm9v YmFy"), std::nullopt);  // whitespace
  EXPECT_EQ(base64_decode("Z"), std::nullopt);          // impossible length
  EXPECT_EQ(base64_decode("Zg="), std::nullopt);        // wrong padding
  EXPECT_EQ(base64_decode("Z=g="), std::nullopt);       // padding in the middle
  EXPECT_EQ(base64_decode("Zh=="), std::nullopt);       // non-zero leftover bits
  EXPECT_EQ(base64_decode("-_8="), std::nullopt);       // URL-safe alphabet
}

TEST(ApiEncoding, FloatsToBase64MatchesNumpy) {
  // np.array([1.0, -2.0], '<f4').tobytes() == 00 00 80 3f 00 00 00 c0
  const std::vector<float> values = {1.0f, -2.0f};
  EXPECT_EQ(floats_to_base64(values), "AACAPwAAAMA=");
  EXPECT_EQ(base64_decode("AACAPwAAAMA="), std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8));
  EXPECT_EQ(floats_to_base64(std::vector<float>{}), "");
  // 0.5 = 00 00 00 3f -> "AAAAPw=="
  EXPECT_EQ(floats_to_base64(std::vector<float>{0.5f}), "AAAAPw==");
}

TEST(ApiEncoding, FloatsBase64RoundTripIsBitExact) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> values(1027);
  for (auto& v : values) v = normal(rng);
  values[0] = -0.0f;
  values[1] = std::numeric_limits<float>::denorm_min();
  values[2] = std::numeric_limits<float>::infinity();
  const auto back = base64_to_floats(floats_to_base64(values));
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), values.size());
  EXPECT_EQ(std::memcmp(back->data(), values.data(), values.size() * sizeof(float)), 0);
  EXPECT_EQ(base64_to_floats("AAA="), std::nullopt);  // 2 bytes: not a float
}

TEST(ApiEncoding, JsonNumberIsShortestAndRoundTrips) {
  EXPECT_EQ(json(json_number(0.1f)).dump(), "0.1");
  EXPECT_EQ(json(json_number(1.0f / 3.0f)).dump(), "0.33333334");
  EXPECT_EQ(json(json_number(-1e-8f)).dump(), "-1e-08");
  EXPECT_EQ(json(json_number(std::numeric_limits<float>::quiet_NaN())).dump(), "null");
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 100000; ++i) {
    float f;
    const uint32_t b = bits(rng);
    std::memcpy(&f, &b, 4);
    if (!std::isfinite(f)) continue;
    const double parsed = json::parse(json(json_number(f)).dump()).get<double>();
    ASSERT_EQ(static_cast<float>(parsed), f) << b;
  }
}

TEST(ApiEncoding, FloatArray) {
  const std::vector<float> values = {0.25f, -1.5f};
  EXPECT_EQ(float_array(values), json({0.25, -1.5}));
  EXPECT_EQ(float_array(std::vector<float>{}), json::array());
}

TEST(ApiEncoding, Int8AndUint8Quantization) {
  const std::vector<float> values = {1.0f, -1.0f,  0.5f,
                                     0.0f, 0.004f, -0.004f,
                                     2.0f, -3.0f,  std::numeric_limits<float>::quiet_NaN()};
  // round(v * 127), clamped to [-127, 127]: 63.5 -> 64, 0.508 -> 1, NaN -> 0.
  EXPECT_EQ(quantize_int8(values), (std::vector<int8_t>{127, -127, 64, 0, 1, -1, 127, -127, 0}));
  // uint8 = int8 + 128.
  EXPECT_EQ(quantize_uint8(values),
            (std::vector<uint8_t>{255, 1, 192, 128, 129, 127, 255, 1, 128}));
  EXPECT_EQ(quantize_int8(values, 10.0f)[2], 5);
}

TEST(ApiEncoding, BinaryPacking) {
  // Signs 1 0 1 1 0 1 0 1 (0 counts as positive) = 0b10110101 = 181; 181 - 128 = 53.
  const std::vector<float> first = {0.1f, -0.2f, 0.3f, 0.0f, -0.5f, 0.6f, -0.7f, 0.8f};
  EXPECT_EQ(pack_ubinary(first), std::vector<uint8_t>{181});
  EXPECT_EQ(pack_binary(first), std::vector<int8_t>{53});
  // MSB first: only dimension 7 positive -> 0b00000001; only dimension 8 -> next byte 0x80.
  std::vector<float> sixteen(16, -1.0f);
  sixteen[7] = 1.0f;
  sixteen[8] = 1.0f;
  EXPECT_EQ(pack_ubinary(sixteen), (std::vector<uint8_t>{1, 128}));
  EXPECT_EQ(pack_binary(sixteen), (std::vector<int8_t>{-127, 0}));
  EXPECT_EQ(pack_ubinary(std::vector<float>(8, -1.0f)), std::vector<uint8_t>{0});
  EXPECT_EQ(pack_binary(std::vector<float>(8, -1.0f)), std::vector<int8_t>{-128});
  EXPECT_EQ(pack_binary(std::vector<float>(8, 1.0f)), std::vector<int8_t>{127});
  EXPECT_THROW(pack_ubinary(std::vector<float>(7, 1.0f)), std::invalid_argument);
  EXPECT_THROW(pack_binary(std::vector<float>(12, 1.0f)), std::invalid_argument);
}

TEST(ApiEncoding, RandomUuids) {
  const std::regex form("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = random_uuid();
    ASSERT_TRUE(std::regex_match(id, form)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
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

// ---------------------------------------------------------------------------
// Rerank

TEST(ApiRerank, V1StringsAndDefaults) {
  const auto request = parse_rerank(R"({"query": "q", "documents": ["a", "b", ""]})");
  EXPECT_EQ(request.api, RerankApi::kCohereV1);
  EXPECT_EQ(request.query, "q");
  ASSERT_EQ(request.documents.size(), 3u);
  EXPECT_EQ(request.documents[1].kind, RerankDocument::Kind::kText);
  EXPECT_EQ(request.documents[1].text, "b");
  EXPECT_EQ(request.documents[1].source, json({{"text", "b"}}));
  EXPECT_EQ(request.documents[2].text, "");
  EXPECT_EQ(request.top_n, 3u);
  EXPECT_FALSE(request.return_documents);
  EXPECT_EQ(request.max_tokens_per_doc, std::nullopt);
  EXPECT_EQ(request.model, "");
  EXPECT_FALSE(request.raw_scores);
}

TEST(ApiRerank, LangChainCohereRerankV2Request) {
  const auto request = parse_rerank(R"({"model": "rerank-v3.5", "query": "q",
      "documents": ["a", "b"], "top_n": 3, "max_tokens_per_doc": null})",
                                    RerankApi::kCohereV2);
  EXPECT_EQ(request.model, "rerank-v3.5");
  EXPECT_EQ(request.top_n, 2u);  // clamped
  EXPECT_EQ(request.max_tokens_per_doc, std::nullopt);
}

TEST(ApiRerank, ObjectAndStateDocuments) {
  const auto request = parse_rerank(R"({"query": "q", "documents": [
      "plain",
      {"text": "with extra", "title": "T"},
      {"state_id": "st-1"},
      {"state_id": null, "text": "null state id is absent"}]})");
  ASSERT_EQ(request.documents.size(), 4u);
  EXPECT_EQ(request.documents[1].kind, RerankDocument::Kind::kText);
  EXPECT_EQ(request.documents[1].text, "with extra");
  EXPECT_EQ(request.documents[1].source, json({{"text", "with extra"}, {"title", "T"}}));
  EXPECT_EQ(request.documents[2].kind, RerankDocument::Kind::kState);
  EXPECT_EQ(request.documents[2].state_id, "st-1");
  EXPECT_EQ(request.documents[2].source, json({{"state_id", "st-1"}}));
  EXPECT_EQ(request.documents[3].kind, RerankDocument::Kind::kText);
}

TEST(ApiRerank, RankFields) {
  const std::string docs = R"("documents": [{"title": "T", "body": "B", "n": 3},
                                            {"body": "only body"}, "plain"])";
  auto request = parse_rerank(R"({"query": "q", "rank_fields": ["body"], )" + docs + "}");
  EXPECT_EQ(request.documents[0].text, "B");
  EXPECT_EQ(request.documents[1].text, "only body");
  EXPECT_EQ(request.documents[2].text, "plain");
  request = parse_rerank(R"({"query": "q", "rank_fields": ["title", "n", "body"], )" + docs + "}");
  EXPECT_EQ(request.documents[0].text, "title: T\nn: 3\nbody: B");
  EXPECT_EQ(request.documents[1].text, "only body");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "rank_fields": ["title"], )" + docs + "}"), 400,
                   "documents", "'documents[1]' has none of the fields in 'rank_fields'");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "rank_fields": "title", )" + docs + "}"), 400,
                   "rank_fields", "an array of strings");
}

TEST(ApiRerank, DocumentErrors) {
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q"})"), 400, "documents", "'documents' is required");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": null})"), 400, "documents",
                   "'documents' is required");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": []})"), 400, "documents",
                   "'documents' must not be empty");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": "a"})"), 400, "documents",
                   "must be an array");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": ["a", 5]})"), 400, "documents",
                   "'documents[1]' must be a string, a {\"text\": ...} object");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": [{"title": "x"}]})"), 400,
                   "documents", "'documents[0]' must have a string 'text'");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": [{"text": 3}]})"), 400, "documents",
                   "'documents[0]' must have a string 'text'");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": [{"state_id": ""}]})"), 400,
                   "documents", "'documents[0].state_id' must be a non-empty string");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": [{"state_id": 7}]})"), 400,
                   "documents", "'documents[0].state_id'");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": [{"state_id": "s", "text": "t"}]})"),
                   400, "documents", "both 'text' and 'state_id'");
}

TEST(ApiRerank, QueryErrors) {
  EXPECT_API_ERROR(parse_rerank(R"({"documents": ["a"]})"), 400, "query", "'query' is required");
  EXPECT_API_ERROR(parse_rerank(R"({"query": null, "documents": ["a"]})"), 400, "query",
                   "'query' is required");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "", "documents": ["a"]})"), 400, "query",
                   "must not be empty or be only whitespace");
  EXPECT_API_ERROR(parse_rerank(R"({"query": " \n\t ", "documents": ["a"]})"), 400, "query",
                   "must not be empty or be only whitespace");
  EXPECT_API_ERROR(parse_rerank(R"({"query": ["q"], "documents": ["a"]})"), 400, "query",
                   "'query' must be a string");
}

TEST(ApiRerank, TopN) {
  const auto top_n = [](const std::string& value) {
    return parse_rerank(R"({"query": "q", "documents": ["a", "b", "c"], "top_n": )" + value + "}")
        .top_n;
  };
  EXPECT_EQ(top_n("1"), 1u);
  EXPECT_EQ(top_n("2"), 2u);
  EXPECT_EQ(top_n("3"), 3u);
  EXPECT_EQ(top_n("100"), 3u);  // clamped
  EXPECT_EQ(top_n("null"), 3u);
  EXPECT_EQ(top_n("0"), 3u);  // vLLM's "all"
  EXPECT_API_ERROR(top_n("-1"), 400, "top_n", "'top_n' must be a non-negative integer, got -1");
  EXPECT_API_ERROR(top_n("\"2\""), 400, "top_n", "'top_n'");
  EXPECT_API_ERROR(top_n("1.5"), 400, "top_n", "'top_n'");
}

TEST(ApiRerank, MaxTokensPerDocAndReturnDocuments) {
  const std::string head = R"({"query": "q", "documents": ["a"], )";
  EXPECT_EQ(parse_rerank(head + R"("max_tokens_per_doc": 512})").max_tokens_per_doc, 512);
  EXPECT_EQ(parse_rerank(head + R"("max_tokens_per_doc": 0})").max_tokens_per_doc, std::nullopt);
  EXPECT_API_ERROR(parse_rerank(head + R"("max_tokens_per_doc": -5})"), 400, "max_tokens_per_doc",
                   "'max_tokens_per_doc'");
  EXPECT_API_ERROR(parse_rerank(head + R"("max_tokens_per_doc": "512"})"), 400,
                   "max_tokens_per_doc", "'max_tokens_per_doc'");
  EXPECT_TRUE(parse_rerank(head + R"("return_documents": true})").return_documents);
  EXPECT_FALSE(parse_rerank(head + R"("return_documents": null})").return_documents);
  EXPECT_API_ERROR(parse_rerank(head + R"("return_documents": "yes"})"), 400, "return_documents",
                   "'return_documents' must be a boolean");
  EXPECT_API_ERROR(parse_rerank(head + R"("model": {}})"), 400, "model",
                   "'model' must be a string");
}

TEST(ApiRerank, Limits) {
  RequestLimits limits;
  limits.max_documents = 2;
  limits.max_input_bytes = 3;
  EXPECT_API_ERROR(
      parse_rerank(R"({"query": "q", "documents": ["a", "b", "c"]})", RerankApi::kCohereV1, limits),
      413, "documents", "over the limit of 2");
  EXPECT_API_ERROR(
      parse_rerank(R"({"query": "q", "documents": ["abcd"]})", RerankApi::kCohereV1, limits), 413,
      "documents", "'documents[0]' is 4 bytes long");
  EXPECT_API_ERROR(
      parse_rerank(R"({"query": "qqqq", "documents": ["a"]})", RerankApi::kCohereV1, limits), 413,
      "query", "'query' is 4 bytes long");
}

TEST(ApiRerank, TeiShape) {
  const json body = json::parse(
      R"({"query": "q", "texts": ["a", "b"], "return_text": true, "raw_scores": true,
          "truncate": true, "truncation_direction": "Right"})");
  EXPECT_EQ(rerank_api_for_bare_route(body), RerankApi::kTei);
  EXPECT_EQ(rerank_api_for_bare_route(json::parse(R"({"query": "q", "documents": ["a"]})")),
            RerankApi::kCohereV1);
  const auto request = parse_rerank_request(body, RerankApi::kTei);
  EXPECT_EQ(request.documents.size(), 2u);
  EXPECT_TRUE(request.return_documents);
  EXPECT_TRUE(request.raw_scores);
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "texts": [{"text": "a"}]})", RerankApi::kTei),
                   400, "texts", "'texts[0]' must be a string");
  EXPECT_API_ERROR(parse_rerank(R"({"query": "q", "documents": ["a"]})", RerankApi::kTei), 400,
                   "texts", "'texts' is required");
}

TEST(ApiRerank, RankOrder) {
  const std::vector<float> scores = {0.2f, 0.9f, 0.5f, 0.9f, std::nanf(""), 0.1f};
  EXPECT_EQ(rank_order(scores, 6), (std::vector<size_t>{1, 3, 2, 0, 5, 4}));
  EXPECT_EQ(rank_order(scores, 2), (std::vector<size_t>{1, 3}));
  EXPECT_EQ(rank_order(scores, 100).size(), 6u);
  EXPECT_TRUE(rank_order(std::vector<float>{}, 3).empty());
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(rank_order(std::vector<float>{std::nanf(""), -inf, inf}, 3),
            (std::vector<size_t>{2, 1, 0}));
  // Many ties: stable by index.
  const std::vector<float> ties(50, 0.5f);
  const auto order = rank_order(ties, 50);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
}

TEST(ApiRerank, SearchUnits) {
  EXPECT_EQ(search_units(0), 1);
  EXPECT_EQ(search_units(1), 1);
  EXPECT_EQ(search_units(100), 1);
  EXPECT_EQ(search_units(101), 2);
  EXPECT_EQ(search_units(1000), 10);
}

TEST(ApiRerank, V1ResponseShape) {
  const auto request = parse_rerank(R"({"query": "q", "documents": ["a", "b", "c"], "top_n": 2})");
  const std::vector<float> scores = {0.1f, 0.75f, 0.5f};
  const json response = rerank_response(request, scores, "rwkv-reranker", 42, "rid");
  EXPECT_EQ(keys(response), (std::set<std::string>{"id", "results", "meta", "model", "usage"}));
  EXPECT_EQ(response["id"], "rid");
  EXPECT_EQ(response["model"], "rwkv-reranker");
  EXPECT_EQ(response["results"], json::parse(R"([{"index": 1, "relevance_score": 0.75},
                                                 {"index": 2, "relevance_score": 0.5}])"));
  EXPECT_TRUE(response["results"][0]["index"].is_number_integer());
  EXPECT_TRUE(response["results"][0]["relevance_score"].is_number_float());
  EXPECT_EQ(response["meta"], json::parse(R"({"api_version": {"version": "1"},
                                               "billed_units": {"search_units": 1},
                                               "tokens": {"input_tokens": 42}})"));
  EXPECT_EQ(response["usage"], json({{"prompt_tokens", 42}, {"total_tokens", 42}}));
}

TEST(ApiRerank, ReturnDocumentsEchoesSources) {
  const auto request = parse_rerank(R"({"query": "q", "return_documents": true, "documents":
      ["plain", {"text": "obj", "id": 7}, {"state_id": "s1"}]})");
  const json response = rerank_response(request, std::vector<float>{0.3f, 0.2f, 0.1f}, "m", 0);
  const json& results = response["results"];
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0]["document"], json({{"text", "plain"}}));
  EXPECT_EQ(results[1]["document"], json({{"text", "obj"}, {"id", 7}}));
  EXPECT_EQ(results[2]["document"], json({{"state_id", "s1"}}));
  EXPECT_EQ(keys(results[0]), (std::set<std::string>{"index", "relevance_score", "document"}));
}

TEST(ApiRerank, V2ResponseAndUniqueIds) {
  const auto request =
      parse_rerank(R"({"model": "m", "query": "q", "documents": ["a"]})", RerankApi::kCohereV2);
  const json a = rerank_response(request, std::vector<float>{0.5f}, "m", 3);
  const json b = rerank_response(request, std::vector<float>{0.5f}, "m", 3);
  EXPECT_EQ(a["meta"]["api_version"]["version"], "2");
  EXPECT_TRUE(a["id"].is_string());
  EXPECT_NE(a["id"], b["id"]);
  EXPECT_FALSE(a["results"][0].contains("document"));
}

TEST(ApiRerank, ManyDocumentsBillSeveralUnits) {
  json body = {{"query", "q"}, {"documents", std::vector<std::string>(250, "d")}};
  const auto request = parse_rerank_request(body, RerankApi::kCohereV1);
  const json response = rerank_response(request, std::vector<float>(250, 0.5f), "m", 0);
  EXPECT_EQ(response["meta"]["billed_units"]["search_units"], 3);
  EXPECT_EQ(response["results"].size(), 250u);
}

TEST(ApiRerank, TeiResponseShape) {
  const auto with_text =
      parse_rerank(R"({"query": "q", "texts": ["a", "b"], "return_text": true})", RerankApi::kTei);
  const json response = rerank_response(with_text, std::vector<float>{0.25f, 0.5f}, "m", 9);
  EXPECT_EQ(response, json::parse(R"([{"index": 1, "score": 0.5, "text": "b"},
                                      {"index": 0, "score": 0.25, "text": "a"}])"));
  const auto without = parse_rerank(R"({"query": "q", "texts": ["a"]})", RerankApi::kTei);
  EXPECT_EQ(rerank_response(without, std::vector<float>{-1.5f}, "m", 1),
            json::parse(R"([{"index": 0, "score": -1.5}])"));
}

TEST(ApiRerank, ScoreCountMismatchIsAProgrammingError) {
  const auto request = parse_rerank(R"({"query": "q", "documents": ["a", "b"]})");
  EXPECT_THROW(rerank_response(request, std::vector<float>{0.5f}, "m", 0), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// POST /v1/states

CreateStatesRequest parse_states(const std::string& body, const RequestLimits& limits = {}) {
  return parse_create_states_request(json::parse(body), limits);
}

TEST(ApiStates, DocumentsIdsAndTtl) {
  const auto r = parse_states(
      R"({"model": "m", "ttl_seconds": 60, "documents": ["a", {"text": "b", "id": "doc-1.x_y"}]})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.ttl_seconds, 60);
  ASSERT_EQ(r.documents.size(), 2u);
  EXPECT_EQ(r.documents[0].text, "a");
  EXPECT_EQ(r.documents[0].id, "");
  EXPECT_EQ(r.documents[1].text, "b");
  EXPECT_EQ(r.documents[1].id, "doc-1.x_y");
  EXPECT_FALSE(parse_states(R"({"documents": ["a"], "ttl_seconds": null})").ttl_seconds);
}

TEST(ApiStates, IdsThatCouldNameOtherFilesAreRefused) {
  for (const char* id : {"..", ".", "a/b", "../x", "", "sp ace", "a\\b"})
    EXPECT_API_ERROR(
        parse_states(R"({"documents": [{"text": "t", "id": )" + json(id).dump() + "}]}"), 400,
        "documents", "invalid state id");
  EXPECT_API_ERROR(parse_states(R"({"documents": [{"text": "t", "id": 5}]})"), 400, "documents",
                   "invalid state id");
  EXPECT_API_ERROR(
      parse_states(R"({"documents": [{"text": "a", "id": "x"}, {"text": "b", "id": "x"}]})"), 400,
      "documents", "given twice");
}

TEST(ApiStates, BadFieldsAndLimits) {
  EXPECT_API_ERROR(parse_states(R"({})"), 400, "documents", "required");
  EXPECT_API_ERROR(parse_states(R"({"documents": []})"), 400, "documents", "non-empty");
  EXPECT_API_ERROR(parse_states(R"({"documents": [3]})"), 400, "documents", "documents[0]");
  EXPECT_API_ERROR(parse_states(R"({"documents": [{"id": "x"}]})"), 400, "documents", "'text'");
  EXPECT_API_ERROR(parse_states(R"({"documents": ["a"], "ttl_seconds": 0})"), 400, "ttl_seconds",
                   "ttl_seconds");
  RequestLimits limits;
  limits.max_inputs = 2;
  limits.max_input_bytes = 3;
  EXPECT_API_ERROR(parse_states(R"({"documents": ["a", "b", "c"]})", limits), 413, "documents",
                   "over the limit");
  EXPECT_API_ERROR(parse_states(R"({"documents": ["a", "long"]})", limits), 413, "documents",
                   "documents[1]");
}

// ---------------------------------------------------------------------------
// POST /tokenize, /detokenize

TEST(ApiTokenize, InputKeysListsAndEos) {
  const auto one = parse_tokenize_request(json::parse(R"({"content": "hi", "add_eos": false})"));
  EXPECT_EQ(one.texts, std::vector<std::string>{"hi"});
  EXPECT_FALSE(one.was_list);
  EXPECT_FALSE(one.add_eos);
  // The first key present and not null wins.
  const auto list = parse_tokenize_request(json::parse(R"({"input": null, "inputs": ["a", ""]})"));
  EXPECT_EQ(list.texts, (std::vector<std::string>{"a", ""}));
  EXPECT_TRUE(list.was_list);
  EXPECT_TRUE(list.add_eos);
  EXPECT_API_ERROR(parse_tokenize_request(json::parse(R"({"tokens": [1]})")), 400, "input",
                   "required");
  EXPECT_API_ERROR(parse_tokenize_request(json::parse(R"({"input": ["a", 1]})")), 400, "input",
                   "list of strings");
  EXPECT_API_ERROR(parse_tokenize_request(json::parse(R"({"content": 3})")), 400, "content",
                   "list of strings");
}

TEST(ApiTokenize, DetokenizeTakesOnlyVocabularyIds) {
  EXPECT_EQ(parse_detokenize_request(json::parse(R"({"tokens": [0, 33155, 65535, 2.0]})")),
            (std::vector<int32_t>{0, 33155, 65535, 2}));
  for (const char* bad : {"-1", "65530", "65536", "1.5", "\"1\"", "null"})
    EXPECT_API_ERROR(
        parse_detokenize_request(json::parse(std::string(R"({"tokens": [1, )") + bad + "]}")), 400,
        "tokens", "not an id of the vocabulary");
  EXPECT_API_ERROR(parse_detokenize_request(json::parse(R"({"tokens": "1"})")), 400, "tokens",
                   "list of token ids");
}

}  // namespace
}  // namespace rwkv::api
