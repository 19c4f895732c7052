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
#include "engine/scheduling/scheduler.h"
#include "server/route_table.h"
#include "server/server_context.h"

namespace rwkv::server {

using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

// Registers `handler` (and records it in ctx.routes) with error mapping
// (ApiError, the engine's and the state store's exceptions to their 4xx/5xx,
// anything else to a logged 500 with a generic message, in the route's error
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

// Answers when `pending` completes, with build(results) as a 200 JSON body, or
// with the real status of its failure in the route's error shape: nothing is
// sent while the engine works. Meanwhile it looks whether the client is still
// there and cancels the work when it has gone. With --heartbeat-seconds (for
// proxies that cut idle connections) a request still computing after that long
// is answered 200 at once, its body streamed: a space (leading JSON
// whitespace) every interval, then the JSON; a failure after that point can
// only be told in the body (an error body, logged and counted as its status).
void respond_when_done(httplib::Response& res, ServerContext& ctx,
                       std::shared_ptr<scheduling::PendingRequest> pending,
                       std::function<nlohmann::json(std::vector<model::Engine::Result>&)> build);

}  // namespace rwkv::server
