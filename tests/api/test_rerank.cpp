// api/rerank.h and api/response_bodies.h: rerank requests for Cohere v1/v2, Jina and TEI
// (documents, query, top_n, limits), the rank order and search units, and the exact response
// shapes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/api/api_test_helpers.h"

namespace rwkv::api {
namespace {

using nlohmann::json;

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

}  // namespace
}  // namespace rwkv::api
