#include "server/http/message.h"

#include <algorithm>
#include <cctype>

namespace rwkv::server::http {

std::string Request::header(std::string_view name) const {
  std::string key(name);
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  const auto it = headers.find(key);
  return it == headers.end() ? std::string() : it->second;
}

std::optional<std::string> Request::query_param(const std::string& name) const {
  const auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

std::string dump(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response Response::json(int status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.body = dump(body);
  return r;
}

Response Response::error(ErrorStyle style, const api::ApiError& error) {
  return json(error.status, style == ErrorStyle::kCohere ? api::cohere_error_body(error)
                                                         : api::openai_error_body(error));
}

Response Response::content(std::string body, std::string content_type) {
  Response r;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

Response& Response::with_header(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

Response RequestContext::failure_response(const Failure& f) const {
  if (f.error.status == 499) {  // nobody reads it
    Response r;
    r.status = 499;
    return r;
  }
  Response r = Response::error(errors_, f.error);
  if (f.retry_after) r.with_header("Retry-After", f.retry_after);
  return r;
}

}  // namespace rwkv::server::http
