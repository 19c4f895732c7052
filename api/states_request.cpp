#include "api/states_request.h"

#include <set>

#include "api/json_fields.h"
#include "engine/states/state_store.h"

namespace rwkv::api {

using nlohmann::json;

ApiError invalid_state_id(const std::string& id, const std::string& param) {
  return ApiError::bad_request("invalid state id '" + sanitize_utf8(id.substr(0, 200)) +
                                   "': use 1 to 128 of A-Z a-z 0-9 . _ - (not '.' or '..')",
                               param);
}

states::StateDtype parse_state_dtype_param(const std::string& name, const std::string& param) {
  if (const auto dtype = states::parse_state_dtype(name)) return *dtype;
  throw ApiError::bad_request("'" + param + "' must be float32, float16, bfloat16 or int8, not '" +
                                  sanitize_utf8(name.substr(0, 200)) + "'",
                              param);
}

CreateStatesRequest parse_create_states_request(const json& body, const RequestLimits& limits) {
  require_object(body);
  CreateStatesRequest request;
  request.model = optional_string(body, "model").value_or("");
  request.ttl_seconds = optional_int(body, "ttl_seconds", 1, kMaxStateTtlSeconds);
  if (const auto dtype = optional_string(body, "dtype"))
    request.dtype = parse_state_dtype_param(*dtype, "dtype");
  const json* list = find_field(body, "documents");
  if (!list) throw ApiError::bad_request("'documents' is required", "documents");
  if (!list->is_array() || list->empty())
    throw ApiError::bad_request(
        "'documents' must be a non-empty array of strings or {\"text\", \"id\"?} objects",
        "documents");
  check_item_count(list->size(), "documents", limits.max_inputs);

  std::set<std::string> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& item = (*list)[i];
    const std::string where = "documents[" + std::to_string(i) + "]";
    StateDocument document;
    if (item.is_string()) {
      document.text = item.get<std::string>();
    } else if (item.is_object()) {
      const json* text = find_field(item, "text");
      if (!text || !text->is_string())
        throw ApiError::bad_request("'" + where + "' must have a string 'text'", "documents");
      document.text = text->get<std::string>();
      if (const json* id = find_field(item, "id")) {
        if (!id->is_string()) throw invalid_state_id(id->dump(), "documents");
        document.id = id->get<std::string>();
        if (!states::valid_state_id(document.id)) throw invalid_state_id(document.id, "documents");
        if (!seen.insert(document.id).second)
          throw ApiError::bad_request(
              "'" + where + "': the id '" + document.id + "' is given twice", "documents");
      }
    } else {
      throw ApiError::bad_request("'" + where +
                                      "' must be a string or a {\"text\", \"id\"?} object, got " +
                                      describe_value(item),
                                  "documents");
    }
    check_text_bytes(document.text, where, "documents", limits.max_input_bytes);
    request.documents.push_back(std::move(document));
  }
  return request;
}

}  // namespace rwkv::api
