// What the services make of the engine's raw outputs: normalized embeddings
// and rerank scores (for the server and the command-line tools alike). (The wire encodings, base64
// and Cohere's quantized types, belong to each API's renderer in api/.)
#pragma once

#include <vector>

#include "engine/model/engine.h"

namespace rwkv::server::service {

// L2-normalizes v in place (a zero vector stays zero).
void l2_normalize(std::vector<float>& v);

// The reranker's relevance score in (0, 1): the sigmoid of its logit.
double rerank_score(float logit);

// The `head` vector of each result, L2-normalized when asked.
std::vector<std::vector<float>> embeddings_of(std::vector<model::Engine::Result>& results,
                                              model::EmbeddingHead head, bool normalize);

// The relevance score of each result: sigmoid of the logit, or the logit itself when `raw`.
std::vector<float> rerank_scores_of(const std::vector<model::Engine::Result>& results, bool raw);

}  // namespace rwkv::server::service
