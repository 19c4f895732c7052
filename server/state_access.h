// Cached document states as the routes use them (routes_states.cpp): whose
// they are, and a stored state decoded for the served model.
#pragma once

#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/model/engine.h"
#include "server/server_context.h"

namespace rwkv::server {

// The owner of the states this request may create and use (auth.h state_owner).
std::string request_state_owner(const ServerContext& ctx, const httplib::Request& req);

// The owner's states `ids` (distinct), decoded to float32 for the served
// model, in order: from ctx.state_cache when it holds the stored record (one
// metadata read for all, stat_many), the others fetched together (get_many);
// the bytes fetched are logged and counted (rwkv_emb_state_fetch_bytes).
// ApiError: 400 for an invalid id, 404 when one does not exist for this owner
// (another owner's state looks exactly the same), 409 when another model
// computed it, 422 when its shape is not the model's or its values are
// unusable. `wheres[i]` names the request field of ids[i] in messages
// (e.g. "documents[3]").
std::vector<std::shared_ptr<const states::SequenceState>> load_cached_states(
    ServerContext& ctx, const std::string& owner, const std::vector<std::string>& ids,
    const std::vector<std::string>& wheres);

}  // namespace rwkv::server
