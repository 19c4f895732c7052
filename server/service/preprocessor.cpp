#include "server/service/preprocessor.h"

#include <algorithm>
#include <cstdint>

#include "api/api_error.h"
#include "engine/text/prompt_templates.h"
#include "engine/text/tokenizer.h"

namespace rwkv::server::service {
namespace {

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

// n >= kProtocolChunk tokens as 4 pieces of ceil(n/4) (the last shorter), each + EOS.
void append_pieces(std::span<const int32_t> part, std::vector<int32_t>& out) {
  const size_t piece = std::max<size_t>(1, ceil_div(part.size(), kProtocolEos));
  for (size_t k = 0; k < kProtocolEos; ++k) {
    const size_t start = std::min(part.size(), k * piece);
    const size_t end = std::min(part.size(), start + piece);
    out.insert(out.end(), part.begin() + start, part.begin() + end);
    out.push_back(text::Tokenizer::kEos);
  }
}

}  // namespace

model::EmbeddingHead head_of(api::InputType type) {
  switch (type) {
    case api::InputType::kSts:
      return model::EmbeddingHead::kSts;
    case api::InputType::kClassification:
    case api::InputType::kClustering:
      return model::EmbeddingHead::kClassification;
    default:
      return model::EmbeddingHead::kRetrieval;
  }
}

std::vector<int32_t> eos_layout(std::span<const int32_t> text_ids, api::EosProtocol protocol) {
  const size_t n = text_ids.size();
  std::vector<int32_t> out;
  if (protocol == api::EosProtocol::kSingle) {
    out.reserve(n + 1);
    out.assign(text_ids.begin(), text_ids.end());
    out.push_back(text::Tokenizer::kEos);
    return out;
  }
  if (n < kProtocolChunk) {  // short: the whole text once per EOS
    out.reserve(kProtocolEos * (n + 1));
    for (size_t k = 0; k < kProtocolEos; ++k) {
      out.insert(out.end(), text_ids.begin(), text_ids.end());
      out.push_back(text::Tokenizer::kEos);
    }
    return out;
  }
  // Up to ctx - n_eos tokens: one part; longer: ceil(n / ctx) parts of
  // ceil(n / parts) tokens (the last shorter), each cut as one part.
  const size_t parts = n <= kProtocolContext - kProtocolEos ? 1 : ceil_div(n, kProtocolContext);
  const size_t part = ceil_div(n, parts);
  out.reserve(n + parts * kProtocolEos);
  for (size_t p = 0; p < parts; ++p) {
    const size_t start = std::min(n, p * part);
    append_pieces(text_ids.subspan(start, std::min(n, start + part) - start), out);
  }
  return out;
}

std::string instructed_text(std::string_view description, std::string_view text) {
  if (description.empty()) return std::string(text);
  std::string out = "Instruct: ";
  out.append(description).append("\nQuery: ").append(text);
  return out;
}

Preprocessor::Preprocessor() : protocol_(api::EosProtocol::kChunked), max_input_tokens_(SIZE_MAX) {
  for (const api::InputType type : api::kAllInputTypes)
    descriptions_[static_cast<size_t>(type)] = std::string(default_description(type));
}

Preprocessor::Preprocessor(api::EosProtocol protocol,
                           std::array<std::string, api::kAllInputTypes.size()> descriptions,
                           size_t max_input_tokens)
    : protocol_(protocol),
      descriptions_(std::move(descriptions)),
      max_input_tokens_(max_input_tokens) {}

std::string_view Preprocessor::default_description(api::InputType type) {
  switch (type) {
    case api::InputType::kSearchQuery:
      return "Given a query, retrieve documents that answer the query";
    case api::InputType::kSts:
      return "Retrieve semantically similar text";
    case api::InputType::kClassification:
    case api::InputType::kClustering:
      return "Categorizing the given news title";  // upstream's fallback
    default:
      return "";  // documents: the text as it is
  }
}

const std::string& Preprocessor::description(api::InputType type) const {
  return descriptions_[static_cast<size_t>(type)];
}

PreparedText Preprocessor::embedding_text(std::string_view text, api::InputType type,
                                          const api::TextOptions& options, size_t max_tokens,
                                          api::Truncate truncate, const std::string& where,
                                          const std::string& param) const {
  const text::Tokenizer& tok = text::Tokenizer::world();
  max_tokens = std::min(max_tokens, max_input_tokens_);
  const std::string& description =
      options.instruction ? *options.instruction : this->description(type);
  std::vector<int32_t> ids = tok.encode(text, false);
  std::string cut;  // the truncated text, when an instruction goes before it
  if (ids.size() > max_tokens) {
    if (truncate == api::Truncate::kNone)
      throw api::ApiError::too_many_tokens(where, ids.size(), max_tokens, param,
                                           "shorten it or ask for truncation");
    if (truncate == api::Truncate::kStart)
      ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(max_tokens));
    else
      ids.resize(max_tokens);
    if (!description.empty()) {
      // Greedy longest match re-encodes a cut at token boundaries to the same ids.
      cut = tok.decode(ids);
      text = cut;
    }
  }
  PreparedText out;
  out.text_tokens = ids.size();
  if (!description.empty()) ids = tok.encode(instructed_text(description, text), false);
  out.ids = eos_layout(ids, options.eos_protocol.value_or(protocol_));
  return out;
}

