#include "server/http/route_table.h"

namespace rwkv::server::http {

void RouteTable::add(const RouteSpec& spec) {
  entries_.push_back({spec, std::regex(spec.pattern)});
}

std::vector<RouteSpec> RouteTable::match(const std::string& path) const {
  std::vector<RouteSpec> routes;
  for (const Entry& e : entries_)
    if (std::regex_match(path, e.pattern)) routes.push_back(e.spec);
  return routes;
}

const RouteSpec* route_for_method(const std::vector<RouteSpec>& routes, const std::string& method) {
  const std::string wanted = method == "HEAD" ? "GET" : method;
  for (const RouteSpec& r : routes)
    if (r.method == wanted) return &r;
  return nullptr;
}

std::string allowed_methods(const std::vector<RouteSpec>& routes) {
  std::string allow;
  for (const RouteSpec& r : routes) {
    allow += (allow.empty() ? "" : ", ") + r.method;
    if (r.method == "GET") allow += ", HEAD";
  }
  return allow;
}

}  // namespace rwkv::server::http
