// The reranker's prompt templates (docs/model.md "Reranker"). Online mode embeds
// document and query in one sequence; offline mode splits it at "Query:" so
// the document part's state can be cached and reused.
#pragma once

#include <string>
#include <string_view>

namespace rwkv::text {

inline constexpr std::string_view kRerankInstruction =
    "Instruct: Given a query, retrieve documents that answer the query\n";

// What precedes the document, online and offline.
inline std::string rerank_document_prefix() {
  return std::string(kRerankInstruction).append("Document: ");
}

// Online: what follows the document.
inline std::string rerank_online_suffix(std::string_view query) {
  return std::string("\nQuery: ").append(query);
}

// Online: one sequence per (document, query) pair, then EOS.
inline std::string rerank_online_text(std::string_view document, std::string_view query) {
  return rerank_document_prefix().append(document).append(rerank_online_suffix(query));
}

// Offline, cached part: the document, without EOS.
inline std::string rerank_document_text(std::string_view document) {
  return rerank_document_prefix().append(document).append("\n");
}

// Offline, per query: run on top of a copy of the document state, then EOS.
inline std::string rerank_query_text(std::string_view query) {
  return std::string("Query: ").append(query);
}

}  // namespace rwkv::text
