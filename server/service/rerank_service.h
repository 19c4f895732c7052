// Reranking: text documents are scored online, one sequence per (document,
// query) pair through the embedding model, then the reranker on its final
// state; {"state_id"} documents offline, the query alone on a copy of the
// cached document state (/v1/states).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "api/rerank.h"
#include "server/service/pending.h"
#include "server/service/served_model.h"

namespace rwkv::server::service {

struct RerankScores {
  std::vector<float> scores;  // per document, in request order: sigmoids, or logits when raw
  std::string model;          // the name to report
  int64_t tokens = 0;         // the tokens run (offline: the query's, per state document)
};

// `owner` (RequestContext::owner) is whose states the request may use;
// `states` may be null when no document is a state. Throws ApiError before
// anything is queued: 404 model or unknown state, 400 no reranker, 413 tokens,
// and those of load_states (state_service.h).
Pending<RerankScores> rerank(const ServedModel& served, const StateStorage& states,
                             const api::RerankRequest& request, const std::string& owner);

}  // namespace rwkv::server::service
