// `POST /v1/states`: request parsing and validation. The route then checks
// the model, the state bytes one request may compute, and the tokens.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/api_error.h"
#include "api/limits.h"
#include "engine/states/state_blob.h"

namespace rwkv::api {

// Ten years: the longest `ttl_seconds` of a state (POST body or PUT query).
inline constexpr int64_t kMaxStateTtlSeconds = int64_t(10) * 366 * 24 * 3600;

struct StateDocument {
  std::string text;  // may be ""
  std::string id;    // a valid state id, or "" when the server names the state
};

struct CreateStatesRequest {
  std::string model;                   // "" when absent
  std::optional<int64_t> ttl_seconds;  // 1..kMaxStateTtlSeconds
  std::optional<states::StateDtype>
      dtype;  // how to store the states; the server's default when absent
  std::vector<StateDocument> documents;  // at least one; the client's ids are distinct
};

// {"model"?, "documents": [string | {"text", "id"?}], "ttl_seconds"?, "dtype"?}.
// Throws ApiError: 400 naming the field, 413 for more documents
// (`limits.max_inputs`) or longer texts (`limits.max_input_bytes`) than allowed.
CreateStatesRequest parse_create_states_request(const nlohmann::json& body,
                                                const RequestLimits& limits = {});

// A state dtype by name (`param` names the field or query parameter); 400 otherwise.
states::StateDtype parse_state_dtype_param(const std::string& name, const std::string& param);

// The 400 for an id that is not a valid state id (quoting at most 200 bytes of it).
ApiError invalid_state_id(const std::string& id, const std::string& param);

}  // namespace rwkv::api
