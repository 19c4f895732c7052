// Embedding routes: OpenAI /v1/embeddings (and /embeddings), Cohere /v1/embed
// and /v2/embed.
#include "api/cohere_embed.h"
#include "api/json_fields.h"
#include "api/openai_embeddings.h"
#include "api/response_bodies.h"
#include "server/routes.h"
#include "server/service/embedding_service.h"

namespace rwkv::server {

void register_embedding_routes(http::Router& router, ServerContext& ctx) {
  auto openai = [&ctx](const http::Request& req, http::RequestContext& rc) {
    api::EmbeddingsRequest r =
        api::parse_embeddings_request(api::parse_body(req.body), ctx.options.limits);
    const bool base64 = r.base64;
    return answer(rc, service::embed(ctx.served(), service::embed_request(std::move(r))),
                  [base64](const service::Embeddings& e) {
                    return api::embeddings_response(e.vectors, base64, e.model, e.tokens);
                  });
  };
  router.add({"POST", "/v1/embeddings"}, openai);
  router.add({"POST", "/embeddings"}, openai);
  for (int version : {1, 2}) {
    router.add({"POST", "/v" + std::to_string(version) + "/embed", http::ErrorStyle::kCohere},
               [&ctx, version](const http::Request& req, http::RequestContext& rc) {
                 api::CohereEmbedRequest r =
                     api::parse_cohere_embed_request(api::parse_body(req.body), version,
                                                     ctx.engine->channels(), ctx.options.limits);
                 service::EmbedRequest request = service::embed_request(r);
                 return answer(rc, service::embed(ctx.served(), std::move(request)),
                               [r = std::move(r)](const service::Embeddings& e) {
                                 return api::cohere_embed_response(r, e.vectors, e.tokens);
                               });
               });
  }
}

}  // namespace rwkv::server
