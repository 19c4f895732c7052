// The OpenAPI description (api/openapi.yaml, converted to JSON at build time
// and embedded in the binary).
#pragma once

#include <string_view>

namespace rwkv::server {

std::string_view openapi_json();

}  // namespace rwkv::server
