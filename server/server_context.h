// What the routes share: options, the model and its scheduler, metrics.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/engine.h"
#include "engine/scheduling/scheduler.h"
#include "engine/states/decoded_state_cache.h"
#include "engine/states/state_blob.h"
#include "engine/states/state_store.h"
#include "server/inputs.h"
#include "server/metrics.h"
#include "server/route_table.h"

namespace rwkv::server {

// 1/16 of the memory this process may use: the machine's, or its cgroup's
// limit (a container's) when lower.
uint64_t default_state_cache_bytes();

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string model_path;            // empty: the random demo model; tiny|base|large: released
  std::string reranker_path;         // empty: no reranker (demo: a random one)
  std::string model_cache_dir;       // where released checkpoints are downloaded to
  std::string hf_endpoint;           // where they are downloaded from
  std::string demo_shape = "small";  // random model without --model: small | 0.1b (benchmarks)
  std::vector<std::string> served_model_names;  // first is the canonical name
  std::string device = "cpu";
  std::string dtype;  // "" (the device's default) | auto | float32 | float16 | bfloat16 | int8
  bool cuda_graphs = false;        // replay repeated step shapes as CUDA graphs
  int wkv_chunked_min_tokens = 0;  // chunked WKV for sequences this long; 0: never
  int threads = 0;
  model::EngineOptions engine;
  scheduling::SchedulerOptions scheduler;
  // A text's own tokens or a token-id input's ids, before truncation.
  int max_input_tokens = static_cast<int>(api::RequestLimits{}.max_input_tokens);
  size_t max_body_bytes = 16 << 20;
  size_t max_inputs = api::RequestLimits{}.max_inputs;  // texts or documents per request
  std::string eos_protocol = "chunked";                 // of text embeddings: chunked | single
  // Default instruction description per input type (api::InputType order); "" = none.
  std::array<std::string, api::kAllInputTypes.size()> instructions;
  // NAME=INPUT_TYPE: model names that imply an input type; empty: <model>-query=search_query.
  std::vector<std::string> input_type_models;
  int http_threads = 128;
  int read_timeout_seconds = 10;
  double heartbeat_seconds = 0;  // computing longer: 200 at once, then spaces; 0: never
  std::vector<std::string> api_keys;
  std::string log_format = "text";   // text | json
  states::StateStoreOptions states;  // /v1/states backend
  // How new states are stored: float32 | float16 | bfloat16 | int8.
  std::string state_dtype = "float32";
  uint64_t state_cache_bytes = default_state_cache_bytes();  // decoded states; 0: no cache
};

struct ServerContext {
  ServerOptions options;
  std::unique_ptr<model::Engine> engine;
  std::unique_ptr<scheduling::Scheduler> scheduler;
  Metrics metrics;
  std::unique_ptr<states::StateStore> states;              // cached document states (/v1/states)
  std::unique_ptr<states::DecodedStateCache> state_cache;  // decoded states in front of `states`
  io::ModelFingerprint fingerprint;  // of the embedding model, in every state blob
  states::StateDtype state_dtype = states::StateDtype::kFloat32;
  bool demo_model = false;
  std::atomic<bool> ready{false};     // /health says 200
  std::atomic<bool> draining{false};  // shutting down: new work gets 503
  std::atomic<int> in_flight{0};      // HTTP requests not yet fully answered
  RouteTable routes;                  // what is served where (add_route fills it)
  InputPreprocessor inputs;           // text -> token ids, with the protocol flags
  // Served model aliases that imply an input type (--input-type-model).
  std::vector<std::pair<std::string, api::InputType>> typed_models;

  const std::string& model_name() const { return options.served_model_names.front(); }
  // True when `name` is empty (clients may omit it), a served name or a typed alias.
  bool serves(const std::string& name) const;
  // Throws the 404 (model_not_found) of a request naming a model this server does not serve.
  void require_model(const std::string& name) const;
  // The input type of a text request: its own field, else its model alias's,
  // else search_document.
  api::InputType input_type_for(const api::TextOptions& text, const std::string& model) const;
  // The per-request limits of the parsers, from the flags.
  api::RequestLimits request_limits() const;
};

}  // namespace rwkv::server
