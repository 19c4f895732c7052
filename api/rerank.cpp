#include "api/rerank.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <utility>

#include "api/api_error.h"
#include "api/json_fields.h"

namespace rwkv::api {

namespace {

using nlohmann::json;

// Empty, or only whitespace as C classifies it (\v and \f too), as Cohere refuses a query.
bool is_blank(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c); });
}

// A field value as rank text: strings as they are, anything else as JSON.
std::string field_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

RerankDocument text_document(std::string text) {
  RerankDocument document;
  document.source = {{"text", text}};
  document.text = std::move(text);
  return document;
}

// An object document: {"state_id"}, {"text", ...}, or fields picked by
// `rank_fields`.
RerankDocument object_document(const json& object, const std::string& where,
                               const std::optional<std::vector<std::string>>& rank_fields) {
  const auto bad = [](const std::string& message) {
    return ApiError::bad_request(message, std::string("documents"));
  };
  RerankDocument document;
  document.source = object;
  if (const json* state_id = find_field(object, "state_id")) {
    if (!state_id->is_string() || state_id->get_ref<const std::string&>().empty()) {
      throw bad("'" + where + ".state_id' must be a non-empty string, got " +
                describe_value(*state_id));
    }
    if (find_field(object, "text")) {
      throw bad("'" + where + "' has both 'text' and 'state_id': give one");
    }
    document.kind = RerankDocument::Kind::kState;
    document.state_id = state_id->get<std::string>();
    return document;
  }
  if (rank_fields) {
    std::vector<std::pair<const std::string*, const json*>> present;
    for (const auto& name : *rank_fields) {
      if (const json* value = find_field(object, name)) present.emplace_back(&name, value);
    }
    if (present.empty()) throw bad("'" + where + "' has none of the fields in 'rank_fields'");
    if (present.size() == 1) {
      document.text = field_text(*present.front().second);
    } else {
      for (size_t i = 0; i < present.size(); ++i) {
        if (i > 0) document.text += '\n';
        document.text += *present[i].first + ": " + field_text(*present[i].second);
      }
    }
    return document;
  }
  const json* text = find_field(object, "text");
  if (!text || !text->is_string()) {
    throw bad("'" + where + "' must have a string 'text' (or a 'state_id', or give 'rank_fields')");
  }
  document.text = text->get<std::string>();
  return document;
}

std::vector<RerankDocument> parse_documents(const json& body, RerankApi api,
                                            const RequestLimits& limits) {
  const char* field = api == RerankApi::kTei ? "texts" : "documents";
  const auto bad = [&](const std::string& message) {
    return ApiError::bad_request(message, std::string(field));
  };
  const json* list = find_field(body, field);
  if (!list) throw bad("'" + std::string(field) + "' is required");
  if (!list->is_array()) {
    throw bad("'" + std::string(field) + "' must be an array, got " + describe_value(*list));
  }
  if (list->empty()) throw bad("'" + std::string(field) + "' must not be empty");
  check_item_count(list->size(), field, limits.max_documents);

  std::optional<std::vector<std::string>> rank_fields;
  if (api != RerankApi::kTei) {
    rank_fields = optional_string_list(body, "rank_fields");
    if (rank_fields && rank_fields->empty()) rank_fields.reset();
  }

  std::vector<RerankDocument> documents;
  documents.reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    const json& item = (*list)[i];
    const std::string where = std::string(field) + "[" + std::to_string(i) + "]";
    if (item.is_string()) {
      documents.push_back(text_document(item.get<std::string>()));
    } else if (item.is_object() && api != RerankApi::kTei) {
      documents.push_back(object_document(item, where, rank_fields));
    } else {
      throw bad("'" + where + "' must be " +
                (api == RerankApi::kTei ? "a string"
                                        : "a string, a {\"text\": ...} object or a "
                                          "{\"state_id\": ...} object") +
                ", got " + describe_value(item));
    }
    check_text_bytes(documents.back().text, where, field, limits.max_input_bytes);
  }
  return documents;
}

}  // namespace

RerankApi rerank_api_for_bare_route(const json& body) {
  return find_field(body, "texts") ? RerankApi::kTei : RerankApi::kCohereV1;
}

RerankRequest parse_rerank_request(const json& body, RerankApi api, const RequestLimits& limits) {
  require_object(body);
  RerankRequest request;
  request.api = api;
  request.model = optional_string(body, "model").value_or("");

  request.query = required_string(body, "query");
  if (is_blank(request.query)) {
    // Cohere's wording.
    throw ApiError::bad_request("'query' must not be empty or be only whitespace", "query");
  }
  check_text_bytes(request.query, "query", "query", limits.max_input_bytes);

  request.documents = parse_documents(body, api, limits);

  const auto top_n = optional_int(body, "top_n", 0);
  request.top_n = request.documents.size();
  if (top_n && *top_n > 0) request.top_n = std::min<size_t>(request.top_n, *top_n);

  const auto return_documents =
      optional_bool(body, api == RerankApi::kTei ? "return_text" : "return_documents");
  request.return_documents = return_documents.value_or(false);

  const auto max_tokens =
      optional_int(body, "max_tokens_per_doc", 0, std::numeric_limits<int>::max());
  if (max_tokens && *max_tokens > 0) request.max_tokens_per_doc = static_cast<int>(*max_tokens);

  if (api == RerankApi::kTei)
    request.raw_scores = optional_bool(body, "raw_scores").value_or(false);
  return request;
}

}  // namespace rwkv::api