std::vector<int32_t> Preprocessor::embedding_ids(std::vector<int32_t> ids, const std::string& where,
                                                 const std::string& param) const {
  // Ids without EOS have no embedding (upstream pools nothing: NaN). Their
  // usual sender is LangChain's OpenAIEmbeddings, whose tiktoken ids are
  // mostly < 65536 too: appending EOS would embed them as garbage, silently.
  if (std::find(ids.begin(), ids.end(), text::Tokenizer::kEos) == ids.end())
    throw api::ApiError::bad_request(
        where +
            " has no EOS token (65535). Token ids are used as given, and the embedding pools "
            "the EOS positions: append 65535 to RWKV World ids (/tokenize does). Ids from "
            "another tokenizer mean nothing to this model: if you use LangChain "
            "OpenAIEmbeddings, set check_embedding_ctx_length=False so that it sends the texts",
        param);
  return ids;
}

std::vector<int32_t> Preprocessor::rerank_pair(const std::string& document,
                                               const std::string& query,
                                               std::optional<int> max_document_tokens,
                                               const std::string& where) const {
  const text::Tokenizer& tokenizer = text::Tokenizer::world();
  std::vector<int32_t> ids;
  if (max_document_tokens) {
    // The document as the template tokenizes it: its first token may take the space before it.
    const std::string prefix = text::rerank_document_prefix();
    ids = tokenizer.encode(prefix + document, false);
    size_t first = 0;  // the document's first token: the first to end past the prefix
    for (size_t end = 0; first < ids.size(); ++first) {
      end += tokenizer.decode(std::span(ids).subspan(first, 1)).size();
      if (end > prefix.size()) break;
    }
    if (ids.size() - first > size_t(*max_document_tokens)) {
      ids.resize(first + size_t(*max_document_tokens));
      tokenizer.encode_into(text::rerank_online_suffix(query), ids);  // the rest apart
      ids.push_back(text::Tokenizer::kEos);
    } else {
      ids.clear();
    }
  }
  if (ids.empty()) ids = tokenizer.encode(text::rerank_online_text(document, query));
  if (ids.size() > max_input_tokens_)
    throw api::ApiError::too_many_tokens(where + " with the query", ids.size(), max_input_tokens_,
                                         "documents", "set max_tokens_per_doc");
  return ids;
}

std::vector<int32_t> Preprocessor::rerank_query(const std::string& query) const {
  std::vector<int32_t> ids = text::Tokenizer::world().encode(text::rerank_query_text(query));
  if (ids.size() > max_input_tokens_)
    throw api::ApiError::too_many_tokens("the query", ids.size(), max_input_tokens_, "query");
  return ids;
}

std::vector<int32_t> Preprocessor::state_document(const std::string& document,
                                                  const std::string& where) const {
  std::vector<int32_t> ids =
      text::Tokenizer::world().encode(text::rerank_document_text(document), false);
  if (ids.size() > max_input_tokens_)
    throw api::ApiError::too_many_tokens("'" + where + "' with the template", ids.size(),
                                         max_input_tokens_, "documents");
  return ids;
}

}  // namespace rwkv::server::service
