// How routes are registered and answered: auth, error shapes, metrics and the
// access log in one wrapper, and waiting for the engine while watching the
// client connection.
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/api_error.h"
#include "engine/scheduler.h"
#include "server/server_context.h"

namespace rwkv::server {

enum class ErrorStyle { kOpenAI, kCohere };

struct RouteSpec {
  std::string method;   // GET, POST, PUT, DELETE
  std::string pattern;  // httplib path pattern, also the metrics label
  ErrorStyle errors = ErrorStyle::kOpenAI;
  bool needs_auth = true;
};

using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

// Registers `handler` with authentication, error mapping (ApiError and the
// scheduler's exceptions to 4xx/5xx in the route's error shape), metrics and
// one access-log line per request.
void add_route(httplib::Server& http, ServerContext& ctx, const RouteSpec& spec, Handler handler);

void send_json(httplib::Response& res, int status, const nlohmann::json& body);
void send_error(httplib::Response& res, ErrorStyle style, const api::ApiError& error);

// Parses the request body as a JSON object (400 on anything else).
nlohmann::json json_body(const httplib::Request& req);

// Answers when `pending` completes, with build(results) as a 200 JSON body.
// After 100 ms it switches to a streamed body and sends a space (valid leading
// JSON whitespace) every 500 ms, so a client that went away is noticed and its work
// cancelled instead of computed for nobody.
void respond_when_done(httplib::Response& res, ServerContext& ctx,
                       std::shared_ptr<PendingRequest> pending,
                       std::function<nlohmann::json(std::vector<Engine::Result>&)> build);

}  // namespace rwkv::server
