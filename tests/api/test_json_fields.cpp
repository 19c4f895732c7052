// api/api_error.h and api/json_fields.h: the error bodies, body parsing and
// UTF-8 checks, and the field readers (every bad input is an ApiError with the
// right status and a message naming the field).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/json_fields.h"
#include "tests/api/api_test_helpers.h"

namespace rwkv::api {
namespace {

using nlohmann::json;

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

}  // namespace
}  // namespace rwkv::api
