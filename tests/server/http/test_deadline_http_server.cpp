// The deadline server's connections as a handler sees them, over real
// loopback sockets: whether its client is still there, closing after the
// answer, and the 408 of a request that does not arrive in time.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "server/http/deadline_http_server.h"

namespace rwkv::server::http {
namespace {

using namespace std::chrono_literals;

// A deadline server on a free loopback port, serving until destroyed.
class LoopbackServer {
 public:
  LoopbackServer() : port_(http_.bind_to_any_port("127.0.0.1")) {}
  void start() {
    thread_ = std::thread([this] { http_.listen_after_bind(); });
    while (!http_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~LoopbackServer() {
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }
  DeadlineHttpServer& http() { return http_; }
  int port() const { return port_; }

 private:
  DeadlineHttpServer http_{2};
  int port_;
  std::thread thread_;
};

// A raw client socket: what is sent and read is exactly what the test says.
class RawClient {
 public:
  explicit RawClient(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) fd_ = -1;
    const timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~RawClient() { close(); }
  bool connected() const { return fd_ >= 0; }
  void send(const std::string& bytes) { ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  // Everything until the server closes the connection (or 10 s pass).
  std::string read_to_end() {
    std::string got;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd_, buffer, sizeof(buffer), 0)) > 0;)
      got.append(buffer, size_t(n));
    return got;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const std::string kGet = "GET /answer HTTP/1.1\r\nHost: x\r\n\r\n";

// In each test what a handler writes is declared before the server, so that it
// outlives the handler threads the server's destructor joins.

TEST(DeadlineHttpServer, AHandlerSeesItsClientGo) {
  std::atomic<bool> seen_connected{false}, seen_gone{false};
  LoopbackServer server;
  server.http().Get("/wait", [&](const httplib::Request& req, httplib::Response& res) {
    seen_connected = server.http().client_connected(req);
    for (auto end = std::chrono::steady_clock::now() + 10s;
         std::chrono::steady_clock::now() < end && !seen_gone; std::this_thread::sleep_for(1ms))
      seen_gone = !server.http().client_connected(req);
    res.set_content("late", "text/plain");
  });
  server.start();
  RawClient client(server.port());
  ASSERT_TRUE(client.connected());
  client.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(200ms);
  client.close();
  for (int i = 0; i < 1000 && !seen_gone; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(seen_connected);
  EXPECT_TRUE(seen_gone);
}

TEST(DeadlineHttpServer, CloseAfterResponseEndsTheConnectionOfThatRequestOnly) {
  LoopbackServer server;
  server.http().Get("/answer", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  server.http().Get("/last", [&](const httplib::Request& req, httplib::Response& res) {
    server.http().close_after_response(req);
    res.set_content("ok", "text/plain");
  });
  server.start();
  // Three pipelined requests: all answered on a kept-alive connection...
  RawClient kept(server.port());
  kept.send(kGet + kGet + kGet + "GET /last HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(count(kept.read_to_end(), "HTTP/1.1 200"), 4u);
  // ... but nothing after the one that asked for the close.
  RawClient closed(server.port());
  closed.send(kGet + "GET /last HTTP/1.1\r\nHost: x\r\n\r\n" + kGet + kGet);
  EXPECT_EQ(count(closed.read_to_end(), "HTTP/1.1 200"), 2u);
}

TEST(DeadlineHttpServer, ARequestThatMissesItsDeadlineIsAnswered408AndClosed) {
  std::atomic<int> handled{0};
  LoopbackServer server;
  server.http().set_read_timeout(1, 0);
  server.http().Post("/answer", [&](const httplib::Request&, httplib::Response& res) {
    handled++;
    res.set_content("ok", "text/plain");
  });
  server.start();
  for (const std::string& sent : {std::string("POST /answer HTTP/1.1\r\nHost: x\r\n"),
                                  std::string("POST /answer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                              "10\r\n\r\n{\"a\"")}) {
    RawClient client(server.port());
    client.send(sent);  // and never the rest
    const auto start = std::chrono::steady_clock::now();
    const std::string answer = client.read_to_end();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_EQ(answer.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << answer;
    EXPECT_EQ(count(answer, "HTTP/1.1"), 1u) << "httplib's own answer was dropped: " << answer;
    EXPECT_NE(answer.find("Connection: close"), std::string::npos);
    EXPECT_NE(answer.find("\"message\":\"the request did not arrive within the read timeout\""),
              std::string::npos)
        << answer;
  }
  EXPECT_EQ(handled, 0);
}

}  // namespace
}  // namespace rwkv::server::http
