// Rerank bodies of every shape: Cohere v1 (and Jina), Cohere v2 and TEI,
// plus the bare /rerank route's choice between them. Parse and validate,
// then build the response with documents echoed.
#include <numeric>

#include "api/rerank.h"
#include "api/response_bodies.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rwkv;
  const auto parse_as = [](std::optional<api::RerankApi> route) {
    return [route](const nlohmann::json& body, const api::RequestLimits& limits) {
      const api::RerankApi which = route ? *route : api::rerank_api_for_bare_route(body);
      api::RerankRequest r = api::parse_rerank_request(body, which, limits);
      fuzz::check(!r.documents.empty() && r.documents.size() <= limits.max_documents,
                  "document count");
      fuzz::check(r.top_n >= 1 && r.top_n <= r.documents.size(), "top_n");
      fuzz::check(!r.max_tokens_per_doc || *r.max_tokens_per_doc > 0, "max_tokens_per_doc");
      for (const api::RerankDocument& d : r.documents)
        fuzz::check(d.kind == api::RerankDocument::Kind::kText || !d.state_id.empty(),
                    "state document without an id");
      std::vector<float> scores(r.documents.size());
      std::iota(scores.begin(), scores.end(), -1.0f);
      const std::vector<size_t> order = api::rank_order(scores, r.top_n);
      fuzz::check(order.size() == r.top_n, "rank_order size");
      r.return_documents = true;
      api::rerank_response(r, scores, r.model, 1).dump();
    };
  };
  fuzz::parse_request(data, size, parse_as(api::RerankApi::kCohereV1));
  fuzz::parse_request(data, size, parse_as(api::RerankApi::kCohereV2));
  fuzz::parse_request(data, size, parse_as(api::RerankApi::kTei));
  fuzz::parse_request(data, size, parse_as(std::nullopt));
  return 0;
}
