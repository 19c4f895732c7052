#include "server/service/postprocessor.h"

namespace rwkv::server::service {

std::vector<std::vector<float>> embeddings_of(std::vector<model::Engine::Result>& results,
                                              model::EmbeddingHead head, bool normalize) {
  std::vector<std::vector<float>> out;
  for (auto& r : results) {
    std::vector<float>& v = r.embeddings[static_cast<int>(head)];
    if (normalize) model::l2_normalize(v);
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<float> rerank_scores_of(const std::vector<model::Engine::Result>& results, bool raw) {
  std::vector<float> scores;
  for (const auto& r : results)
    scores.push_back(raw ? r.logit : float(model::rerank_score(r.logit)));
  return scores;
}

}  // namespace rwkv::server::service
