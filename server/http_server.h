// The cpp-httplib server with every route of the API registered.
#pragma once

#include <httplib.h>

#include "server/deadline_http_server.h"
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

 private:
  ServerContext& ctx_;
  DeadlineHttpServer http_;
  socket_t listen_socket_ = INVALID_SOCKET;
};

// Route groups, one file each.
void register_info_routes(httplib::Server& http, ServerContext& ctx);
void register_docs_routes(httplib::Server& http, ServerContext& ctx);
void register_embedding_routes(httplib::Server& http, ServerContext& ctx);
void register_rerank_routes(httplib::Server& http, ServerContext& ctx);
void register_state_routes(httplib::Server& http, ServerContext& ctx);

}  // namespace rwkv::server
