// Service routes: health, models, version, metrics, tokenizer.
#include "api/json_fields.h"
#include "api/tokenize_request.h"
#include "engine/text/tokenizer.h"
#include "server/routes.h"

namespace rwkv::server {
namespace {

using nlohmann::json;

json model_card(const ServerContext& ctx, const std::string& name) {
  const model::EmbeddingWeights& m = ctx.engine->model();
  json card = {{"id", name},
               {"object", "model"},
               {"created", 0},
               {"owned_by", "rwkv-emb-server"},
               {"meta",
                {{"dimensions", m.stack.channels},
                 {"layers", m.stack.layers},
                 {"heads", m.stack.heads},
                 {"max_input_tokens", ctx.options.limits.max_input_tokens},
                 {"eos_protocol", api::eos_protocol_name(ctx.preprocessor.protocol())},
                 {"reranker", ctx.engine->has_reranker()},
                 {"demo", ctx.demo_model},
                 {"dtype", kernels::matmul_dtype_name(
                               resolve_dtype(ctx.options.dtype, ctx.options.device))}}}};
  if (ctx.demo_model)
    card["meta"]["warning"] = "random demo model: embeddings and scores are meaningless";
  return card;
}

// Exactly what /v1/embeddings runs for each text with "as_embedded", else the plain ids.
json tokenize(const ServerContext& ctx, const api::TokenizeRequest& r) {
  const api::InputType type = ctx.catalog.input_type_for(r.text, "");
  json tokens = json::array();
  for (size_t i = 0; i < r.texts.size(); ++i) {
    if (r.as_embedded)
      tokens.push_back(ctx.preprocessor
                           .embedding_text(r.texts[i], type, r.text, SIZE_MAX, api::Truncate::kNone,
                                           "input[" + std::to_string(i) + "]", "input")
                           .ids);
    else
      tokens.push_back(text::Tokenizer::world().encode(r.texts[i], r.add_eos));
  }
  return {{"tokens", r.was_list ? tokens : tokens[0]}};
}

}  // namespace

void register_info_routes(http::Router& router, ServerContext& ctx) {
  router.add({"GET", "/health", http::ErrorStyle::kOpenAI, false}, [&ctx](const http::Request&,
                                                                          http::RequestContext&) {
    if (ctx.ready) return http::Response::json(200, {{"status", "ok"}});
    return http::Response::error(http::ErrorStyle::kOpenAI, api::ApiError::unavailable("not ready"))
        .with_header("Retry-After", "1");
  });

  auto models = [&ctx](const http::Request&, http::RequestContext&) {
    json data = json::array();
    for (const std::string& name : ctx.catalog.names()) data.push_back(model_card(ctx, name));
    for (const auto& [name, type] : ctx.catalog.typed_aliases()) {
      data.push_back(model_card(ctx, name));
      data.back()["meta"]["input_type"] = api::input_type_name(type);
    }
    return http::Response::json(200, {{"object", "list"}, {"data", data}});
  };
  router.add({"GET", "/v1/models"}, models);
  router.add({"GET", "/models"}, models);

  router.add({"GET", "/version", http::ErrorStyle::kOpenAI, false}, [](const http::Request&,
                                                                       http::RequestContext&) {
    return http::Response::json(200, {{"name", "rwkv-emb-server"}, {"version", RWKV_EMB_VERSION}});
  });

  router.add({"GET", "/metrics", http::ErrorStyle::kOpenAI, false}, [&ctx](const http::Request&,
                                                                           http::RequestContext&) {
    ctx.metrics.set_queue(ctx.scheduler->queued_requests(), ctx.scheduler->queued_tokens());
    return http::Response::content(ctx.metrics.serialize(), "text/plain; version=0.0.4");
  });

  router.add({"POST", "/tokenize"}, [&ctx](const http::Request& req, http::RequestContext&) {
    return http::Response::json(
        200, tokenize(ctx, api::parse_tokenize_request(api::parse_body(req.body))));
  });

  router.add({"POST", "/detokenize"}, [](const http::Request& req, http::RequestContext&) {
    const std::vector<int32_t> ids = api::parse_detokenize_request(api::parse_body(req.body));
    // Ids may split a UTF-8 character: the JSON writer replaces such bytes with U+FFFD.
    return http::Response::json(200, {{"text", text::Tokenizer::world().decode(ids)}});
  });
}

}  // namespace rwkv::server
