// /v1/states: cached document states for offline reranking. POST computes
// and stores the state of each document; PUT uploads a blob
// (docs/state-format.md); GET reads metadata, content or the list; DELETE
// removes. The work is service/state_service.h's; here the HTTP shapes.
#include "api/json_fields.h"
#include "api/states_request.h"
#include "server/routes.h"
#include "server/service/state_service.h"

namespace rwkv::server {
namespace {

using nlohmann::json;

constexpr int64_t kDefaultListLimit = 100, kMaxListLimit = 1000;

json state_json(ServerContext& ctx, const states::StateMeta& m) {
  return {{"object", "state"},
          {"id", m.id},
          {"created_at", m.created_ms / 1000},
          {"expires_at", m.expires_ms ? json(m.expires_ms / 1000) : json(nullptr)},
          {"tokens", m.info.tokens},
          {"bytes", m.info.bytes},
          {"dtype", std::string(states::state_dtype_name(m.info.dtype))},
          {"layers", m.info.shape.layers},
          {"heads", m.info.shape.heads},
          {"channels", m.info.shape.channels},
          {"fingerprint", m.info.fingerprint.hex()},
          {"compatible", service::compatible(ctx.served(), ctx.storage(), m.info)}};
}

// A query parameter as an integer in [min, max]; nullopt when absent.
std::optional<int64_t> int_param(const http::Request& req, const std::string& name, int64_t min,
                                 int64_t max) {
  const std::optional<std::string> v = req.query_param(name);
  if (!v) return std::nullopt;
  size_t used = 0;
  int64_t n = 0;
  try {
    n = std::stoll(*v, &used);
  } catch (const std::exception&) {
    used = 0;  // "" is no integer either: 400
  }
  if (used != v->size() || n < min || n > max)
    throw api::ApiError::bad_request("query parameter '" + name + "' must be an integer from " +
                                         std::to_string(min) + " to " + std::to_string(max),
                                     name);
  return n;
}

// The {id} of a /v1/states/{id} path, validated.
std::string path_id(const http::Request& req) {
  const std::string id = req.path_params.empty() ? std::string() : req.path_params[0];
  if (!states::valid_state_id(id)) throw api::invalid_state_id(id, "id");
  return id;
}

// POST /v1/states {"model", "documents": [string | {"text", "id"?}], "ttl_seconds"?, "dtype"?}
http::Response create(ServerContext& ctx, const http::Request& req, http::RequestContext& rc) {
  const api::CreateStatesRequest r =
      api::parse_create_states_request(api::parse_body(req.body), ctx.options.limits);
  return answer(
      rc, service::create_states(ctx.served(), ctx.storage(), r, rc.owner()),
      [](const service::CreatedStates& created) {
        json data = json::array();
        for (size_t i = 0; i < created.states.size(); ++i)
          data.push_back({{"object", "state"},
                          {"id", created.states[i].id},
                          {"index", i},
                          {"tokens", created.states[i].tokens},
                          {"bytes", created.states[i].bytes}});
        return json{
            {"object", "list"},
            {"data", std::move(data)},
            {"model", created.model},
            {"usage", {{"prompt_tokens", created.tokens}, {"total_tokens", created.tokens}}}};
      });
}

// PUT /v1/states/{id} with a state blob (application/octet-stream).
http::Response upload(ServerContext& ctx, const http::Request& req, http::RequestContext& rc) {
  const std::string id = path_id(req);
  const std::string type = req.header("Content-Type");
  if (type.starts_with("multipart/") || type.starts_with("application/json"))
    throw api::ApiError(
        415, "send the state blob itself as the body, with Content-Type: application/octet-stream");
  if (req.body.empty())
    throw api::ApiError::bad_request("the body must be a state blob (docs/state-format.md)");
  const std::optional<int64_t> ttl = int_param(req, "ttl_seconds", 1, api::kMaxStateTtlSeconds);
  const service::UploadedState stored =
      service::upload_state(ctx.served(), ctx.storage(), rc.owner(), id, req.body, ttl);
  return http::Response::json(stored.replaced ? 200 : 201, state_json(ctx, stored.meta));
}

http::Response list(ServerContext& ctx, const http::Request& req, http::RequestContext& rc) {
  const int64_t limit = int_param(req, "limit", 1, kMaxListLimit).value_or(kDefaultListLimit);
  const std::string after = req.query_param("after").value_or("");
  if (after.size() > 128) throw api::ApiError::bad_request("'after' must be a state id", "after");
  const states::StateListPage page =
      service::list_states(ctx.storage(), rc.owner(), after, size_t(limit));
  json data = json::array();
  for (const states::StateMeta& m : page.items) data.push_back(state_json(ctx, m));
  return http::Response::json(
      200, {{"object", "list"},
            {"data", std::move(data)},
            {"has_more", page.has_more},
            {"first_id", page.items.empty() ? json(nullptr) : json(page.items.front().id)},
            {"last_id", page.items.empty() ? json(nullptr) : json(page.items.back().id)}});
}

http::Response content(ServerContext& ctx, const http::Request& req, http::RequestContext& rc) {
  const std::string id = path_id(req);
  std::optional<states::StateDtype> dtype;
  if (const auto name = req.query_param("dtype"))
    dtype = api::parse_state_dtype_param(*name, "dtype");
  return http::Response::content(service::state_content(ctx.storage(), rc.owner(), id, dtype),
                                 "application/octet-stream")
      .with_header("Content-Disposition", "attachment; filename=\"" + id + ".rwkvstate\"");
}

}  // namespace

void register_state_routes(http::Router& router, ServerContext& ctx) {
  const auto with_ctx = [&ctx](auto handler) {
    return [&ctx, handler](const http::Request& req, http::RequestContext& rc) {
      return handler(ctx, req, rc);
    };
  };
  router.add({"POST", "/v1/states"}, with_ctx(create));
  router.add({"GET", "/v1/states"}, with_ctx(list));
  router.add(
      {"GET", "/v1/states/([^/]+)"}, [&ctx](const http::Request& req, http::RequestContext& rc) {
        return http::Response::json(
            200, state_json(ctx, service::state_meta(ctx.storage(), rc.owner(), path_id(req))));
      });
  router.add({"GET", "/v1/states/([^/]+)/content"}, with_ctx(content));
  router.add({"PUT", "/v1/states/([^/]+)"}, with_ctx(upload));
  router.add({"DELETE", "/v1/states/([^/]+)"}, [&ctx](const http::Request& req,
                                                      http::RequestContext& rc) {
    const std::string id = path_id(req);
    service::delete_state(ctx.storage(), rc.owner(), id);
    return http::Response::json(200, {{"object", "state.deleted"}, {"id", id}, {"deleted", true}});
  });
  ctx.metrics.set_state_source(
      [&ctx] { return ctx.states ? ctx.states->stats() : states::StateStoreStats{}; });
  ctx.metrics.set_state_cache_source([&ctx] {
    return ctx.state_cache ? ctx.state_cache->stats() : states::DecodedStateCacheStats{};
  });
}

}  // namespace rwkv::server
