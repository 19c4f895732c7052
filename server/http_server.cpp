#include "server/http_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "server/http_util.h"

namespace rwkv::server {

// Requests wait on the engine in their worker thread: enough workers that
// slow or idle connections (bounded by the read timeout) cannot starve the rest.
HttpServer::HttpServer(ServerContext& ctx) : ctx_(ctx), http_(ctx.options.http_threads) {
  const ServerOptions& o = ctx.options;
  http_.set_read_timeout(o.read_timeout_seconds, 0);
  http_.set_write_timeout(o.read_timeout_seconds, 0);
  http_.set_keep_alive_timeout(5);
  // httplib's default closes a keep-alive connection after 5 requests.
  http_.set_keep_alive_max_count(1000);
  http_.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_socket_ = sock;
  });
  http_.set_payload_max_length(o.max_body_bytes);
  http_.set_pre_routing_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
    return screen_request(ctx, req, res);
  });
  http_.set_error_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
    // Only statuses no route wrote a body for: unknown paths, oversized bodies.
    if (!res.body.empty()) return;
    if (DeadlineHttpServer::request_timed_out()) {
      send_error(res, ErrorStyle::kOpenAI,
                 api::ApiError(408, "the request did not arrive within the read timeout"));
      res.set_header("Connection", "close");
    } else if (res.status == 413 && req.get_header_value("Content-Type")
                                        .starts_with("application/x-www-form-urlencoded")) {
      // httplib caps form bodies at 8 KiB; `curl --data-binary` sends that type by default.
      send_error(res, ErrorStyle::kOpenAI,
                 api::ApiError::payload_too_large(
                     "form-encoded bodies are limited to 8 KiB; send binary data "
                     "(state blobs) with Content-Type: application/octet-stream"));
    } else if (res.status == 413) {
      send_error(res, ErrorStyle::kOpenAI,
                 api::ApiError::payload_too_large("request body too large"));
    } else if (res.status == 404) {
      send_error(res, ErrorStyle::kOpenAI,
                 api::ApiError::not_found("no route for " + req.method + " " + req.path));
    } else {
      // httplib could not read the request (an unknown method such as QUERY, a
      // malformed line, header or multipart body): answer in the path's shape,
      // and close the connection, whose next bytes may be this request's rest.
      const std::string path =
          req.path.empty() ? req.target.substr(0, req.target.find('?')) : req.path;
      const std::vector<RouteSpec> routes = ctx.routes.match(path);
      if (!routes.empty() && !route_for_method(routes, req.method)) {
        send_method_not_allowed(res, routes, req.method);
      } else {
        send_error(res, routes.empty() ? ErrorStyle::kOpenAI : routes.front().errors,
                   api::ApiError(res.status,
                                 "the request could not be read (malformed request line, "
                                 "headers or multipart body)"));
      }
      close_after_response(res);
    }
  });
  register_info_routes(http_, ctx);
  register_docs_routes(http_, ctx);
  register_embedding_routes(http_, ctx);
  register_rerank_routes(http_, ctx);
  register_state_routes(http_, ctx);
}

bool HttpServer::listen() {
  spdlog::info("listening on http://{}:{}", ctx_.options.host, ctx_.options.port);
  if (!http_.bind_to_port(ctx_.options.host, ctx_.options.port)) {
    spdlog::error("cannot listen on {}:{}", ctx_.options.host, ctx_.options.port);
    return false;
  }
  // The system httplib listens with a backlog of 5, which overflows (and
  // resets connections) when many clients connect at once; listening again
  // on the same socket raises it.
  ::listen(listen_socket_, SOMAXCONN);
  return http_.listen_after_bind();
}

}  // namespace rwkv::server
