#include "server/http/deadline_http_server.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>

#include "api/api_error.h"

namespace rwkv::server::http {
namespace {

using Clock = std::chrono::steady_clock;

// Every byte received moves the request's deadline on by 1 s per 64 KiB.
constexpr double kMinBytesPerSecond = 64 * 1024;
// How often an idle keep-alive connection looks whether the server is stopping.
constexpr auto kIdleCheck = std::chrono::milliseconds(50);

// When the connection a worker runs was accepted: httplib's pool runs a task
// without arguments, so the pool hands this to the connection loop it calls.
thread_local Clock::time_point accepted_here{};

Clock::duration seconds_and_micros(time_t sec, time_t usec) {
  return std::chrono::seconds(sec) + std::chrono::microseconds(usec);
}

// poll() on one socket: > 0 ready, 0 timed out, < 0 failed.
int wait_for(socket_t sock, short events, Clock::duration timeout) {
  const Clock::time_point end = Clock::now() + timeout;
  pollfd p{sock, events, 0};
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(end - Clock::now());
    const int n = ::poll(&p, 1, int(std::max<int64_t>(0, left.count())));
    if (n >= 0 || errno != EINTR) return n;
  }
}

void socket_address(socket_t sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  auto* a = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? ::getpeername(sock, a, &len) : ::getsockname(sock, a, &len)) != 0) return;
  char host[NI_MAXHOST], service[NI_MAXSERV];
  if (::getnameinfo(a, len, host, sizeof(host), service, sizeof(service),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(service);
  }
}

// httplib's pool, noting when each connection was accepted (queued).
class AcceptTimePool final : public httplib::ThreadPool {
 public:
  using httplib::ThreadPool::ThreadPool;
  void enqueue(std::function<void()> fn) override {
    httplib::ThreadPool::enqueue([fn = std::move(fn), accepted = Clock::now()] {
      accepted_here = accepted;
      fn();
    });
  }
};

// Writes a JSON error answer straight to the socket, then reads what the
// client still sends until it closes (briefly): closing with unread bytes
// would reset the connection before the client reads the answer.
void answer_and_drain(socket_t sock, const api::ApiError& error, const std::string& reason,
                      const std::string& headers, Clock::duration write_timeout) {
  const std::string body = api::openai_error_body(error).dump();
  const std::string response =
      "HTTP/1.1 " + std::to_string(error.status) + " " + reason +
      "\r\nContent-Type: application/json\r\n" + headers +
      "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  for (size_t done = 0; done < response.size();) {
    if (wait_for(sock, POLLOUT, write_timeout) <= 0) return;
    const ssize_t n = ::send(sock, response.data() + done, response.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += size_t(n);
  }
  ::shutdown(sock, SHUT_WR);
  const Clock::time_point end = Clock::now() + std::chrono::seconds(1);
  char sink[4096];
  while (Clock::now() < end && wait_for(sock, POLLIN, end - Clock::now()) > 0)
    if (::recv(sock, sink, sizeof(sink), MSG_DONTWAIT) <= 0) break;
}

}  // namespace

// A connection's socket whose reads end at the deadline of the request being
// read. A request that misses it is answered 408 here, after httplib is done:
// what httplib writes for it then (its 400) is dropped.
class DeadlineHttpServer::Connection final : public httplib::Stream {
 public:
  Connection(socket_t sock, Clock::duration read_timeout, Clock::duration write_timeout)
      : sock_(sock), read_timeout_(read_timeout), write_timeout_(write_timeout) {}

  // A request starts: it has one read timeout from `start` to arrive.
  void start_request(Clock::time_point start) {
    deadline_ = start + read_timeout_;
    timed_out_ = false;
    close_requested_ = false;
  }
  bool timed_out() const { return timed_out_; }
  void close_after_response() { close_requested_ = true; }
  bool close_requested() const { return close_requested_; }
  // Bytes of the next (pipelined) request already read from the socket.
  bool has_buffered() const { return begin_ < end_; }

