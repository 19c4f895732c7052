// /v1/states: cached document states for offline reranking (docs/model.md
// "Offline mode"). POST computes the state of each document's offline
// template (no EOS) and stores it; PUT uploads a blob (docs/state-format.md);
// GET reads metadata, content or the list; DELETE removes. States belong to
// the API key that created them (state_access.h).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "api/request_id.h"
#include "api/states_request.h"
#include "engine/text/prompt_templates.h"
#include "engine/text/tokenizer.h"
#include "server/auth.h"
#include "server/http_server.h"
#include "server/http_util.h"
#include "server/state_access.h"

namespace rwkv::server {
namespace {

using nlohmann::json;

constexpr int64_t kDefaultListLimit = 100, kMaxListLimit = 1000;
constexpr uint64_t kMaxStateBytesPerRequest =
    uint64_t(512) << 20;  // POST /v1/states: 220 states of the 0.1B model

json state_json(const ServerContext& ctx, const states::StateMeta& m) {
  const states::StateShape model_shape = ctx.engine->state_shape();
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
          {"compatible", m.info.fingerprint == ctx.fingerprint && m.info.shape == model_shape}};
}

int64_t expiry_ms(std::optional<int64_t> ttl_seconds) {
  return ttl_seconds ? states::unix_now_ms() + *ttl_seconds * 1000 : 0;
}

// A query parameter as an integer in [min, max]; nullopt when absent or empty.
std::optional<int64_t> int_param(const httplib::Request& req, const std::string& name, int64_t min,
                                 int64_t max) {
  if (!req.has_param(name.c_str())) return std::nullopt;
  const std::string v = req.get_param_value(name.c_str());  // "" is no integer: 400
  size_t used = 0;
  int64_t n = 0;
  try {
    n = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || n < min || n > max)
    throw api::ApiError::bad_request("query parameter '" + name + "' must be an integer from " +
                                         std::to_string(min) + " to " + std::to_string(max),
                                     name);
  return n;
}

// The {id} of a /v1/states/{id} path, validated.
std::string path_id(const httplib::Request& req) {
  const std::string id = req.matches.size() > 1 ? std::string(req.matches[1]) : std::string();
  if (!states::valid_state_id(id)) throw api::invalid_state_id(id, "id");
  return id;
}

struct NewState {
  std::string id;
  bool client_id = false;
  std::vector<int32_t> tokens;
};

// POST /v1/states {"model", "documents": [string | {"text", "id"?}], "ttl_seconds"?}
void create_states(ServerContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const api::CreateStatesRequest request =
      api::parse_create_states_request(json_body(req), ctx.request_limits());
  const std::string& model = request.model;
  ctx.require_model(model);
  const std::optional<int64_t> ttl = request.ttl_seconds;
  const states::StateDtype dtype = request.dtype.value_or(ctx.options.state_dtype);
  // Every computed state is held in memory until the request ends: bound their total.
  const uint64_t state_bytes =
      states::state_blob_size(ctx.engine->state_shape(), states::StateDtype::kFloat32);
  const size_t max_states = size_t(std::max<uint64_t>(1, kMaxStateBytesPerRequest / state_bytes));
  if (request.documents.size() > max_states)
    throw api::ApiError::payload_too_large(
        "at most " + std::to_string(max_states) +
            " documents per request for this model (each state takes " +
            std::to_string(state_bytes) + " bytes); split the request",
        "documents");

  const std::string owner = request_state_owner(ctx, req);
  std::vector<NewState> states;
  for (size_t i = 0; i < request.documents.size(); ++i) {
    const api::StateDocument& document = request.documents[i];
    NewState s;
    s.id = document.id;
    s.client_id = !document.id.empty();
    s.tokens = text::Tokenizer::world().encode(text::rerank_document_text(document.text), false);
    if (s.tokens.size() > size_t(ctx.options.max_input_tokens))
      throw api::ApiError::too_many_tokens(
          "'documents[" + std::to_string(i) + "]' with the template", s.tokens.size(),
          ctx.options.max_input_tokens, "documents");
    states.push_back(std::move(s));
  }
  // Before computing anything: the store answers, and client ids are free.
  ctx.states->check_available();
  for (const NewState& s : states)
    if (s.client_id && ctx.states->stat(owner, s.id))
      throw api::ApiError(409,
                          "a state with id '" + s.id +
                              "' already exists; DELETE it first, or PUT /v1/states/" + s.id +
                              " to replace it",
                          "documents", "state_exists");
  for (NewState& s : states)
    if (!s.client_id) s.id = "state-" + api::random_uuid();

  std::vector<scheduling::SequenceJob> jobs;
  int64_t total_tokens = 0;
  for (const NewState& s : states) {
    scheduling::SequenceJob job;
    job.tokens = s.tokens;
    job.wanted = {model::Output::kFinalState};
    total_tokens += int64_t(s.tokens.size());
    jobs.push_back(std::move(job));
  }
  const std::string model_name = model.empty() ? ctx.model_name() : model;
  const int64_t expires = expiry_ms(ttl);
  auto pending = ctx.scheduler->submit(std::move(jobs));
  // Storing may still fail (507, 503) after computing.
  respond_when_done(
      res, ctx, pending,
      [&ctx, states = std::move(states), owner, expires, model_name, total_tokens,
       dtype](std::vector<model::Engine::Result>& results) {
        const states::StateShape shape = ctx.engine->state_shape();
        const int64_t now = states::unix_now_ms();
        std::vector<std::string> stored;
        json data = json::array();
        try {
          for (size_t i = 0; i < states.size(); ++i) {
            auto blob = std::make_shared<const std::string>(states::encode_state(
                results[i].state, ctx.fingerprint, shape, dtype, states[i].tokens.size()));
            states::StateMeta meta;
            meta.owner = owner;
            meta.id = states[i].id;
            meta.created_ms = now;
            meta.expires_ms = expires;
            if (!ctx.states->put(meta, blob, false))
              throw api::ApiError(409,
                                  "a state with id '" + states[i].id + "' was created meanwhile",
                                  "documents", "state_exists");
            stored.push_back(states[i].id);
            data.push_back({{"object", "state"},
                            {"id", states[i].id},
                            {"index", i},
                            {"tokens", states[i].tokens.size()},
                            {"bytes", blob->size()}});
          }
        } catch (...) {
          for (const std::string& id : stored) {  // all or nothing
            try {
              ctx.states->erase(owner, id);
            } catch (...) {
            }
          }
          throw;
        }
        return json{{"object", "list"},
                    {"data", std::move(data)},
                    {"model", model_name},
                    {"usage", {{"prompt_tokens", total_tokens}, {"total_tokens", total_tokens}}}};
      });
}

// PUT /v1/states/{id} with a state blob (application/octet-stream).
void upload_state(ServerContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const std::string id = path_id(req);
  const std::string type = req.get_header_value("Content-Type");
  if (type.starts_with("multipart/") || type.starts_with("application/json"))
    throw api::ApiError(
        415, "send the state blob itself as the body, with Content-Type: application/octet-stream");
  if (req.body.empty())
    throw api::ApiError::bad_request("the body must be a state blob (docs/state-format.md)");
  const std::optional<int64_t> ttl = int_param(req, "ttl_seconds", 1, api::kMaxStateTtlSeconds);
  // A blob the server cannot use: 400, 422 or 409 by its kind (server/error_table.h).
  states::decode_state(req.body, ctx.fingerprint, ctx.engine->state_shape());
  const std::string owner = request_state_owner(ctx, req);
  const bool existed = ctx.states->stat(owner, id).has_value();
  states::StateMeta meta;
  meta.owner = owner;
  meta.id = id;
  meta.created_ms = states::unix_now_ms();
  meta.expires_ms = expiry_ms(ttl);
  auto blob = std::make_shared<const std::string>(req.body);
  ctx.states->put(meta, blob, true);
  ctx.state_cache->erase(owner, id);  // frees it now; a stale entry is never used anyway
  meta.info = states::inspect_state_blob(*blob);
  send_json(res, existed ? 200 : 201, state_json(ctx, meta));
}

void register_routes(httplib::Server& http, ServerContext& ctx) {
  add_route(http, ctx, {"POST", "/v1/states"},
            [&ctx](const httplib::Request& req, httplib::Response& res) {
              create_states(ctx, req, res);
            });

  add_route(
      http, ctx, {"GET", "/v1/states"},
      [&ctx](const httplib::Request& req, httplib::Response& res) {
        const int64_t limit = int_param(req, "limit", 1, kMaxListLimit).value_or(kDefaultListLimit);
        const std::string after = req.has_param("after") ? req.get_param_value("after") : "";
        if (after.size() > 128)
          throw api::ApiError::bad_request("'after' must be a state id", "after");
        const states::StateListPage page =
            ctx.states->list(request_state_owner(ctx, req), after, size_t(limit));
        json data = json::array();
        for (const states::StateMeta& m : page.items) data.push_back(state_json(ctx, m));
        send_json(res, 200,
                  {{"object", "list"},
                   {"data", std::move(data)},
                   {"has_more", page.has_more},
                   {"first_id", page.items.empty() ? json(nullptr) : json(page.items.front().id)},
                   {"last_id", page.items.empty() ? json(nullptr) : json(page.items.back().id)}});
      });

  add_route(http, ctx, {"GET", "/v1/states/([^/]+)"},
            [&ctx](const httplib::Request& req, httplib::Response& res) {
              const std::string id = path_id(req);
              const auto meta = ctx.states->stat(request_state_owner(ctx, req), id);
              if (!meta) throw api::ApiError::not_found("no state with id '" + id + "'", "id");
              send_json(res, 200, state_json(ctx, *meta));
            });

  add_route(
      http, ctx, {"GET", "/v1/states/([^/]+)/content"},
      [&ctx](const httplib::Request& req, httplib::Response& res) {
        const std::string id = path_id(req);
        std::optional<states::StateDtype> dtype;
        if (req.has_param("dtype"))
          dtype = api::parse_state_dtype_param(req.get_param_value("dtype"), "dtype");
        const auto stored = ctx.states->get(request_state_owner(ctx, req), id);
        if (!stored) throw api::ApiError::not_found("no state with id '" + id + "'", "id");
        res.status = 200;
        res.set_header("Content-Disposition", "attachment; filename=\"" + id + ".rwkvstate\"");
        if (!dtype || *dtype == stored->meta.info.dtype) {
          res.set_content(*stored->blob, "application/octet-stream");
          return;
        }
        try {
          res.set_content(states::convert_state_blob(*stored->blob, *dtype),
                          "application/octet-stream");
        } catch (const states::StateBlobError& e) {  // a damaged file
          throw api::ApiError::unprocessable("state '" + id + "' cannot be converted: " + e.what());
        }
      });

  add_route(
      http, ctx, {"PUT", "/v1/states/([^/]+)"},
      [&ctx](const httplib::Request& req, httplib::Response& res) { upload_state(ctx, req, res); });

  add_route(http, ctx, {"DELETE", "/v1/states/([^/]+)"},
            [&ctx](const httplib::Request& req, httplib::Response& res) {
              const std::string id = path_id(req);
              const std::string owner = request_state_owner(ctx, req);
              ctx.state_cache->erase(owner, id);
              if (!ctx.states->erase(owner, id))
                throw api::ApiError::not_found("no state with id '" + id + "'", "id");
              send_json(res, 200, {{"object", "state.deleted"}, {"id", id}, {"deleted", true}});
            });
}

}  // namespace

