// Cached document states as the routes use them (routes_states.cpp): whose
// they are, and a stored state decoded for the served model.
#pragma once

#include <httplib.h>

#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/server_context.h"

namespace rwkv::server {

// The owner of the states this request may create and use (auth.h state_owner).
std::string request_state_owner(const ServerContext& ctx, const httplib::Request& req);

// The owner's state `id`, decoded to float32 for the served model. ApiError:
// 400 for an invalid id, 404 when it does not exist for this owner (another
// owner's state looks exactly the same), 409 when another model computed it,
// 422 when its shape is not the model's or its values are unusable.
// `where` names the request field in messages (e.g. "documents[3]").
std::shared_ptr<const SequenceState> load_cached_state(ServerContext& ctx, const std::string& owner,
                                                       const std::string& id,
                                                       const std::string& where);

}  // namespace rwkv::server
