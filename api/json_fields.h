// Reading request bodies: parse safely, then read optional fields where JSON
// `null` means "absent" (LangChain sends `"max_tokens_per_doc": null`), with
// type errors that name the field (ApiError 400, `param` set).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/limits.h"

namespace rwkv::api {

// ---- Body ----

// The body as a JSON object. ApiError 400 when it is empty, nested deeper
// than `max_depth`, not JSON (including invalid UTF-8 inside strings, which
// nlohmann rejects), or not an object at the top level.
nlohmann::json parse_body(std::string_view body, size_t max_depth = RequestLimits{}.max_json_depth);

// True when `text` opens more than `max_depth` brackets ([ or {) at once,
// counting only those outside strings. A linear pre-scan, no recursion.
bool nesting_exceeds(std::string_view text, size_t max_depth);

// ---- UTF-8 ----

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text);
// `text` with every invalid byte replaced by U+FFFD (for echoing client bytes).
std::string sanitize_utf8(std::string_view text);

// ---- Fields (null counts as absent) ----

// Throws ApiError 400 unless `body` is a JSON object.
void require_object(const nlohmann::json& body);

// The member `key`, or nullptr when it is missing or null.
const nlohmann::json* find_field(const nlohmann::json& object, std::string_view key);

// The value as an integer: JSON integers, and floats with an integral value
// (3.0). nullopt for anything else or out of int64 range.
std::optional<int64_t> integer_value(const nlohmann::json& value);

// A short description of a bad value for error messages: `"abc"`, `-1`,
// `an object`... (at most ~60 characters).
std::string describe_value(const nlohmann::json& value);

std::optional<std::string> optional_string(const nlohmann::json& object, std::string_view key);
// 400 "'key' is required" when absent.
std::string required_string(const nlohmann::json& object, std::string_view key);
std::optional<bool> optional_bool(const nlohmann::json& object, std::string_view key);
// An integer in [min, max]; 400 naming the field otherwise.
std::optional<int64_t> optional_int(const nlohmann::json& object, std::string_view key,
                                    int64_t min = std::numeric_limits<int64_t>::min(),
                                    int64_t max = std::numeric_limits<int64_t>::max());
// A string out of `allowed` (exact match).
std::optional<std::string> optional_enum(const nlohmann::json& object, std::string_view key,
                                         std::initializer_list<std::string_view> allowed);
// A list of strings (possibly empty).
std::optional<std::vector<std::string>> optional_string_list(const nlohmann::json& object,
                                                             std::string_view key);

// ---- Limits ----

// ApiError 413 naming `where` (e.g. "input[3]", param `param`) when `text`
// is longer than `max_bytes`.
void check_text_bytes(std::string_view text, std::string_view where, std::string_view param,
                      size_t max_bytes);
// ApiError 413 naming `field` when a list has more than `max_items` items.
void check_item_count(size_t count, std::string_view field, size_t max_items);

}  // namespace rwkv::api
