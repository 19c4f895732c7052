// An httplib::Server whose clients must send each request in bounded time.
//
// httplib 0.11 bounds every single read by the read timeout but not a whole
// request, so a client that trickles one byte at a time (slow loris) holds a
// worker thread for as long as it likes. Here each request (line, headers and
// body) must arrive within the read timeout, plus one second per 64 KiB
// received (a large upload over a slow link still makes it); otherwise the
// client is answered 408 (request_timed_out() tells the error handler) and the
// connection closed. The first request of a connection counts from its accept,
// so connections that waited for a worker behind slow ones and are still
// incomplete are cut at once. A connection whose socket number the system httplib cannot
// watch (>= FD_SETSIZE: it would answer 500) is answered 503 with Retry-After.
#pragma once

#include <httplib.h>

#include <chrono>

namespace rwkv::server::http {

class DeadlineHttpServer : public httplib::Server {
 public:
  // `threads` workers serve the connections in the order they were accepted.
  explicit DeadlineHttpServer(int threads);
  // True while the request being answered on this thread missed its deadline.
  static bool request_timed_out();
  // Closes the connection once the request being answered on this thread is:
  // for a request whose bytes httplib did not all read.
  static void close_after_response();
  // False once the client of the request being answered on this thread has
  // closed its connection: for handlers that wait before answering.
  static bool client_connected();

 private:
  // Replaces httplib's connection loop: keep-alive requests, each under a deadline.
  bool process_and_close_socket(socket_t sock) override;
  // Waits for the next request on a connection: false when the keep-alive
  // timeout (counted from `since`) passes or the server stops.
  bool wait_for_request(socket_t sock, std::chrono::steady_clock::time_point since) const;
};

}  // namespace rwkv::server::http
