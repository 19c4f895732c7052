#include "api/input_protocol.h"

#include <algorithm>

#include "api/api_error.h"
#include "api/json_fields.h"

namespace rwkv::api {

namespace {

std::string quoted_list(std::span<const std::string_view> names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i ? ", \"" : "\"") + std::string(names[i]) + "\"";
  return out;
}

}  // namespace

std::string_view input_type_name(InputType type) {
  switch (type) {
    case InputType::kSearchDocument:
      return "search_document";
    case InputType::kSearchQuery:
      return "search_query";
    case InputType::kSts:
      return "sts";
    case InputType::kClassification:
      return "classification";
    case InputType::kClustering:
      return "clustering";
  }
  return "";
}

std::optional<InputType> input_type_from_name(std::string_view name) {
  for (const InputType type : kAllInputTypes)
    if (input_type_name(type) == name) return type;
  return std::nullopt;
}

std::string_view eos_protocol_name(EosProtocol protocol) {
  return protocol == EosProtocol::kChunked ? "chunked" : "single";
}

std::optional<EosProtocol> eos_protocol_from_name(std::string_view name) {
  if (name == "chunked") return EosProtocol::kChunked;
  if (name == "single") return EosProtocol::kSingle;
  return std::nullopt;
}

std::string_view task_of(InputType type) {
  switch (type) {
    case InputType::kSts:
      return "sts";
    case InputType::kClassification:
    case InputType::kClustering:
      return "classification";
    default:
      return "retrieval";
  }
}

std::optional<InputType> input_type_of_task(std::string_view task) {
  if (task == "retrieval") return InputType::kSearchDocument;
  if (task == "sts") return InputType::kSts;
  if (task == "classification") return InputType::kClassification;
  return std::nullopt;
}

TextOptions parse_text_options(const nlohmann::json& body, std::span<const InputType> allowed) {
  TextOptions options;
  if (const auto name = optional_string(body, "input_type")) {
    const auto type = input_type_from_name(*name);
    if (!type || std::find(allowed.begin(), allowed.end(), *type) == allowed.end()) {
      std::vector<std::string_view> names;
      for (const InputType t : allowed) names.push_back(input_type_name(t));
      throw ApiError::bad_request("'input_type' must be one of " + quoted_list(names) + ", got " +
                                      describe_value(nlohmann::json(*name)),
                                  "input_type");
    }
    options.input_type = type;
  }
  options.instruction = optional_string(body, "instruction");
  if (const auto protocol = optional_enum(body, "eos_protocol", {"chunked", "single"}))
    options.eos_protocol = eos_protocol_from_name(*protocol);
  return options;
}

void apply_task(TextOptions& text, const std::string& task) {
  const auto implied = input_type_of_task(task);
  if (!implied) {
    throw ApiError::bad_request(
        "'task' must be one of \"retrieval\", \"sts\", \"classification\", got " +
            describe_value(nlohmann::json(task)),
        "task");
  }
  if (!text.input_type) {
    text.input_type = implied;
  } else if (task_of(*text.input_type) != task) {
    throw ApiError::bad_request("'task' \"" + task + "\" and 'input_type' \"" +
                                    std::string(input_type_name(*text.input_type)) +
                                    "\" pick different heads; give only 'input_type'",
                                "task");
  }
}

}  // namespace rwkv::api
