// Rerank routes: Cohere /v1/rerank (also Jina), /v2/rerank, and /rerank (TEI
// or Jina shape, told by the body).
#include <optional>

#include "api/json_fields.h"
#include "api/rerank.h"
#include "api/response_bodies.h"
#include "server/routes.h"
#include "server/service/rerank_service.h"

namespace rwkv::server {

void register_rerank_routes(http::Router& router, ServerContext& ctx) {
  const std::pair<const char*, std::optional<api::RerankApi>> routes[] = {
      {"/v1/rerank", api::RerankApi::kCohereV1},
      {"/v2/rerank", api::RerankApi::kCohereV2},
      {"/rerank", std::nullopt}};
  for (const auto& [path, which] : routes) {
    // `route_api = which`: clang before 16 cannot capture a structured binding.
    router.add({"POST", path, http::ErrorStyle::kCohere},
               [&ctx, route_api = which](const http::Request& req, http::RequestContext& rc) {
                 const nlohmann::json body = api::parse_body(req.body);
                 const api::RerankRequest r = api::parse_rerank_request(
                     body, route_api ? *route_api : api::rerank_api_for_bare_route(body),
                     ctx.options.limits);
                 return answer(rc, service::rerank(ctx.served(), ctx.storage(), r, rc.owner()),
                               [r](const service::RerankScores& s) {
                                 return api::rerank_response(r, s.scores, s.model, s.tokens);
                               });
               });
  }
}

}  // namespace rwkv::server
