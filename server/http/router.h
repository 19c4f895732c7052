// The route framework: registers handlers of plain request values on the
// HTTP server and answers everything around them in one place: the API key
// (401) and the method (405) before a body is read, the shutdown (503), the
// body limit (413), what a handler throws (through the failure map, in the
// route's error shape), requests httplib could not read (400, 404, 413; the
// deadline server answers 408 itself), and one metrics observation and one
// access-log line per request.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "server/http/deadline_http_server.h"
#include "server/http/message.h"
#include "server/http/route_table.h"

namespace rwkv::server::http {

struct RouterOptions {
  std::vector<std::string> api_keys;  // empty: no authentication
  size_t max_body_bytes = 16 << 20;
  bool json_access_log = false;  // one JSON object per line instead of text
  double heartbeat_seconds = 0;  // answer_when_done.h
  FailureMap failures;           // what a handler's exception tells the client
  // Called once per request at its real end (a streamed one when its body is done).
  std::function<void(const std::string& route, int status, double seconds)> observe;
};

class Router {
 public:
  // Takes over `http`'s pre-routing and error handlers.
  Router(DeadlineHttpServer& http, RouterOptions options);
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Serves `spec` with `handler`.
  void add(const RouteSpec& spec, Handler handler);

  // Answers `request` as the route its method and path match would, without
  // a connection (its client never goes away; 404 when no route matches):
  // route tests call the handlers through it, with plain values.
  Response dispatch(Request request);

  // From now on every route that needs a key answers 503 with Retry-After.
  void start_draining() { draining_ = true; }
  // HTTP requests not yet fully answered.
  int in_flight() const { return in_flight_; }

 private:
  struct Record;
  struct Route {
    RouteSpec spec;
    Handler handler;
  };
  RequestContext context(const RouteSpec& spec, const std::string& authorization,
                         std::function<bool()> client_gone, const std::string& method,
                         const std::string& path) const;
  // The answer of `route`: 503 while draining, 413 over the body limit, else
  // the handler's, or what it threw in the route's shape.
  Response respond(const RouteSpec& spec, const Handler& handler, const Request& request,
                   RequestContext& ctx);
  void finish(const Record& record, int status);
  // httplib's pre-routing handler: runs before httplib reads the body.
  bool screen(const httplib::Request& req, httplib::Response& res);
  void answer_unread(const httplib::Request& req, httplib::Response& res);
  void send(Response answer, const httplib::Request& req, httplib::Response& res,
            const Record& record);
  // The status and headers of `answer` onto httplib's response.
  void write_head(const Response& answer, const httplib::Request& req, httplib::Response& res);
  void close_after(const httplib::Request& req, httplib::Response& res);
  Response method_not_allowed(const std::vector<RouteSpec>& routes, const std::string& method);

  DeadlineHttpServer& http_;
  const RouterOptions options_;
  RouteTable routes_;
  std::vector<Route> handlers_;  // for dispatch()
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
};

}  // namespace rwkv::server::http
