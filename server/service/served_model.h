// What the services work with, owned by the server (server/server_context.h):
// the served model and its queue, the names it answers to, how inputs become
// token sequences, and the cached document states.
#pragma once

#include <cstdint>
#include <functional>

#include "engine/io/fingerprint.h"
#include "engine/model/engine.h"
#include "engine/scheduling/scheduler.h"
#include "engine/states/decoded_state_cache.h"
#include "engine/states/state_blob.h"
#include "engine/states/state_store.h"
#include "server/service/model_catalog.h"
#include "server/service/preprocessor.h"

namespace rwkv::server::service {

struct ServedModel {
  const ModelCatalog& catalog;
  const Preprocessor& preprocessor;
  const model::Engine& engine;
  scheduling::Scheduler& scheduler;
};

struct StateStorage {
  states::StateStore& store;
  states::DecodedStateCache& cache;              // decoded states in front of `store`
  const io::ModelFingerprint& fingerprint;       // of the embedding model, in every blob
  states::StateDtype dtype;                      // of new states (--state-dtype)
  std::function<void(uint64_t bytes)> on_fetch;  // bytes read from the store per request
};

}  // namespace rwkv::server::service
