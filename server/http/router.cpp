#include "server/http/router.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <regex>
#include <set>

#include "server/http/auth.h"

namespace rwkv::server::http {

using Clock = std::chrono::steady_clock;

// A request from its start to its end: what its access-log line and metrics say.
struct Router::Record {
  std::string method, path, route, remote;
  Clock::time_point start = Clock::now();
};

namespace {

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

Request request_value(const httplib::Request& req) {
  Request r;
  r.method = req.method;
  r.path = req.path;
  for (size_t i = 1; i < req.matches.size(); ++i) r.path_params.push_back(req.matches[i]);
  r.query.insert(req.params.begin(), req.params.end());
  for (const auto& [name, value] : req.headers) {
    std::string key = name;
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    r.headers.emplace(std::move(key), value);
  }
  r.body = req.body;
  return r;
}

}  // namespace

// Closes the connection after this answer: for a request whose bytes were not
// all read, whose rest would otherwise be parsed as the next request.
void Router::close_after(const httplib::Request& req, httplib::Response& res) {
  res.set_header("Connection", "close");
  http_.close_after_response(req);
}

void Router::write_head(const Response& answer, const httplib::Request& req,
                        httplib::Response& res) {
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers) res.set_header(name, value);
  if (answer.close_connection) close_after(req, res);
}

Router::Router(DeadlineHttpServer& http, RouterOptions options)
    : http_(http), options_(std::move(options)) {
  http_.set_payload_max_length(options_.max_body_bytes);
  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return screen(req, res) ? httplib::Server::HandlerResponse::Handled
                            : httplib::Server::HandlerResponse::Unhandled;
  });
  http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Only statuses no route wrote a body for: unknown paths, unreadable requests.
    if (res.body.empty()) answer_unread(req, res);
  });
}

