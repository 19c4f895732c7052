// The routes of the API, one file per group: each handler is parse (api/) ->
// service (service/) -> render (api/), over plain request values (http/).
#pragma once

#include <memory>
#include <utility>

#include "server/http/answer_when_done.h"
#include "server/http/router.h"
#include "server/server_context.h"
#include "server/service/pending.h"

namespace rwkv::server {

void register_info_routes(http::Router& router, ServerContext& ctx);
void register_docs_routes(http::Router& router);
void register_embedding_routes(http::Router& router, ServerContext& ctx);
void register_rerank_routes(http::Router& router, ServerContext& ctx);
void register_state_routes(http::Router& router, ServerContext& ctx);

// The 200 JSON answer render(result) once `pending` is done (http::answer_when_done).
template <class T, class Render>
http::Response answer(const http::RequestContext& ctx, service::Pending<T> pending, Render render) {
  auto shared = std::make_shared<service::Pending<T>>(std::move(pending));
  return http::answer_when_done(
      ctx,
      {[shared](std::chrono::milliseconds t) { return shared->wait_for(t); },
       [shared] { shared->cancel(); }},
      [shared, render = std::move(render)] {
        return http::Response::json(200, render(shared->get()));
      });
}

}  // namespace rwkv::server
