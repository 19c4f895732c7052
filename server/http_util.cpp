#include "server/http_util.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <set>

#include "api/json_fields.h"
#include "server/auth.h"
#include "server/deadline_http_server.h"
#include "server/error_table.h"

namespace rwkv::server {
namespace {

using Clock = std::chrono::steady_clock;

// How often a request waiting for the engine looks whether its client is still
// there. Each look costs a wake-up; half a second keeps that small and still
// notices a closed client within ~1 s.
constexpr auto kClientCheck = std::chrono::milliseconds(500);

// The request being handled on this thread, so that a response finished later
// (streamed) is still logged and measured once, at its real end.
struct RequestRecord {
  std::string method, path, route, remote;
  Clock::time_point start;
  ServerContext* ctx = nullptr;
  ErrorStyle style = ErrorStyle::kOpenAI;
  bool deferred = false;
  int status = 200;  // of a deferred (streamed) response
};
thread_local RequestRecord* current_request = nullptr;

// The end of a request: metrics, access log, and it no longer counts as in flight.
void log_request(const RequestRecord& r, int status) {
  r.ctx->in_flight--;
  const double seconds = std::chrono::duration<double>(Clock::now() - r.start).count();
  r.ctx->metrics.observe_request(r.route, status, seconds);
  if (r.ctx->options.log_format == LogFormat::kJson) {
    spdlog::info(nlohmann::json{
        {"method", r.method},
        {"path", r.path},
        {"status", status},
        {"ms", seconds * 1000},
        {"remote",
         r.remote}}.dump());
  } else {
    spdlog::info("{} {} {} {:.1f}ms {}", r.method, r.path, status, seconds * 1000, r.remote);
  }
}

bool has_body(const httplib::Request& req) {
  return req.has_header("Transfer-Encoding") ||
         std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > 0;
}

// httplib reads a body only for these methods (detail::expect_content), and
// only when no pre-routing answer came first.
bool httplib_reads_body(const std::string& method) {
  static const std::set<std::string> read = {"POST", "PUT", "PATCH", "DELETE", "PRI"};
  return read.contains(method);
}

nlohmann::json error_body(ErrorStyle style, const api::ApiError& e) {
  return style == ErrorStyle::kCohere ? api::cohere_error_body(e) : api::openai_error_body(e);
}

// Runs the handler, turning every failure into a response in the route's shape.
void run_guarded(const Handler& handler, const RequestRecord& record, const httplib::Request& req,
                 httplib::Response& res) {
  try {
    handler(req, res);
  } catch (...) {
    const Failure f = failure_of(std::current_exception(), record.method + " " + record.path);
    if (f.error.status == 499) {
      res.status = 499;
      return;
    }
    send_error(res, record.style, f.error);
    if (f.retry_after) res.set_header("Retry-After", f.retry_after);
  }
}

std::string dump(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Waits for `pending` until `until`, cancelling it when the client closes its
// connection. True once its outcome is known: done, failed, or cancelled
// (wait() then throws Cancelled).
bool await_outcome(scheduling::PendingRequest& pending, Clock::time_point until) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    if (pending.wait_for(std::clamp(left, std::chrono::milliseconds(0), kClientCheck))) return true;
    if (!DeadlineHttpServer::client_connected()) {
      pending.cancel();
      return true;
    }
    if (Clock::now() >= until) return false;
  }
}

}  // namespace

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, ErrorStyle style, const api::ApiError& error) {
  send_json(res, error.status, error_body(style, error));
}

nlohmann::json json_body(const httplib::Request& req) { return api::parse_body(req.body); }

void add_route(httplib::Server& http, ServerContext& ctx, const RouteSpec& spec, Handler handler) {
  auto wrapped = [&ctx, spec, handler = std::move(handler)](const httplib::Request& req,
                                                            httplib::Response& res) {
    RequestRecord record{req.method,   req.path, spec.pattern, req.remote_addr,
                         Clock::now(), &ctx,     spec.errors};
    ctx.in_flight++;
    current_request = &record;
    if (ctx.draining && spec.needs_auth) {
      send_error(res, spec.errors, api::ApiError::unavailable("the server is shutting down"));
      res.set_header("Retry-After", "5");
    } else if (req.body.size() > ctx.options.max_body_bytes) {
      // httplib enforces the limit on Content-Length bodies only, not on chunked ones.
      send_error(res, spec.errors, api::ApiError::payload_too_large("request body too large"));
    } else {
      run_guarded(handler, record, req, res);
    }
    current_request = nullptr;
    if (!record.deferred) log_request(record, res.status);
  };
  ctx.routes.add(spec);
  if (spec.method == "GET")
    http.Get(spec.pattern, wrapped);
  else if (spec.method == "POST")
    http.Post(spec.pattern, wrapped);
  else if (spec.method == "PUT")
    http.Put(spec.pattern, wrapped);
  else if (spec.method == "DELETE")
    http.Delete(spec.pattern, wrapped);
  else
    throw std::logic_error("unsupported method " + spec.method);
}