void Router::finish(const Record& r, int status) {
  in_flight_--;
  const double seconds = std::chrono::duration<double>(Clock::now() - r.start).count();
  if (options_.observe) options_.observe(r.route, status, seconds);
  if (options_.json_access_log) {
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

void Router::send(Response answer, const httplib::Request& req, httplib::Response& res,
                  const Record& record) {
  write_head(answer, req, res);
  if (!answer.stream) {
    if (answer.status != 499) {  // set_content, without copying the body
      res.body = std::move(answer.body);
      res.set_header("Content-Type", answer.content_type);
    }
    finish(record, answer.status);
    return;
  }
  auto status = std::make_shared<int>(200);
  res.set_chunked_content_provider(
      answer.content_type,
      [stream = answer.stream, status](size_t, httplib::DataSink& sink) {
        *status = stream(
            [&sink](std::string_view chunk) { return sink.write(chunk.data(), chunk.size()); });
        if (*status == 499) return false;
        sink.done();
        return true;
      },
      [this, record, status](bool success) { finish(record, success ? *status : 499); });
}

RequestContext Router::context(const RouteSpec& spec, const std::string& authorization,
                               std::function<bool()> client_gone, const std::string& method,
                               const std::string& path) const {
  return RequestContext(state_owner(options_.api_keys, authorization), spec.errors,
                        std::move(client_gone),
                        std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(options_.heartbeat_seconds)),
                        options_.failures, method + " " + path);
}

Response Router::respond(const RouteSpec& spec, const Handler& handler, const Request& request,
                         RequestContext& ctx) {
  if (draining_ && spec.needs_auth)
    return Response::error(spec.errors, api::ApiError::unavailable("the server is shutting down"))
        .with_header("Retry-After", "5");
  // httplib enforces the limit on Content-Length bodies only, not on chunked ones.
  if (request.body.size() > options_.max_body_bytes)
    return Response::error(spec.errors, api::ApiError::payload_too_large("request body too large"));
  try {
    return handler(request, ctx);
  } catch (...) {
    return ctx.failure_response(ctx.failure(std::current_exception()));
  }
}

Response Router::dispatch(Request request) {
  for (const Route& route : handlers_) {
    std::smatch groups;
    if (route.spec.method != request.method ||
        !std::regex_match(request.path, groups, std::regex(route.spec.pattern)))
      continue;
    request.path_params.assign(groups.begin() + 1, groups.end());
    RequestContext ctx =
        context(route.spec, request.header("Authorization"), {}, request.method, request.path);
    return respond(route.spec, route.handler, request, ctx);
  }
  return Response::error(
      ErrorStyle::kOpenAI,
      api::ApiError::not_found("no route for " + request.method + " " + request.path));
}

void Router::add(const RouteSpec& spec, Handler handler) {
  routes_.add(spec);
  handlers_.push_back({spec, handler});
  auto wrapped = [this, spec, handler = std::move(handler)](const httplib::Request& req,
                                                            httplib::Response& res) {
    in_flight_++;
    const Record record{req.method, req.path, spec.pattern, req.remote_addr};
    RequestContext ctx = context(
        spec, req.get_header_value("Authorization"),
        [this, &req] { return !http_.client_connected(req); }, req.method, req.path);
    send(respond(spec, handler, request_value(req), ctx), req, res, record);
  };
  if (spec.method == "GET")
    http_.Get(spec.pattern, wrapped);
  else if (spec.method == "POST")
    http_.Post(spec.pattern, wrapped);
  else if (spec.method == "PUT")
    http_.Put(spec.pattern, wrapped);
  else if (spec.method == "DELETE")
    http_.Delete(spec.pattern, wrapped);
  else
    throw std::logic_error("unsupported method " + spec.method);
}

Response Router::method_not_allowed(const std::vector<RouteSpec>& routes,
                                    const std::string& method) {
  const std::string allow = allowed_methods(routes);
  return Response::error(
             routes.front().errors,
             api::ApiError(405, method + " is not served here; this path serves " + allow))
      .with_header("Allow", allow);
}

// The key first: an unauthenticated client learns nothing, and its body is
// never read. A body left unread (by these answers, or on a GET and the like,
// whose bodies httplib never reads) gets the connection closed after the
// answer, so that it is never parsed as the next request. Unknown paths pass
// (404 later).
bool Router::screen(const httplib::Request& req, httplib::Response& res) {
  const std::vector<RouteSpec> routes = routes_.match(req.path);
  const RouteSpec* route = routes.empty() ? nullptr : route_for_method(routes, req.method);
  std::optional<Response> answer;
  if (!routes.empty()) {
    const RouteSpec& spec = route ? *route : routes.front();
    if (spec.needs_auth && !authorized(options_.api_keys, req.get_header_value("Authorization")))
      answer =
          Response::error(spec.errors, api::ApiError::unauthorized("invalid or missing API key"))
              .with_header("WWW-Authenticate", "Bearer");
    else if (!route)
      answer = method_not_allowed(routes, req.method);
  }
  if (!answer) {  // passes on to its handler, or to the 404
    if (has_body(req) && !httplib_reads_body(req.method)) close_after(req, res);
    return false;
  }
  answer->close_connection = has_body(req);  // answered before its body was read
  in_flight_++;
  send(std::move(*answer), req, res,
       {req.method, req.path, (route ? *route : routes.front()).pattern, req.remote_addr});
  return true;
}

void Router::answer_unread(const httplib::Request& req, httplib::Response& res) {
  Response answer;
  if (res.status == 413 &&
      req.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded")) {
    // httplib caps form bodies at 8 KiB; `curl --data-binary` sends that type by default.
    answer = Response::error(ErrorStyle::kOpenAI,
                             api::ApiError::payload_too_large(
                                 "form-encoded bodies are limited to 8 KiB; send binary data "
                                 "(state blobs) with Content-Type: application/octet-stream"));
  } else if (res.status == 413) {
    answer = Response::error(ErrorStyle::kOpenAI,
                             api::ApiError::payload_too_large("request body too large"));
  } else if (res.status == 404) {
    answer =
        Response::error(ErrorStyle::kOpenAI,
                        api::ApiError::not_found("no route for " + req.method + " " + req.path));
  } else {
    // httplib could not read the request (an unknown method such as QUERY, a
    // malformed line, header or multipart body): answer in the path's shape,
    // and close the connection, whose next bytes may be this request's rest.
    const std::string path =
        req.path.empty() ? req.target.substr(0, req.target.find('?')) : req.path;
    const std::vector<RouteSpec> routes = routes_.match(path);
    if (!routes.empty() && !route_for_method(routes, req.method))
      answer = method_not_allowed(routes, req.method);
    else
      answer = Response::error(routes.empty() ? ErrorStyle::kOpenAI : routes.front().errors,
                               api::ApiError(res.status,
                                             "the request could not be read (malformed request "
                                             "line, headers or multipart body)"));
    answer.close_connection = true;
  }
  write_head(answer, req, res);
  res.set_content(answer.body, answer.content_type);
}

}  // namespace rwkv::server::http
