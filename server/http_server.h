// The HTTP server with every route of the API registered (routes.h).
#pragma once

#include "server/http/deadline_http_server.h"
#include "server/http/router.h"
#include "server/server_context.h"

namespace rwkv::server {

class HttpServer {
 public:
  explicit HttpServer(ServerContext& ctx);
  // Serves until stop(); false when the address could not be bound.
  bool listen();
  // Stops accepting connections; listen() returns once in-flight requests end.
  void stop() { http_.stop(); }
  bool is_running() const { return http_.is_running(); }
  // New work gets 503 from now on (SIGTERM); in_flight() counts down to 0.
  void start_draining() { router_.start_draining(); }
  int in_flight() const { return router_.in_flight(); }

 private:
  ServerContext& ctx_;
  http::DeadlineHttpServer http_;
  http::Router router_;
  socket_t listen_socket_ = INVALID_SOCKET;
};

// The router's options from the server's.
http::RouterOptions router_options(ServerContext& ctx);

}  // namespace rwkv::server
