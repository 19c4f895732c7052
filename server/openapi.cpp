#include "server/openapi.h"

extern "C" const char rwkv_openapi_blob_begin[];
extern "C" const char rwkv_openapi_blob_end[];
extern "C" const char rwkv_swagger_ui_js_blob_begin[];
extern "C" const char rwkv_swagger_ui_js_blob_end[];
extern "C" const char rwkv_swagger_ui_css_blob_begin[];
extern "C" const char rwkv_swagger_ui_css_blob_end[];

namespace rwkv::server {
namespace {

std::string_view blob(const char* begin, const char* end) { return {begin, size_t(end - begin)}; }

}  // namespace

std::string_view openapi_json() { return blob(rwkv_openapi_blob_begin, rwkv_openapi_blob_end); }

std::string_view swagger_ui_bundle_js() {
  return blob(rwkv_swagger_ui_js_blob_begin, rwkv_swagger_ui_js_blob_end);
}

std::string_view swagger_ui_css() {
  return blob(rwkv_swagger_ui_css_blob_begin, rwkv_swagger_ui_css_blob_end);
}

}  // namespace rwkv::server
