// Embeddings: inputs -> the preprocessor's token sequences -> the scheduler
// -> one vector per input of the head its input type asks for.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/cohere_embed.h"
#include "api/openai_embeddings.h"
#include "server/service/pending.h"
#include "server/service/served_model.h"

namespace rwkv::server::service {

struct EmbedRequest {
  std::string model;  // "" when absent
  api::TextOptions text;
  std::vector<api::EmbeddingInput> inputs;
  std::string param = "input";   // the request field of the inputs, for messages
  size_t max_tokens = SIZE_MAX;  // per text, within --max-input-tokens
  api::Truncate truncate = api::Truncate::kNone;
  std::optional<int> dimensions;  // when given: must be the model's width
  bool normalize = true;
};

struct Embeddings {
  std::vector<std::vector<float>> vectors;  // one per input, in order
  std::string model;                        // the name to report
  // The tokens the model ran (instruction, repeats and EOS tokens of the
  // input protocol included): that is the work, as on rerank and states.
  int64_t tokens = 0;
};

EmbedRequest embed_request(api::EmbeddingsRequest r);          // OpenAI
EmbedRequest embed_request(const api::CohereEmbedRequest& r);  // Cohere v1/v2

// Throws ApiError (404 model, 400 dimensions or an input, 413 tokens) before
// anything is queued; scheduling::QueueFull when the queue is full.
Pending<Embeddings> embed(const ServedModel& served, EmbedRequest request);

}  // namespace rwkv::server::service
