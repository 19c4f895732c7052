#include "server/service/state_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "api/request_id.h"

namespace rwkv::server::service {
namespace {

// Every computed state is held in memory until its request ends: at most this
// much per request (220 states of the 0.1B model).
constexpr uint64_t kMaxStateBytesPerRequest = uint64_t(512) << 20;

int64_t expiry_ms(std::optional<int64_t> ttl_seconds) {
  return ttl_seconds ? states::unix_now_ms() + *ttl_seconds * 1000 : 0;
}

api::ApiError missing_state(const std::string& id) {
  return api::ApiError::not_found("no state with id '" + id + "'", "id");
}

struct NewState {
  std::string id;
  bool client_id = false;
  std::vector<int32_t> tokens;
};

// Stores the computed states, all or nothing.
CreatedStates store_states(const ServedModel& served, const StateStorage& storage,
                           const std::vector<NewState>& created,
                           std::vector<model::Engine::Result>& results, const std::string& owner,
                           states::StateDtype dtype, int64_t expires) {
  const states::StateShape shape = served.engine.state_shape();
  const int64_t now = states::unix_now_ms();
  CreatedStates out;
  try {
    for (size_t i = 0; i < created.size(); ++i) {
      auto blob = std::make_shared<const std::string>(states::encode_state(
          results[i].state, storage.fingerprint, shape, dtype, created[i].tokens.size()));
      states::StateMeta meta;
      meta.owner = owner;
      meta.id = created[i].id;
      meta.created_ms = now;
      meta.expires_ms = expires;
      if (!storage.store.put(meta, blob, false))
        throw api::ApiError(409, "a state with id '" + created[i].id + "' was created meanwhile",
                            "documents", "state_exists");
      out.states.push_back({created[i].id, created[i].tokens.size(), blob->size()});
    }
  } catch (...) {
    for (const CreatedState& s : out.states) {
      try {
        storage.store.erase(owner, s.id);
      } catch (...) {
      }
    }
    throw;
  }
  return out;
}

}  // namespace

Pending<CreatedStates> create_states(const ServedModel& served, const StateStorage& storage,
                                     const api::CreateStatesRequest& request,
                                     const std::string& owner) {
  const std::string model = served.catalog.resolve(request.model);
  const states::StateDtype dtype = request.dtype.value_or(storage.dtype);
  const uint64_t state_bytes =
      states::state_blob_size(served.engine.state_shape(), states::StateDtype::kFloat32);
  const size_t max_states = size_t(std::max<uint64_t>(1, kMaxStateBytesPerRequest / state_bytes));
  if (request.documents.size() > max_states)
    throw api::ApiError::payload_too_large(
        "at most " + std::to_string(max_states) +
            " documents per request for this model (each state takes " +
            std::to_string(state_bytes) + " bytes); split the request",
        "documents");
  std::vector<NewState> created;
  for (size_t i = 0; i < request.documents.size(); ++i) {
    const api::StateDocument& document = request.documents[i];
    created.push_back({document.id, !document.id.empty(),
                       served.preprocessor.state_document(document.text,
                                                          "documents[" + std::to_string(i) + "]")});
  }
  // Before computing anything: the store answers, and client ids are free.
  storage.store.check_available();
  for (const NewState& s : created)
    if (s.client_id && storage.store.stat(owner, s.id))
      throw api::ApiError(409,
                          "a state with id '" + s.id +
                              "' already exists; DELETE it first, or PUT /v1/states/" + s.id +
                              " to replace it",
                          "documents", "state_exists");
  for (NewState& s : created)
    if (!s.client_id) s.id = "state-" + api::random_uuid();

  std::vector<scheduling::SequenceJob> jobs;
  int64_t tokens = 0;
  for (const NewState& s : created) {
    scheduling::SequenceJob job;
    job.tokens = s.tokens;
    job.wanted = {model::Output::kFinalState};
    tokens += int64_t(s.tokens.size());
    jobs.push_back(std::move(job));
  }
  const int64_t expires = expiry_ms(request.ttl_seconds);
  return {served.scheduler.submit(std::move(jobs)),
          [served, storage, created = std::move(created), owner, dtype, expires, model,
           tokens](std::vector<model::Engine::Result>& results) {
            CreatedStates out =
                store_states(served, storage, created, results, owner, dtype, expires);
            out.model = model;
            out.tokens = tokens;
            return out;
          }};
}

UploadedState upload_state(const ServedModel& served, const StateStorage& storage,
                           const std::string& owner, const std::string& id, std::string_view blob,
                           std::optional<int64_t> ttl_seconds) {
  // A blob the server cannot use: 400, 422 or 409 by its kind (server/error_table.h).
  states::decode_state(blob, storage.fingerprint, served.engine.state_shape());
  UploadedState out;
  out.replaced = storage.store.stat(owner, id).has_value();
  out.meta.owner = owner;
  out.meta.id = id;
  out.meta.created_ms = states::unix_now_ms();
  out.meta.expires_ms = expiry_ms(ttl_seconds);
  auto stored = std::make_shared<const std::string>(blob);
  storage.store.put(out.meta, stored, true);
  storage.cache.erase(owner, id);  // frees it now; a stale entry is never used anyway
  out.meta.info = states::inspect_state_blob(*stored);
  return out;
}

std::string state_content(const StateStorage& storage, const std::string& owner,
                          const std::string& id, std::optional<states::StateDtype> dtype) {
  const auto stored = storage.store.get(owner, id);
  if (!stored) throw missing_state(id);
  if (!dtype || *dtype == stored->meta.info.dtype) return *stored->blob;
  try {
    return states::convert_state_blob(*stored->blob, *dtype);
  } catch (const states::StateBlobError& e) {  // a damaged file
    throw api::ApiError::unprocessable("state '" + id + "' cannot be converted: " + e.what());
  }
}

states::StateListPage list_states(const StateStorage& storage, const std::string& owner,
                                  const std::string& after, size_t limit) {
  return storage.store.list(owner, after, limit);
}

states::StateMeta state_meta(const StateStorage& storage, const std::string& owner,
                             const std::string& id) {
  const auto meta = storage.store.stat(owner, id);
  if (!meta) throw missing_state(id);
  return *meta;
}

void delete_state(const StateStorage& storage, const std::string& owner, const std::string& id) {
  storage.cache.erase(owner, id);
  if (!storage.store.erase(owner, id)) throw missing_state(id);
}

bool compatible(const ServedModel& served, const StateStorage& storage,
                const states::StateBlobInfo& info) {
  return info.fingerprint == storage.fingerprint && info.shape == served.engine.state_shape();
}

std::vector<std::shared_ptr<const states::SequenceState>> load_states(
    const ServedModel& served, const StateStorage& storage, const std::string& owner,
    const std::vector<std::string>& ids, const std::vector<std::string>& wheres) {
  for (const std::string& id : ids)
    if (!states::valid_state_id(id)) throw api::invalid_state_id(id, "documents");
  // One metadata read tells the cache's entries from overwritten states.
  const std::vector<std::optional<states::StateMeta>> metas = storage.store.stat_many(owner, ids);
  std::vector<std::shared_ptr<const states::SequenceState>> out(ids.size());
  std::vector<size_t> missing;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (metas[i])
      out[i] = storage.cache.find(owner, ids[i], metas[i]->write_id);
    else
      storage.cache.erase(owner, ids[i]);  // deleted or expired: free its entry
    if (!out[i]) missing.push_back(i);     // fetched: a missing one counts as the store's miss
  }
  if (missing.empty()) return out;
  std::vector<std::string> fetch;
  for (size_t i : missing) fetch.push_back(ids[i]);
  const std::vector<std::optional<states::StoredState>> stored =
      storage.store.get_many(owner, fetch);
  uint64_t bytes = 0;
  for (size_t k = 0; k < missing.size(); ++k) {
    const size_t i = missing[k];
    if (!stored[k])
      throw api::ApiError::not_found(wheres[i] + ": unknown state_id '" + ids[i] + "'",
                                     "documents");
    bytes += stored[k]->blob->size();
    try {
      out[i] = std::make_shared<const states::SequenceState>(
          states::decode_state(*stored[k]->blob, storage.fingerprint, served.engine.state_shape()));
    } catch (const states::StateBlobError& e) {
      const std::string message =
          wheres[i] + ": state '" + ids[i] + "' cannot be used: " + e.what();
      if (e.kind() == states::StateBlobError::Kind::kModel)
        throw api::ApiError(409, message, "documents", "state_model_mismatch");
      throw api::ApiError::unprocessable(message, "documents");
    }
    storage.cache.insert(owner, ids[i], stored[k]->meta.write_id, out[i]);
  }
  if (storage.on_fetch) storage.on_fetch(bytes);
  spdlog::info("rerank: {} of {} states fetched from the {} store, {} bytes", missing.size(),
               ids.size(), storage.store.kind(), bytes);
  return out;
}

}  // namespace rwkv::server::service
