// The one table from the errors of every layer to what a client is told:
// api::ApiError (the parsers' and the routes' own 4xx) as it is; the
// engine's (model::InvalidTokens 400), the scheduler's (QueueFull 429,
// ShuttingDown 503, Cancelled 499), the state store's (StateStoreUnavailable
// 503, StateStoreFull 507) and the state format's (StateBlobError: malformed
// 400, another shape 422, another model 409) to theirs. Anything else,
// std::invalid_argument included, is the server's own fault: a logged 500
// with a generic message, never a 4xx by accident.
#pragma once

#include <exception>
#include <string>

#include "server/http/message.h"

namespace rwkv::server {

// `request` ("POST /v1/embeddings") names the request in the log line of a
// server fault; the client gets a generic message.
http::Failure failure_of(std::exception_ptr failure, const std::string& request);

}  // namespace rwkv::server
