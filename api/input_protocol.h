// The request vocabulary of the text-embedding input protocol (docs/model.md
// "Input protocol"): input types, EOS protocols, and the request
// fields that choose them. What they do to a text is server/service/preprocessor.h.
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace rwkv::api {

// What a text is for: picks the head and the instruction.
enum class InputType { kSearchDocument, kSearchQuery, kSts, kClassification, kClustering };
inline constexpr std::array kAllInputTypes = {InputType::kSearchDocument, InputType::kSearchQuery,
                                              InputType::kSts, InputType::kClassification,
                                              InputType::kClustering};
// Cohere's own four (no "sts").
inline constexpr std::array kCohereInputTypes = {
    InputType::kSearchDocument, InputType::kSearchQuery, InputType::kClassification,
    InputType::kClustering};

// Where the EOS tokens go: chunked (4 per 2048-token part, short texts
// repeated; as the model was trained and evaluated) or single (text + EOS).
enum class EosProtocol { kChunked, kSingle };

// "search_document", "search_query", "sts", "classification", "clustering".
std::string_view input_type_name(InputType type);
std::optional<InputType> input_type_from_name(std::string_view name);
// "chunked", "single".
std::string_view eos_protocol_name(EosProtocol protocol);
std::optional<EosProtocol> eos_protocol_from_name(std::string_view name);

// The head name of the OpenAI `task` field ("retrieval", "sts",
// "classification") of an input type, and the input type a `task` implies
// for a text (retrieval -> search_document).
std::string_view task_of(InputType type);
std::optional<InputType> input_type_of_task(std::string_view task);

// The protocol fields a text request may carry; absent ones are nullopt (the
// server's defaults, or the model alias's input type, apply).
struct TextOptions {
  std::optional<InputType> input_type;
  std::optional<std::string> instruction;  // replaces the input type's description; "" = none
  std::optional<EosProtocol> eos_protocol;
};

// Reads `input_type` (one of `allowed`), `instruction` and `eos_protocol`
// from `body`. ApiError 400 naming the field and its allowed values.
TextOptions parse_text_options(const nlohmann::json& body, std::span<const InputType> allowed);

// OpenAI's older head field `task` ("retrieval" | "sts" | "classification")
// applied to `text`: the input type it implies when `input_type` is absent.
// ApiError 400 naming "task" when both are given and pick different heads.
void apply_task(TextOptions& text, const std::string& task);

}  // namespace rwkv::api
