// Rerank routes: Cohere /v1/rerank (also Jina), /v2/rerank, and /rerank (TEI
// or Jina shape). Text documents are scored online: one sequence per
// (document, query) pair through the embedding model, then the reranker on
// its final state. {"state_id"} documents are scored offline: the query
// alone, on a copy of the cached document state (/v1/states).
#include <cmath>
#include <map>

#include "api/rerank.h"
#include "engine/text/prompt_templates.h"
#include "engine/text/tokenizer.h"
#include "server/http_server.h"
#include "server/http_util.h"
#include "server/state_access.h"

namespace rwkv::server {
namespace {

using nlohmann::json;

// The online sequence of (document, query), EOS included. A document of more
// than `max_tokens` tokens (as the template tokenizes it: its first token may
// take the space before it) keeps its first max_tokens ids, and the rest of
// the template is tokenized apart. Cutting its text instead and encoding the
// template around it could split a UTF-8 character or tokenize the cut anew.
std::vector<int32_t> online_tokens(const std::string& document, const std::string& query,
                                   std::optional<int> max_tokens) {
  const text::Tokenizer& tokenizer = text::Tokenizer::world();
  if (max_tokens) {
    const std::string prefix = text::rerank_document_prefix();
    std::vector<int32_t> ids = tokenizer.encode(prefix + document, false);
    size_t first = 0;  // the document's first token: the first to end past the prefix
    for (size_t end = 0; first < ids.size(); ++first) {
      end += tokenizer.decode(std::span(ids).subspan(first, 1)).size();
      if (end > prefix.size()) break;
    }
    if (ids.size() - first > size_t(*max_tokens)) {
      ids.resize(first + size_t(*max_tokens));
      tokenizer.encode_into(text::rerank_online_suffix(query), ids);
      ids.push_back(text::Tokenizer::kEos);
      return ids;
    }
  }
  return tokenizer.encode(text::rerank_online_text(document, query));
}

// `route_api` is empty for the bare /rerank route, whose shape the body tells.
void rerank(ServerContext& ctx, std::optional<api::RerankApi> route_api,
            const httplib::Request& req, httplib::Response& res) {
  const json body = json_body(req);
  const api::RerankApi which = route_api ? *route_api : api::rerank_api_for_bare_route(body);
  const api::RerankRequest r = api::parse_rerank_request(body, which, ctx.request_limits());
  ctx.require_model(r.model);
  if (!ctx.engine->has_reranker())
    throw api::ApiError(400, "this server has no reranker model (start it with --reranker)",
                        "model");

  std::vector<scheduling::SequenceJob> jobs;
  int64_t tokens = 0;
  std::vector<int32_t> query_tokens;  // offline: "Query: {query}" + EOS, billed per state document
  // Every state of the request, fetched at once.
  std::map<std::string, std::shared_ptr<const states::SequenceState>> cached;
  std::vector<std::string> state_ids, wheres;
  for (size_t i = 0; i < r.documents.size(); ++i)
    if (r.documents[i].kind == api::RerankDocument::Kind::kState &&
        cached.emplace(r.documents[i].state_id, nullptr).second) {
      state_ids.push_back(r.documents[i].state_id);
      wheres.push_back("documents[" + std::to_string(i) + "]");
    }
  if (!state_ids.empty()) {
    // The query's own limit first: a request refused for it reads no state.
    query_tokens = text::Tokenizer::world().encode(text::rerank_query_text(r.query));
    if (query_tokens.size() > size_t(ctx.options.max_input_tokens))
      throw api::ApiError::too_many_tokens("the query", query_tokens.size(),
                                           ctx.options.max_input_tokens, "query");
    const auto states = load_cached_states(ctx, request_state_owner(ctx, req), state_ids, wheres);
    for (size_t k = 0; k < state_ids.size(); ++k) cached[state_ids[k]] = states[k];
  }
  for (size_t i = 0; i < r.documents.size(); ++i) {
    const api::RerankDocument& doc = r.documents[i];
    if (doc.kind == api::RerankDocument::Kind::kState) {
      scheduling::SequenceJob job;
      job.tokens = query_tokens;
      job.initial = cached.at(doc.state_id);
      job.wanted = {model::Output::kRerankLogit};
      tokens += int64_t(job.tokens.size());
      jobs.push_back(std::move(job));
      continue;
    }
    scheduling::SequenceJob job;
    job.tokens = online_tokens(doc.text, r.query, r.max_tokens_per_doc);
    if (job.tokens.size() > size_t(ctx.options.max_input_tokens))
      throw api::ApiError::too_many_tokens("documents[" + std::to_string(i) + "] with the query",
                                           job.tokens.size(), ctx.options.max_input_tokens,
                                           "documents", "set max_tokens_per_doc");
    job.wanted = {model::Output::kRerankLogit};
    tokens += int64_t(job.tokens.size());
    jobs.push_back(std::move(job));
  }
  const std::string model = r.model.empty() ? ctx.model_name() : r.model;
  respond_when_done(
      res, ctx, ctx.scheduler->submit(std::move(jobs)),
      [=](std::vector<model::Engine::Result>& results) {
        std::vector<float> scores;
        for (const auto& x : results)
          scores.push_back(r.raw_scores ? x.logit : float(model::rerank_score(x.logit)));
        return api::rerank_response(r, scores, model, tokens);
      });
}

}  // namespace

void register_rerank_routes(httplib::Server& http, ServerContext& ctx) {
  const std::pair<const char*, std::optional<api::RerankApi>> routes[] = {
      {"/v1/rerank", api::RerankApi::kCohereV1},
      {"/v2/rerank", api::RerankApi::kCohereV2},
      {"/rerank", std::nullopt}};
  for (const auto& [path, which] : routes) {
    // `which = which`: clang before 16 cannot capture a structured binding.
    add_route(http, ctx, {"POST", path, ErrorStyle::kCohere},
              [&ctx, which = which](const httplib::Request& req, httplib::Response& res) {
                rerank(ctx, which, req, res);
              });
  }
}

}  // namespace rwkv::server
