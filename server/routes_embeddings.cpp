// Embedding routes: OpenAI /v1/embeddings and Cohere /v1/embed, /v2/embed.
#include "api/cohere_embed.h"
#include "api/openai_embeddings.h"
#include "server/http_server.h"
#include "server/http_util.h"
#include "server/inputs.h"

namespace rwkv::server {
namespace {

using nlohmann::json;

void check_dimensions(const ServerContext& ctx, std::optional<int> dims, const char* param) {
  if (dims && *dims != ctx.engine->channels())
    throw api::ApiError::bad_request(
        std::string(param) + " must be " + std::to_string(ctx.engine->channels()) +
            ", the model's width (it is not trained for shorter embeddings)",
        param);
}

scheduling::SequenceJob embedding_job(std::vector<int32_t> tokens, model::EmbeddingHead head) {
  scheduling::SequenceJob job;
  job.tokens = std::move(tokens);
  job.wanted = {model::embedding_output(head)};
  return job;
}

// The wanted head's vector of each result, L2-normalized when asked.
std::vector<std::vector<float>> vectors_of(std::vector<model::Engine::Result>& results,
                                           model::EmbeddingHead head, bool normalize) {
  std::vector<std::vector<float>> out;
  for (auto& r : results) {
    std::vector<float>& v = r.embeddings[static_cast<int>(head)];
    if (normalize) model::l2_normalize(v);
    out.push_back(std::move(v));
  }
  return out;
}

// Usage counts the tokens the model runs (instruction, repeats and EOS
// tokens of the input protocol included): that is the work, as on the
// rerank and states routes.
void openai_embeddings(ServerContext& ctx, const httplib::Request& req, httplib::Response& res) {
  api::EmbeddingsRequest r = api::parse_embeddings_request(json_body(req), ctx.request_limits());
  ctx.require_model(r.model);
  check_dimensions(ctx, r.dimensions, "dimensions");
  const api::InputType type = ctx.input_type_for(r.text, r.model);
  const model::EmbeddingHead head = head_of(type);
  std::vector<scheduling::SequenceJob> jobs;
  int64_t tokens = 0;
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const std::string where = "input[" + std::to_string(i) + "]";
    auto& in = r.inputs[i];
    jobs.push_back(embedding_job(
        in.is_tokens ? embedding_tokens(std::move(in.tokens), where, "input")
                     : ctx.inputs
                           .prepare(in.text, type, r.text, size_t(ctx.options.max_input_tokens),
                                    api::Truncate::kNone, where, "input")
                           .ids,
        head));
    tokens += int64_t(jobs.back().tokens.size());
  }
  const std::string model = r.model.empty() ? ctx.model_name() : r.model;
  respond_when_done(res, ctx, ctx.scheduler->submit(std::move(jobs)),
                    [=](std::vector<model::Engine::Result>& results) {
                      return api::embeddings_response(vectors_of(results, head, r.normalize),
                                                      r.base64, model, tokens);
                    });
}

void cohere_embed(ServerContext& ctx, int version, const httplib::Request& req,
                  httplib::Response& res) {
  api::CohereEmbedRequest r = api::parse_cohere_embed_request(
      json_body(req), version, ctx.engine->channels(), ctx.request_limits());
  ctx.require_model(r.model);
  const api::InputType type = ctx.input_type_for(r.text, r.model);
  const model::EmbeddingHead head = head_of(type);
  size_t max_tokens = ctx.options.max_input_tokens;
  if (r.max_tokens) max_tokens = std::min(max_tokens, size_t(*r.max_tokens));
  std::vector<scheduling::SequenceJob> jobs;
  int64_t tokens = 0;
  for (size_t i = 0; i < r.texts.size(); ++i) {
    jobs.push_back(embedding_job(ctx.inputs
                                     .prepare(r.texts[i], type, r.text, max_tokens, r.truncate,
                                              "texts[" + std::to_string(i) + "]", "texts")
                                     .ids,
                                 head));
    tokens += int64_t(jobs.back().tokens.size());
  }
  respond_when_done(res, ctx, ctx.scheduler->submit(std::move(jobs)),
                    [=](std::vector<model::Engine::Result>& results) {
                      return api::cohere_embed_response(r, vectors_of(results, head, true), tokens);
                    });
}

}  // namespace

void register_embedding_routes(httplib::Server& http, ServerContext& ctx) {
  auto openai = [&ctx](const httplib::Request& req, httplib::Response& res) {
    openai_embeddings(ctx, req, res);
  };
  add_route(http, ctx, {"POST", "/v1/embeddings"}, openai);
  add_route(http, ctx, {"POST", "/embeddings"}, openai);
  for (int version : {1, 2}) {
    add_route(http, ctx, {"POST", "/v" + std::to_string(version) + "/embed", ErrorStyle::kCohere},
              [&ctx, version](const httplib::Request& req, httplib::Response& res) {
                cohere_embed(ctx, version, req, res);
              });
  }
}

}  // namespace rwkv::server
