// api/states_request.h and api/tokenize_request.h: POST /v1/states, and
// /tokenize and /detokenize requests.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/input_protocol.h"
#include "api/states_request.h"
#include "api/tokenize_request.h"
#include "tests/api/api_test_helpers.h"

namespace rwkv::api {
namespace {

using nlohmann::json;

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
