// Service routes: health, models, version, metrics, tokenizer.
#include <ctime>

#include "api/tokenize_request.h"
#include "engine/text/tokenizer.h"
#include "server/http_server.h"
#include "server/http_util.h"

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
                 {"max_input_tokens", ctx.options.max_input_tokens},
                 {"eos_protocol", api::eos_protocol_name(ctx.inputs.protocol())},
                 {"reranker", ctx.engine->has_reranker()},
                 {"demo", ctx.demo_model},
                 {"dtype", kernels::matmul_dtype_name(
                               resolve_dtype(ctx.options.dtype, ctx.options.device))}}}};
  if (ctx.demo_model)
    card["meta"]["warning"] = "random demo model: embeddings and scores are meaningless";
  return card;
}

}  // namespace

void register_info_routes(httplib::Server& http, ServerContext& ctx) {
  auto health = [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.ready) {
      send_json(res, 200, {{"status", "ok"}});
    } else {
      send_error(res, ErrorStyle::kOpenAI, api::ApiError::unavailable("not ready"));
      res.set_header("Retry-After", "1");
    }
  };
  add_route(http, ctx, {"GET", "/health", ErrorStyle::kOpenAI, false}, health);

  auto models = [&ctx](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (const std::string& name : ctx.options.served_model_names)
      data.push_back(model_card(ctx, name));
    for (const auto& [name, type] : ctx.typed_models) {  // aliases that imply an input type
      data.push_back(model_card(ctx, name));
      data.back()["meta"]["input_type"] = api::input_type_name(type);
    }
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  };
  add_route(http, ctx, {"GET", "/v1/models"}, models);
  add_route(http, ctx, {"GET", "/models"}, models);

  add_route(http, ctx, {"GET", "/version", ErrorStyle::kOpenAI, false},
            [](const httplib::Request&, httplib::Response& res) {
              send_json(res, 200, {{"name", "rwkv-emb-server"}, {"version", RWKV_EMB_VERSION}});
            });

  add_route(http, ctx, {"GET", "/metrics", ErrorStyle::kOpenAI, false},
            [&ctx](const httplib::Request&, httplib::Response& res) {
              ctx.metrics.set_queue(ctx.scheduler->queued_requests(),
                                    ctx.scheduler->queued_tokens());
              res.status = 200;
              res.set_content(ctx.metrics.serialize(), "text/plain; version=0.0.4");
            });

  add_route(http, ctx, {"POST", "/tokenize"},
            [&ctx](const httplib::Request& req, httplib::Response& res) {
              const api::TokenizeRequest r = api::parse_tokenize_request(json_body(req));
              const api::InputType type = ctx.input_type_for(r.text, "");
              json tokens = json::array();
              for (size_t i = 0; i < r.texts.size(); ++i) {
                if (r.as_embedded)  // exactly what /v1/embeddings runs for this text
                  tokens.push_back(ctx.inputs
                                       .prepare(r.texts[i], type, r.text,
                                                size_t(ctx.options.max_input_tokens),
                                                api::Truncate::kNone,
                                                "input[" + std::to_string(i) + "]", "input")
                                       .ids);
                else
                  tokens.push_back(text::Tokenizer::world().encode(r.texts[i], r.add_eos));
              }
              send_json(res, 200, {{"tokens", r.was_list ? tokens : tokens[0]}});
            });

  add_route(http, ctx, {"POST", "/detokenize"},
            [](const httplib::Request& req, httplib::Response& res) {
              const std::vector<int32_t> ids = api::parse_detokenize_request(json_body(req));
              // Ids may split a UTF-8 character: the JSON writer replaces such bytes with U+FFFD.
              send_json(res, 200, {{"text", text::Tokenizer::world().decode(ids)}});
            });
}

}  // namespace rwkv::server
