#include "server/http_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "server/error_table.h"
#include "server/routes.h"

namespace rwkv::server {

http::RouterOptions router_options(ServerContext& ctx) {
  const ServerOptions& o = ctx.options;
  return {.api_keys = o.api_keys,
          .max_body_bytes = o.max_body_bytes,
          .json_access_log = o.log_format == LogFormat::kJson,
          .heartbeat_seconds = o.heartbeat_seconds,
          .failures = failure_of,
          .observe = [&ctx](const std::string& route, int status, double seconds) {
            ctx.metrics.observe_request(route, status, seconds);
          }};
}

// Requests wait on the engine in their worker thread: enough workers that
// slow or idle connections (bounded by the read timeout) cannot starve the rest.
HttpServer::HttpServer(ServerContext& ctx)
    : ctx_(ctx), http_(ctx.options.http_threads), router_(http_, router_options(ctx)) {
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
  register_info_routes(router_, ctx);
  register_docs_routes(router_);
  register_embedding_routes(router_, ctx);
  register_rerank_routes(router_, ctx);
  register_state_routes(router_, ctx);
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
