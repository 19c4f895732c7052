// The API's documentation embedded in the binary: the OpenAPI description
// (api/openapi.yaml, converted to JSON at build time) and the Swagger UI
// files that render it at /docs (scripts/fetch-swagger-ui.sh).
#pragma once

#include <string_view>

namespace rwkv::server {

std::string_view openapi_json();
std::string_view swagger_ui_bundle_js();
std::string_view swagger_ui_css();

}  // namespace rwkv::server
