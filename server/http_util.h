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
#include "server/route_table.h"
#include "server/server_context.h"

namespace rwkv::server {

using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

// Registers `handler` (and records it in ctx.routes) with error mapping
// (ApiError and the scheduler's exceptions to 4xx/5xx in the route's error
// shape), metrics and one access-log line per request.
void add_route(httplib::Server& http, ServerContext& ctx, const RouteSpec& spec, Handler handler);

// httplib's pre-routing handler: runs before httplib reads the body. Answers a
// wrong API key (401) and a method the path does not serve (405 with Allow),
// in the path's error shape. A body left unread (by these answers, or on a GET
// and the like, whose bodies httplib never reads) gets the connection closed
// after the answer, so that it is never parsed as the next request. Unknown
// paths pass (404 later).
httplib::Server::HandlerResponse screen_request(ServerContext& ctx, const httplib::Request& req,
                                                httplib::Response& res);

// Closes the connection after this answer: for a request whose bytes were not
// all read, whose rest would otherwise be parsed as the next request.
void close_after_response(httplib::Response& res);

// The answer to a method that the known path of `routes` does not serve.
void send_method_not_allowed(httplib::Response& res, const std::vector<RouteSpec>& routes,
                             const std::string& method);

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

// For requests whose outcome is only known at the end (storing states can
// still fail: 507, 503): waits without sending anything, so the status is the
// real one, and cancels the work when the client closes its connection.
void respond_after_done(httplib::Response& res, std::shared_ptr<PendingRequest> pending,
                        std::function<nlohmann::json(std::vector<Engine::Result>&)> build);

}  // namespace rwkv::server
