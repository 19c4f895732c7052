#include "server/openapi.h"

extern "C" const char rwkv_openapi_blob_begin[];
extern "C" const char rwkv_openapi_blob_end[];

namespace rwkv::server {

std::string_view openapi_json() {
  return {rwkv_openapi_blob_begin, size_t(rwkv_openapi_blob_end - rwkv_openapi_blob_begin)};
}

}  // namespace rwkv::server