std::string request_state_owner(const ServerContext& ctx, const httplib::Request& req) {
  return state_owner(ctx.options.api_keys, req.get_header_value("Authorization"));
}

std::vector<std::shared_ptr<const states::SequenceState>> load_cached_states(
    ServerContext& ctx, const std::string& owner, const std::vector<std::string>& ids,
    const std::vector<std::string>& wheres) {
  for (const std::string& id : ids)
    if (!states::valid_state_id(id)) throw api::invalid_state_id(id, "documents");
  const auto unknown = [&](size_t i) {
    return api::ApiError::not_found(wheres[i] + ": unknown state_id '" + ids[i] + "'", "documents");
  };
  // One metadata read tells the cache's entries from overwritten states.
  const std::vector<std::optional<states::StateMeta>> metas = ctx.states->stat_many(owner, ids);
  std::vector<std::shared_ptr<const states::SequenceState>> out(ids.size());
  std::vector<size_t> missing;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (metas[i])
      out[i] = ctx.state_cache->find(owner, ids[i], metas[i]->write_id);
    else
      ctx.state_cache->erase(owner, ids[i]);  // deleted or expired: free its entry
    if (!out[i]) missing.push_back(i);        // fetched: a missing one counts as the store's miss
  }
  if (missing.empty()) return out;
  std::vector<std::string> fetch;
  for (size_t i : missing) fetch.push_back(ids[i]);
  const std::vector<std::optional<states::StoredState>> stored = ctx.states->get_many(owner, fetch);
  uint64_t bytes = 0;
  for (size_t k = 0; k < missing.size(); ++k) {
    const size_t i = missing[k];
    if (!stored[k]) throw unknown(i);
    bytes += stored[k]->blob->size();
    try {
      out[i] = std::make_shared<const states::SequenceState>(
          states::decode_state(*stored[k]->blob, ctx.fingerprint, ctx.engine->state_shape()));
    } catch (const states::StateBlobError& e) {
      const std::string message =
          wheres[i] + ": state '" + ids[i] + "' cannot be used: " + e.what();
      if (e.kind() == states::StateBlobError::Kind::kModel)
        throw api::ApiError(409, message, "documents", "state_model_mismatch");
      throw api::ApiError::unprocessable(message, "documents");
    }
    ctx.state_cache->insert(owner, ids[i], stored[k]->meta.write_id, out[i]);
  }
  ctx.metrics.observe_state_fetch(bytes);
  spdlog::info("rerank: {} of {} states fetched from the {} store, {} bytes", missing.size(),
               ids.size(), ctx.states->kind(), bytes);
  return out;
}

void register_state_routes(httplib::Server& http, ServerContext& ctx) {
  register_routes(http, ctx);
  ctx.metrics.set_state_source(
      [&ctx] { return ctx.states ? ctx.states->stats() : states::StateStoreStats{}; });
  ctx.metrics.set_state_cache_source([&ctx] {
    return ctx.state_cache ? ctx.state_cache->stats() : states::DecodedStateCacheStats{};
  });
}

}  // namespace rwkv::server
