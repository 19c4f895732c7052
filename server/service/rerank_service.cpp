#include "server/service/rerank_service.h"

#include <map>

#include "server/service/postprocessor.h"
#include "server/service/state_service.h"

namespace rwkv::server::service {

Pending<RerankScores> rerank(const ServedModel& served, const StateStorage& storage,
                             const api::RerankRequest& r, const std::string& owner) {
  const std::string model = served.catalog.resolve(r.model);
  if (!served.engine.has_reranker())
    throw api::ApiError(400, "this server has no reranker model (start it with --reranker)",
                        "model");
  // Every state of the request, fetched at once.
  std::map<std::string, std::shared_ptr<const states::SequenceState>> cached;
  std::vector<std::string> state_ids, wheres;
  for (size_t i = 0; i < r.documents.size(); ++i)
    if (r.documents[i].kind == api::RerankDocument::Kind::kState &&
        cached.emplace(r.documents[i].state_id, nullptr).second) {
      state_ids.push_back(r.documents[i].state_id);
      wheres.push_back("documents[" + std::to_string(i) + "]");
    }
  std::vector<int32_t> query_tokens;  // offline: billed per state document
  if (!state_ids.empty()) {
    // The query's own limit first: a request refused for it reads no state.
    query_tokens = served.preprocessor.rerank_query(r.query);
    const auto loaded = load_states(served, storage, owner, state_ids, wheres);
    for (size_t k = 0; k < state_ids.size(); ++k) cached[state_ids[k]] = loaded[k];
  }
  std::vector<scheduling::SequenceJob> jobs;
  int64_t tokens = 0;
  for (size_t i = 0; i < r.documents.size(); ++i) {
    const api::RerankDocument& doc = r.documents[i];
    scheduling::SequenceJob job;
    if (doc.kind == api::RerankDocument::Kind::kState) {
      job.tokens = query_tokens;
      job.initial = cached.at(doc.state_id);
    } else {
      job.tokens = served.preprocessor.rerank_pair(doc.text, r.query, r.max_tokens_per_doc,
                                                   "documents[" + std::to_string(i) + "]");
    }
    job.wanted = {model::Output::kRerankLogit};
    tokens += int64_t(job.tokens.size());
    jobs.push_back(std::move(job));
  }
  return {served.scheduler.submit(std::move(jobs)),
          [raw = r.raw_scores, model, tokens](std::vector<model::Engine::Result>& out) {
            return RerankScores{rerank_scores_of(out, raw), model, tokens};
          }};
}

}  // namespace rwkv::server::service
