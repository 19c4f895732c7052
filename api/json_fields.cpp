#include "api/json_fields.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "api/api_error.h"

namespace rwkv::api {

namespace {

using nlohmann::json;

std::string field_name(std::string_view key) { return "'" + std::string(key) + "'"; }

// Length of the well-formed UTF-8 sequence starting at text[i], 0 if none.
// Ranges from the Unicode standard, table 3-7.
size_t utf8_sequence_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t length;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

// Nothing but the whitespace JSON allows around a value (RFC 8259: no \v or \f).
bool only_json_whitespace(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

// nlohmann's messages start with "[json.exception.parse_error.101] ": drop
// that, and bound the length (the "last read" part can quote a long token).
std::string parser_message(const char* what) {
  std::string_view message = what;
  if (!message.empty() && message.front() == '[') {
    const size_t end = message.find("] ");
    if (end != std::string_view::npos) message.remove_prefix(end + 2);
  }
  constexpr size_t kMaxLength = 300;
  if (message.size() > kMaxLength) return sanitize_utf8(message.substr(0, kMaxLength)) + "...";
  return sanitize_utf8(message);
}

ApiError type_error(std::string_view key, std::string_view expected, const json& got) {
  return ApiError::bad_request(
      field_name(key) + " must be " + std::string(expected) + ", got " + describe_value(got),
      std::string(key));
}

}  // namespace

// ---- Body ----

bool nesting_exceeds(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;  // unbalanced closers are the parser's problem
    }
  }
  return false;
}

json parse_body(std::string_view body, size_t max_depth) {
  if (only_json_whitespace(body))
    throw ApiError::bad_request("request body is empty: expected a JSON object");
  // nlohmann's parser keeps its own stack, but recursive code elsewhere
  // (destruction, dumping, our readers) must never see a hostile depth.
  if (nesting_exceeds(body, max_depth)) {
    throw ApiError::bad_request("request body is not valid JSON: nested more than " +
                                std::to_string(max_depth) + " levels deep");
  }
  json parsed;
  try {
    parsed = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    throw ApiError::bad_request("request body is not valid JSON: " + parser_message(e.what()));
  }
  require_object(parsed);
  return parsed;
}

// ---- UTF-8 ----

bool is_valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8_sequence_length(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++i;
    } else {
      out.append(text, i, length);
      i += length;
    }
  }
  return out;
}

// ---- Fields ----

void require_object(const json& body) {
  if (!body.is_object()) {
    throw ApiError::bad_request("request body must be a JSON object, got " + describe_value(body));
  }
}

const json* find_field(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<int64_t> integer_value(const json& value) {
  if (value.is_number_unsigned()) {
    const auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    const double d = value.get<double>();
    // 2^63 is exactly representable; anything at or above it overflows.
    if (!std::isfinite(d) || d != std::trunc(d) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0) {
      return std::nullopt;
    }
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::string describe_value(const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::null:
      return "null";
    default: {
      // Replace, never throw, on bytes that are not UTF-8.
      std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
      constexpr size_t kMaxLength = 60;
      if (text.size() > kMaxLength) text = sanitize_utf8(text.substr(0, kMaxLength)) + "...";
      return text;
    }
  }
}

std::optional<std::string> optional_string(const json& object, std::string_view key) {
  const json* value = find_field(object, key);
  if (!value) return std::nullopt;
  if (!value->is_string()) throw type_error(key, "a string", *value);
  return value->get<std::string>();
}

std::string required_string(const json& object, std::string_view key) {
  auto value = optional_string(object, key);
  if (!value) throw ApiError::bad_request(field_name(key) + " is required", std::string(key));
  return std::move(*value);
}

std::optional<bool> optional_bool(const json& object, std::string_view key) {
  const json* value = find_field(object, key);
  if (!value) return std::nullopt;
  if (!value->is_boolean()) throw type_error(key, "a boolean", *value);
  return value->get<bool>();
}

std::optional<int64_t> optional_int(const json& object, std::string_view key, int64_t min,
                                    int64_t max) {
  const json* value = find_field(object, key);
  if (!value) return std::nullopt;
  const auto number = integer_value(*value);
  // "a positive integer" reads better than "an integer between 1 and 2^31-1".
  const bool unbounded =
      max == std::numeric_limits<int64_t>::max() || max == std::numeric_limits<int32_t>::max();
  std::string expected;
  if (min == 1 && unbounded) {
    expected = "a positive integer";
  } else if (min == 0 && unbounded) {
    expected = "a non-negative integer";
  } else {
    expected = "an integer between " + std::to_string(min) + " and " + std::to_string(max);
  }
  if (number && *number > max && unbounded) expected += " no larger than " + std::to_string(max);
  if (!number || *number < min || *number > max) throw type_error(key, expected, *value);
  return number;
}

std::optional<std::string> optional_enum(const json& object, std::string_view key,
                                         std::initializer_list<std::string_view> allowed) {
  const json* value = find_field(object, key);
  if (!value) return std::nullopt;
  std::string expected = "one of";
  for (const auto option : allowed) {
    expected += (option == *allowed.begin() ? " \"" : ", \"") + std::string(option) + "\"";
  }
  if (!value->is_string()) throw type_error(key, expected, *value);
  const auto& text = value->get_ref<const std::string&>();
  if (std::find(allowed.begin(), allowed.end(), text) == allowed.end()) {
    throw type_error(key, expected, *value);
  }
  return text;
}

std::optional<std::vector<std::string>> optional_string_list(const json& object,
                                                             std::string_view key) {
  const json* value = find_field(object, key);
  if (!value) return std::nullopt;
  if (!value->is_array()) throw type_error(key, "an array of strings", *value);
  std::vector<std::string> out;
  out.reserve(value->size());
  for (size_t i = 0; i < value->size(); ++i) {
    const json& item = (*value)[i];
    if (!item.is_string()) {
      throw type_error(std::string(key) + "[" + std::to_string(i) + "]", "a string", item);
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

// ---- Limits ----

void check_text_bytes(std::string_view text, std::string_view where, std::string_view param,
                      size_t max_bytes) {
  if (text.size() <= max_bytes) return;
  throw ApiError::payload_too_large(field_name(where) + " is " + std::to_string(text.size()) +
                                        " bytes long, over the limit of " +
                                        std::to_string(max_bytes) + " bytes",
                                    std::string(param));
}

void check_item_count(size_t count, std::string_view field, size_t max_items) {
  if (count <= max_items) return;
  throw ApiError::payload_too_large(field_name(field) + " has " + std::to_string(count) +
                                        " items, over the limit of " + std::to_string(max_items) +
                                        " per request",
                                    std::string(field));
}

}  // namespace rwkv::api
