// The routes the server registered, looked up by path: what a request that
// no handler takes (a method the path does not serve, a body httplib could
// not read) is answered with, and in which error shape.
#pragma once

#include <regex>
#include <string>
#include <vector>

#include "server/http/message.h"

namespace rwkv::server::http {

struct RouteSpec {
  std::string method;   // GET, POST, PUT, DELETE
  std::string pattern;  // httplib path pattern, also the metrics label
  ErrorStyle errors = ErrorStyle::kOpenAI;
  bool needs_auth = true;
};

// Filled while the routes are registered, read-only once the server listens.
class RouteTable {
 public:
  void add(const RouteSpec& spec);

  // The routes (one per method) whose pattern matches `path`; empty when none does.
  std::vector<RouteSpec> match(const std::string& path) const;

 private:
  struct Entry {
    RouteSpec spec;
    std::regex pattern;
  };
  std::vector<Entry> entries_;
};

// The route of `routes` that serves `method` (HEAD is served as GET), or nullptr.
const RouteSpec* route_for_method(const std::vector<RouteSpec>& routes, const std::string& method);

// The Allow header value for the methods of `routes`, e.g. "GET, HEAD".
std::string allowed_methods(const std::vector<RouteSpec>& routes);

}  // namespace rwkv::server::http
