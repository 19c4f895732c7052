// The reranker's prompt templates (MODEL.md "Reranker"). Online mode embeds
// document and query in one sequence; offline mode splits it at "Query:" so
// the document part's state can be cached and reused.
#pragma once

#include <string>
#include <string_view>

namespace rwkv {

inline constexpr std::string_view kRerankInstruction =
    "Instruct: Given a query, retrieve documents that answer the query\n";

// Online: one sequence per (document, query) pair, then EOS.
inline std::string rerank_online_text(std::string_view document, std::string_view query) {
  std::string s(kRerankInstruction);
  s.append("Document: ").append(document).append("\nQuery: ").append(query);
  return s;
}

// Offline, cached part: the document, without EOS.
inline std::string rerank_document_text(std::string_view document) {
  std::string s(kRerankInstruction);
  s.append("Document: ").append(document).append("\n");
  return s;
}

// Offline, per query: run on top of a copy of the document state, then EOS.
inline std::string rerank_query_text(std::string_view query) {
  return std::string("Query: ").append(query);
}

}  // namespace rwkv
