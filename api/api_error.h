// A client-visible failure: an HTTP status, a message, and (for OpenAI's
// error envelope) the error type, the offending field and a machine code.
// Parsers throw it; the route catches it and writes the body of the API it
// serves (openai_error_body or cohere_error_body) with `status`.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

namespace rwkv::api {

struct ApiError : std::runtime_error {
  int status;
  std::string type;                  // OpenAI error type, e.g. "invalid_request_error"
  std::optional<std::string> param;  // the request field at fault, e.g. "input"
  std::optional<std::string> code;   // OpenAI machine code, e.g. "model_not_found"

  ApiError(int status, const std::string& message, std::optional<std::string> param = std::nullopt,
           std::optional<std::string> code = std::nullopt);

  static ApiError bad_request(const std::string& message,
                              std::optional<std::string> param = std::nullopt);  // 400
  // 400: "`what` has `tokens` tokens, more than the limit of `limit`[; `hint`]".
  static ApiError too_many_tokens(const std::string& what, size_t tokens, size_t limit,
                                  const std::string& param, const std::string& hint = "");
  static ApiError unauthorized(const std::string& message);  // 401
  static ApiError not_found(const std::string& message,
                            std::optional<std::string> param = std::nullopt);  // 404
  static ApiError payload_too_large(const std::string& message,
                                    std::optional<std::string> param = std::nullopt);  // 413
  static ApiError unprocessable(const std::string& message,
                                std::optional<std::string> param = std::nullopt);  // 422
  static ApiError too_many_requests(const std::string& message);                   // 429
  static ApiError internal(const std::string& message);                            // 500
  static ApiError unavailable(const std::string& message);                         // 503
};

// OpenAI's `type` for an HTTP status: invalid_request_error (4xx),
// authentication_error (401), permission_error (403), rate_limit_error (429),
// server_error (5xx).
std::string openai_error_type(int status);

// {"error": {"message", "type", "param", "code"}}; absent param/code are null.
nlohmann::json openai_error_body(const ApiError& error);

// {"message": "..."}: what Cohere returns (its SDK maps the status to a class).
nlohmann::json cohere_error_body(const ApiError& error);

}  // namespace rwkv::api