  // False once the client has closed its end (a streamed response stops then).
  bool peer_open() const {
    if (wait_for(sock_, POLLIN, Clock::duration::zero()) <= 0) return true;
    char byte;
    return ::recv(sock_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }

  bool is_readable() const override {
    return has_buffered() || wait_for(sock_, POLLIN, read_wait()) > 0;
  }

  bool is_writable() const override {
    return wait_for(sock_, POLLOUT, write_timeout_) > 0 && peer_open();
  }

  ssize_t read(char* ptr, size_t size) override {
    if (!has_buffered()) {
      // httplib reads request lines a byte at a time: buffer small reads.
      if (size >= sizeof(buffer_)) return receive(ptr, size);
      const ssize_t n = receive(buffer_, sizeof(buffer_));
      if (n <= 0) return n;
      begin_ = 0;
      end_ = size_t(n);
    }
    const size_t n = std::min(size, end_ - begin_);
    std::copy_n(buffer_ + begin_, n, ptr);
    begin_ += n;
    return ssize_t(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (timed_out_) return ssize_t(size);
    if (!is_writable()) return -1;
    ssize_t n;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    socket_address(sock_, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    socket_address(sock_, false, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  // Until the deadline, and at most one read timeout of silence.
  Clock::duration read_wait() const {
    return std::max(Clock::duration::zero(), std::min(deadline_ - Clock::now(), read_timeout_));
  }

  ssize_t receive(char* into, size_t size) {
    const int ready = wait_for(sock_, POLLIN, read_wait());
    if (ready == 0) timed_out_ = true;
    if (ready <= 0) return -1;
    ssize_t n;
    do n = ::recv(sock_, into, size, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
      deadline_ += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(double(n) / kMinBytesPerSecond));
    return n;
  }

  const socket_t sock_;
  const Clock::duration read_timeout_, write_timeout_;
  Clock::time_point deadline_{};
  bool timed_out_ = false;
  std::atomic<bool> close_requested_{false};
  char buffer_[4096];
  size_t begin_ = 0, end_ = 0;
};

DeadlineHttpServer::DeadlineHttpServer(int threads) {
  new_task_queue = [threads] { return new AcceptTimePool(size_t(threads)); };
}

DeadlineHttpServer::Connection* DeadlineHttpServer::connection_of(
    const httplib::Request& req) const {
  const std::lock_guard lock(serving_mutex_);
  const auto found = serving_.find(&req);
  return found == serving_.end() ? nullptr : found->second;
}

void DeadlineHttpServer::close_after_response(const httplib::Request& req) {
  if (Connection* connection = connection_of(req)) connection->close_after_response();
}

bool DeadlineHttpServer::client_connected(const httplib::Request& req) const {
  const Connection* connection = connection_of(req);
  return !connection || connection->peer_open();
}

bool DeadlineHttpServer::wait_for_request(socket_t sock, Clock::time_point since) const {
  const Clock::time_point end = since + std::chrono::seconds(keep_alive_timeout_sec_);
  for (;;) {  // a request already sent is read even when its wait is over
    const Clock::duration left = end - Clock::now();
    const int ready = wait_for(sock, POLLIN, std::clamp<Clock::duration>(left, {}, kIdleCheck));
    if (ready != 0) return ready > 0;
    if (svr_sock_ == INVALID_SOCKET || Clock::now() >= end) return false;
  }
}

bool DeadlineHttpServer::process_and_close_socket(socket_t sock) {
  const Clock::duration write_timeout = seconds_and_micros(write_timeout_sec_, write_timeout_usec_);
  bool ok = false;
  if (sock >= FD_SETSIZE) {
    answer_and_drain(sock, api::ApiError::unavailable("too many open connections; retry later"),
                     "Service Unavailable", "Retry-After: 1\r\n", write_timeout);
  } else {
    Connection connection(sock, seconds_and_micros(read_timeout_sec_, read_timeout_usec_),
                          write_timeout);
    for (size_t left = keep_alive_max_count_; left > 0; --left) {
      const bool first = left == keep_alive_max_count_;
      if (!connection.has_buffered() &&
          !wait_for_request(sock, first ? accepted_here : Clock::now()))
        break;
      connection.start_request(first ? accepted_here : Clock::now());
      bool closed = false;
      const httplib::Request* serving = nullptr;  // once its headers are read
      ok = process_request(connection, left == 1, closed, [&](httplib::Request& req) {
        serving = &req;
        const std::lock_guard lock(serving_mutex_);
        serving_.emplace(&req, &connection);
      });
      if (serving) {
        const std::lock_guard lock(serving_mutex_);
        serving_.erase(serving);
      }
      if (connection.timed_out())
        answer_and_drain(sock,
                         api::ApiError(408, "the request did not arrive within the read timeout"),
                         "Request Timeout", "", write_timeout);
      // A request that failed before its headers were read leaves bytes that
      // are no request: the connection ends with its answer.
      if (!ok || closed || !serving || connection.timed_out() || connection.close_requested())
        break;
    }
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace rwkv::server::http
