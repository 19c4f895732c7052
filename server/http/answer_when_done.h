// Answering a request whose work takes a while (a request in the scheduler):
// the status is fixed before the first byte is sent, and work whose client has
// gone is cancelled.
#pragma once

#include <chrono>
#include <functional>

#include "server/http/message.h"

namespace rwkv::server::http {

// What a handler waits for.
struct Work {
  // Waits at most `timeout`; true once the outcome is known (done, failed, cancelled).
  std::function<bool(std::chrono::milliseconds timeout)> wait_for;
  std::function<void()> cancel;
};

// Waits for `work`, looking meanwhile whether the client is still there
// (ctx.should_stop(); gone: the work is cancelled), then answers render(),
// which throws what failed the work: the router answers that in the route's
// error shape with its real status. Nothing is sent while the work runs.
// With --heartbeat-seconds (ctx.heartbeat(), for proxies that cut idle
// connections) work still running after that long is answered 200 at once and
// its body streamed: a space (leading JSON whitespace) every interval, then
// render()'s body; a failure after that point can only be told in the body
// (an error body, logged and counted with its real status).
Response answer_when_done(const RequestContext& ctx, Work work, std::function<Response()> render);

}  // namespace rwkv::server::http
