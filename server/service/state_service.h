// Cached document states (/v1/states, docs/model.md "Offline mode"): computing
// the state of each document's offline template and storing it, uploads,
// reads, deletes, and the states a rerank request uses. States belong to the
// API key that created them (`owner`, RequestContext::owner); another owner's
// state looks exactly like a missing one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/states_request.h"
#include "server/service/pending.h"
#include "server/service/served_model.h"

namespace rwkv::server::service {

struct CreatedState {
  std::string id;
  size_t tokens = 0;
  size_t bytes = 0;
};

struct CreatedStates {
  std::vector<CreatedState> states;  // in request order
  std::string model;                 // the name to report
  int64_t tokens = 0;
};

// Computes and stores every document's state, all or nothing. ApiError before
// anything is queued: 404 model, 413 too many documents or tokens, 409 a
// client id that exists; StateStoreUnavailable when the store does not
// answer. After computing, storing may still fail (409 an id taken
// meanwhile, the store's 507 and 503).
Pending<CreatedStates> create_states(const ServedModel& served, const StateStorage& storage,
                                     const api::CreateStatesRequest& request,
                                     const std::string& owner);

// Stores an uploaded blob as `id` (replacing one), after checking that the
// served model can use it (StateBlobError otherwise). The stored record's
// metadata, and whether it replaced one.
struct UploadedState {
  states::StateMeta meta;
  bool replaced = false;
};
UploadedState upload_state(const ServedModel& served, const StateStorage& storage,
                           const std::string& owner, const std::string& id, std::string_view blob,
                           std::optional<int64_t> ttl_seconds);

// The blob of `id`, converted to `dtype` when given; 404 when missing, 422
// when a damaged one cannot be converted.
std::string state_content(const StateStorage& storage, const std::string& owner,
                          const std::string& id, std::optional<states::StateDtype> dtype);

// One page of the owner's states, in id order after `after`.
states::StateListPage list_states(const StateStorage& storage, const std::string& owner,
                                  const std::string& after, size_t limit);
// 404 when missing.
states::StateMeta state_meta(const StateStorage& storage, const std::string& owner,
                             const std::string& id);
void delete_state(const StateStorage& storage, const std::string& owner, const std::string& id);

// True when the served model can use a state of this record's model and shape.
bool compatible(const ServedModel& served, const StateStorage& storage,
                const states::StateBlobInfo& info);

// The owner's states `ids` (distinct), decoded to float32 for the served
// model, in order: from the cache when it holds the stored record (one
// metadata read for all, stat_many), the others fetched together (get_many);
// the bytes fetched are logged and reported (storage.on_fetch). ApiError: 400
// for an invalid id, 404 when one does not exist for this owner, 409 when
// another model computed it, 422 when its shape is not the model's or its
// values are unusable. `wheres[i]` names the request field of ids[i] in
// messages (e.g. "documents[3]").
std::vector<std::shared_ptr<const states::SequenceState>> load_states(
    const ServedModel& served, const StateStorage& storage, const std::string& owner,
    const std::vector<std::string>& ids, const std::vector<std::string>& wheres);

}  // namespace rwkv::server::service
