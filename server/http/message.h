// What a route handler sees and gives back: a plain request value, a plain
// response value, and the context of the request (whose it is, in which error
// shape it is answered, whether its client is still there). No HTTP library
// type reaches a handler (router.h does the translation), so routes can be
// called and tested without a socket.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/api_error.h"

namespace rwkv::server::http {

// The error body of a route: OpenAI's {"error": {...}} or Cohere's {"message"}.
enum class ErrorStyle { kOpenAI, kCohere };

struct Request {
  std::string method;                    // GET, POST, ...
  std::string path;                      // without the query
  std::vector<std::string> path_params;  // the groups of the route's pattern, in order
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string_view body;                       // valid while the handler runs

  // "" when absent; `name` in any case.
  std::string header(std::string_view name) const;
  // nullopt when absent (an empty value is present).
  std::optional<std::string> query_param(const std::string& name) const;
};

// The body of a response that is written after its status went out (the
// heartbeat of --heartbeat-seconds): it writes through `write` (false: the
// client has gone) and returns the status its outcome has, for the access log
// and the metrics (499 when the client went away).
using BodyWriter = std::function<int(const std::function<bool(std::string_view)>& write)>;

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  BodyWriter stream;              // set: the body is streamed (status 200), `body` unused
  bool close_connection = false;  // for a request whose bytes were not all read

  static Response json(int status, const nlohmann::json& body);
  static Response error(ErrorStyle style, const api::ApiError& error);
  static Response content(std::string body, std::string content_type);
  Response& with_header(std::string name, std::string value);
};

// The JSON text of a body; invalid UTF-8 (from ids that split a character) as U+FFFD.
std::string dump(const nlohmann::json& body);

// What a failure tells the client (status 499: the client went away, nobody
// reads an answer).
struct Failure {
  api::ApiError error;
  const char* retry_after = nullptr;  // seconds, when retrying may succeed
};

// Turns what a handler threw into a Failure (server/error_table.h); `request`
// ("POST /v1/embeddings") names it in the log line of a server fault.
using FailureMap = std::function<Failure(std::exception_ptr failure, const std::string& request)>;

class RequestContext {
 public:
  using Clock = std::chrono::steady_clock;

  RequestContext(std::string owner, ErrorStyle errors, std::function<bool()> client_gone,
                 Clock::duration heartbeat, FailureMap failures, std::string request)
      : owner_(std::move(owner)),
        errors_(errors),
        client_gone_(std::move(client_gone)),
        heartbeat_(heartbeat),
        failures_(std::move(failures)),
        request_(std::move(request)) {}

  // Whose request this is: the SHA-256 digest of its API key (auth.h
  // state_owner), "" when the server has no keys.
  const std::string& owner() const { return owner_; }
  ErrorStyle errors() const { return errors_; }
  // True once the client has closed its connection: work for it can stop.
  bool should_stop() const { return client_gone_ && client_gone_(); }
  // --heartbeat-seconds; zero: the status waits for the outcome.
  Clock::duration heartbeat() const { return heartbeat_; }
  // "POST /v1/embeddings"
  const std::string& request() const { return request_; }
  // What the current exception tells the client, in this route's shape.
  Failure failure(std::exception_ptr e) const { return failures_(e, request_); }
  Response failure_response(const Failure& f) const;

 private:
  std::string owner_;
  ErrorStyle errors_;
  std::function<bool()> client_gone_;
  Clock::duration heartbeat_;
  FailureMap failures_;
  std::string request_;
};

using Handler = std::function<Response(const Request&, RequestContext&)>;

}  // namespace rwkv::server::http
