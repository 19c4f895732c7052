#include "server/server_context.h"

#include <algorithm>

namespace rwkv::server {

bool ServerContext::serves(const std::string& name) const {
  return name.empty() ||
         std::find(options.served_model_names.begin(), options.served_model_names.end(), name) !=
             options.served_model_names.end();
}

}  // namespace rwkv::server
