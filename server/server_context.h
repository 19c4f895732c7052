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
#include "server/server_options.h"

namespace rwkv::server {

struct ServerContext {
  ServerOptions options;
  std::unique_ptr<model::Engine> engine;
  std::unique_ptr<scheduling::Scheduler> scheduler;
  Metrics metrics;
  std::unique_ptr<states::StateStore> states;              // cached document states (/v1/states)
  std::unique_ptr<states::DecodedStateCache> state_cache;  // decoded states in front of `states`
  io::ModelFingerprint fingerprint;  // of the embedding model, in every state blob
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
