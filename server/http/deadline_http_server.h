// An httplib::Server whose clients must send each request in bounded time.
//
// httplib 0.11 bounds every single read by the read timeout but not a whole
// request, so a client that trickles one byte at a time (slow loris) holds a
// worker thread for as long as it likes. Here each request (line, headers and
// body) must arrive within the read timeout, plus one second per 64 KiB
// received (a large upload over a slow link still makes it); otherwise the
// client is answered 408 by the connection loop itself (what httplib would
// have written is dropped) and the connection closed. The first request of a connection counts from
// its accept, so connections that waited for a worker behind slow ones and are still incomplete are
// cut at once. A connection whose socket number the system httplib cannot watch (>= FD_SETSIZE: it
// would answer 500) is answered 503 with Retry-After.
#pragma once

#include <httplib.h>

#include <chrono>
#include <mutex>
#include <unordered_map>

namespace rwkv::server::http {

class DeadlineHttpServer : public httplib::Server {
 public:
  // `threads` workers serve the connections in the order they were accepted.
  explicit DeadlineHttpServer(int threads);
  // Closes the connection that `req` came on once `req` is answered: for a
  // request whose bytes httplib did not all read.
  void close_after_response(const httplib::Request& req);
  // False once the client of `req` has closed its connection: for handlers
  // that wait before answering.
  bool client_connected(const httplib::Request& req) const;

 private:
  class Connection;
  // Replaces httplib's connection loop: keep-alive requests, each under a deadline.
  bool process_and_close_socket(socket_t sock) override;
  // Waits for the next request on a connection: false when the keep-alive
  // timeout (counted from `since`) passes or the server stops.
  bool wait_for_request(socket_t sock, std::chrono::steady_clock::time_point since) const;
  // The connection of a request whose headers were read and that is being
  // answered (httplib hands its handlers the request, not the connection).
  Connection* connection_of(const httplib::Request& req) const;

  mutable std::mutex serving_mutex_;
  std::unordered_map<const httplib::Request*, Connection*> serving_;
};

}  // namespace rwkv::server::http
