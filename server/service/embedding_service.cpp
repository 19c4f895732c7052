#include "server/service/embedding_service.h"

#include <algorithm>

#include "api/api_error.h"
#include "server/service/postprocessor.h"

namespace rwkv::server::service {

EmbedRequest embed_request(api::EmbeddingsRequest r) {
  EmbedRequest out;
  out.model = std::move(r.model);
  out.text = std::move(r.text);
  out.inputs = std::move(r.inputs);
  out.dimensions = r.dimensions;
  out.normalize = r.normalize;
  return out;
}

EmbedRequest embed_request(const api::CohereEmbedRequest& r) {
  EmbedRequest out;
  out.model = r.model;
  out.text = r.text;
  for (const std::string& text : r.texts) out.inputs.push_back({false, text, {}});
  out.param = "texts";
  if (r.max_tokens) out.max_tokens = size_t(*r.max_tokens);
  out.truncate = r.truncate;
  return out;  // output_dimension: checked by the parser; always normalized
}

Pending<Embeddings> embed(const ServedModel& served, EmbedRequest r) {
  const std::string model = served.catalog.resolve(r.model);
  if (r.dimensions && *r.dimensions != served.engine.channels())
    throw api::ApiError::bad_request(
        "dimensions must be " + std::to_string(served.engine.channels()) +
            ", the model's width (it is not trained for shorter embeddings)",
        "dimensions");
  const api::InputType type = served.catalog.input_type_for(r.text, r.model);
  const model::EmbeddingHead head = head_of(type);
  std::vector<scheduling::SequenceJob> jobs;
  int64_t tokens = 0;
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const std::string where = r.param + "[" + std::to_string(i) + "]";
    api::EmbeddingInput& in = r.inputs[i];
    scheduling::SequenceJob job;
    job.tokens =
        in.is_tokens
            ? served.preprocessor.embedding_ids(std::move(in.tokens), where, r.param)
            : served.preprocessor
                  .embedding_text(in.text, type, r.text, r.max_tokens, r.truncate, where, r.param)
                  .ids;
    job.wanted = {model::embedding_output(head)};
    tokens += int64_t(job.tokens.size());
    jobs.push_back(std::move(job));
  }
  return {served.scheduler.submit(std::move(jobs)),
          [head, normalize = r.normalize, model, tokens](std::vector<model::Engine::Result>& out) {
            return Embeddings{embeddings_of(out, head, normalize), model, tokens};
          }};
}

}  // namespace rwkv::server::service
