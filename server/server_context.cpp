#include "server/server_context.h"

namespace rwkv::server {

service::StateStorage ServerContext::storage() {
  return {*states, *state_cache, fingerprint, options.state_dtype,
          [this](uint64_t bytes) { metrics.observe_state_fetch(bytes); }};
}

}  // namespace rwkv::server
