#include "api/api_error.h"

#include <utility>

#include "api/json_fields.h"

namespace rwkv::api {

ApiError::ApiError(int status, const std::string& message, std::optional<std::string> param,
                   std::optional<std::string> code)
    : std::runtime_error(message),
      status(status),
      type(openai_error_type(status)),
      param(std::move(param)),
      code(std::move(code)) {}

ApiError ApiError::bad_request(const std::string& message, std::optional<std::string> param) {
  return ApiError(400, message, std::move(param));
}

ApiError ApiError::too_many_tokens(const std::string& what, size_t tokens, size_t limit,
                                   const std::string& param, const std::string& hint) {
  return bad_request(what + " has " + std::to_string(tokens) + " tokens, more than the limit of " +
                         std::to_string(limit) + (hint.empty() ? "" : "; " + hint),
                     param);
}
ApiError ApiError::unauthorized(const std::string& message) { return ApiError(401, message); }
ApiError ApiError::not_found(const std::string& message, std::optional<std::string> param) {
  return ApiError(404, message, std::move(param));
}
ApiError ApiError::payload_too_large(const std::string& message, std::optional<std::string> param) {
  return ApiError(413, message, std::move(param));
}
ApiError ApiError::unprocessable(const std::string& message, std::optional<std::string> param) {
  return ApiError(422, message, std::move(param));
}
ApiError ApiError::too_many_requests(const std::string& message) { return ApiError(429, message); }
ApiError ApiError::internal(const std::string& message) { return ApiError(500, message); }
ApiError ApiError::unavailable(const std::string& message) { return ApiError(503, message); }

std::string openai_error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

namespace {

// Messages may quote client bytes (a parser's "last read"): keep the body
// serializable whatever they hold.
nlohmann::json message_of(const ApiError& error) { return sanitize_utf8(error.what()); }

nlohmann::json optional_string_json(const std::optional<std::string>& s) {
  return s ? nlohmann::json(sanitize_utf8(*s)) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json openai_error_body(const ApiError& error) {
  return {{"error",
           {{"message", message_of(error)},
            {"type", error.type},
            {"param", optional_string_json(error.param)},
            {"code", optional_string_json(error.code)}}}};
}

nlohmann::json cohere_error_body(const ApiError& error) { return {{"message", message_of(error)}}; }

}  // namespace rwkv::api
