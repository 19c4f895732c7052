#include "server/service/postprocessor.h"

#include <cmath>

namespace rwkv::server::service {

void l2_normalize(std::vector<float>& v) {
  double sq = 0;
  for (float x : v) sq += double(x) * x;
  if (sq == 0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(sq));
  for (float& x : v) x *= inv;
}

double rerank_score(float logit) { return 1.0 / (1.0 + std::exp(-double(logit))); }

std::vector<std::vector<float>> embeddings_of(std::vector<model::Engine::Result>& results,
                                              model::EmbeddingHead head, bool normalize) {
  std::vector<std::vector<float>> out;
  for (auto& r : results) {
    std::vector<float>& v = r.embeddings[static_cast<int>(head)];
    if (normalize) l2_normalize(v);
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<float> rerank_scores_of(const std::vector<model::Engine::Result>& results, bool raw) {
  std::vector<float> scores;
  for (const auto& r : results) scores.push_back(raw ? r.logit : float(rerank_score(r.logit)));
  return scores;
}

}  // namespace rwkv::server::service