void close_after_response(httplib::Response& res) {
  res.set_header("Connection", "close");
  DeadlineHttpServer::close_after_response();
}

httplib::Server::HandlerResponse screen_request(ServerContext& ctx, const httplib::Request& req,
                                                httplib::Response& res) {
  const auto pass = [&] {
    if (has_body(req) && !httplib_reads_body(req.method)) close_after_response(res);
    return httplib::Server::HandlerResponse::Unhandled;
  };
  const std::vector<RouteSpec> routes = ctx.routes.match(req.path);
  if (routes.empty()) return pass();
  const RouteSpec* route = route_for_method(routes, req.method);
  const RouteSpec& spec = route ? *route : routes.front();
  // The key first: an unauthenticated client learns nothing, and its body is never read.
  if (spec.needs_auth && !authorized(ctx.options.api_keys, req.get_header_value("Authorization"))) {
    send_error(res, spec.errors, api::ApiError::unauthorized("invalid or missing API key"));
    res.set_header("WWW-Authenticate", "Bearer");
  } else if (!route) {
    send_method_not_allowed(res, routes, req.method);
  } else {
    return pass();
  }
  if (has_body(req)) close_after_response(res);  // answered before its body was read
  ctx.in_flight++;
  log_request({req.method, req.path, spec.pattern, req.remote_addr, Clock::now(), &ctx},
              res.status);
  return httplib::Server::HandlerResponse::Handled;
}

void send_method_not_allowed(httplib::Response& res, const std::vector<RouteSpec>& routes,
                             const std::string& method) {
  const std::string allow = allowed_methods(routes);
  send_error(res, routes.front().errors,
             api::ApiError(405, method + " is not served here; this path serves " + allow));
  res.set_header("Allow", allow);
}

void respond_when_done(httplib::Response& res, ServerContext& ctx,
                       std::shared_ptr<scheduling::PendingRequest> pending,
                       std::function<nlohmann::json(std::vector<model::Engine::Result>&)> build) {
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(ctx.options.heartbeat_seconds));
  if (interval <= Clock::duration::zero() || await_outcome(*pending, Clock::now() + interval)) {
    await_outcome(*pending, Clock::time_point::max());
    auto results = pending->wait();  // throws what failed it (Cancelled: the client went away)
    send_json(res, 200, build(results));
    return;
  }
  // --heartbeat-seconds: the status goes out now; the outcome follows in the body.
  current_request->deferred = true;  // set by add_route
  auto record = std::make_shared<RequestRecord>(*current_request);
  res.status = 200;
  // With a charset parameter httplib does not gzip the body: the compressor
  // would hold the heartbeat spaces back and the client's read would time out.
  res.set_chunked_content_provider(
      "application/json; charset=utf-8",
      [pending, build, record, interval](size_t, httplib::DataSink& sink) {
        do {  // a space now, then one per interval; a failed write: the client is gone
          if (!sink.write(" ", 1)) {
            pending->cancel();
            return false;
          }
        } while (!await_outcome(*pending, Clock::now() + interval));
        std::string body;
        try {
          auto results = pending->wait();
          body = dump(build(results));
        } catch (...) {
          const Failure f =
              failure_of(std::current_exception(), record->method + " " + record->path);
          if (f.error.status == 499) return false;
          record->status = f.error.status;
          spdlog::error("{} {}: failed with {} after its status 200 went out (--heartbeat-seconds)",
                        record->method, record->path, f.error.status);
          body = dump(error_body(record->style, f.error));
        }
        sink.write(body.data(), body.size());
        sink.done();
        return true;
      },
      [record](bool success) { log_request(*record, success ? record->status : 499); });
}

}  // namespace rwkv::server
