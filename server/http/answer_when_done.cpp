#include "server/http/answer_when_done.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

namespace rwkv::server::http {
namespace {

using Clock = std::chrono::steady_clock;

// How often a request waiting for its work looks whether its client is still
// there. Each look costs a wake-up; half a second keeps that small and still
// notices a closed client within ~1 s.
constexpr auto kClientCheck = std::chrono::milliseconds(500);

// Waits for `work` until `until`, cancelling it when the client has gone.
// True once its outcome is known.
bool await_outcome(const Work& work, const RequestContext& ctx, Clock::time_point until) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    if (work.wait_for(std::clamp(left, std::chrono::milliseconds(0), kClientCheck))) return true;
    if (ctx.should_stop()) {
      work.cancel();
      return true;
    }
    if (Clock::now() >= until) return false;
  }
}

}  // namespace

Response answer_when_done(const RequestContext& ctx, Work work, std::function<Response()> render) {
  const Clock::duration beat = ctx.heartbeat();
  if (beat <= Clock::duration::zero() || await_outcome(work, ctx, Clock::now() + beat)) {
    await_outcome(work, ctx, Clock::time_point::max());
    return render();
  }
  // --heartbeat-seconds: the status goes out now; the outcome follows in the body.
  Response streamed;
  // With a charset parameter httplib does not gzip the body: the compressor
  // would hold the heartbeat spaces back and the client's read would time out.
  streamed.content_type = "application/json; charset=utf-8";
  streamed.stream = [ctx, work, render, beat](const auto& write) {
    do {  // a space now, then one per interval; a failed write: the client is gone
      if (!write(" ")) {
        work.cancel();
        return 499;
      }
    } while (!await_outcome(work, ctx, Clock::now() + beat));
    Response answer;
    try {
      answer = render();
    } catch (...) {
      const Failure f = ctx.failure(std::current_exception());
      if (f.error.status == 499) return 499;
      spdlog::error("{}: failed with {} after its status 200 went out (--heartbeat-seconds)",
                    ctx.request(), f.error.status);
      answer = ctx.failure_response(f);
    }
    write(answer.body);
    return answer.status;
  };
  return streamed;
}

}  // namespace rwkv::server::http
