// What the routes share: options, the model and its scheduler, the services'
// inputs (model names, preprocessor, state storage), metrics.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "engine/model/engine.h"
#include "engine/scheduling/scheduler.h"
#include "engine/states/decoded_state_cache.h"
#include "engine/states/state_store.h"
#include "server/metrics.h"
#include "server/server_options.h"
#include "server/service/model_catalog.h"
#include "server/service/preprocessor.h"
#include "server/service/served_model.h"

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
  std::atomic<bool> ready{false};  // /health says 200
  service::ModelCatalog catalog;   // the names requests may give
  service::Preprocessor preprocessor;

  // What the services work with (valid once the engine and the stores exist).
  service::ServedModel served() const { return {catalog, preprocessor, *engine, *scheduler}; }
  service::StateStorage storage();
};

}  // namespace rwkv::server
