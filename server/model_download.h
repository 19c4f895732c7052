// The released EmbeddingRWKV checkpoints by size name (tiny, base, large),
// downloaded from a HuggingFace-compatible endpoint into a local cache and
// verified against the SHA-256 the endpoint publishes for each file.
#pragma once

#include <string>
#include <string_view>

#include "server/http_download.h"

namespace rwkv::server {

// One row of the table in docs/model.md: an embedding model and its paired reranker.
struct ReleasedModel {
  std::string_view name;  // tiny | base | large
  std::string_view embedding_file;
  std::string_view reranker_file;
};

// The row called `name`; nullptr for any other name.
const ReleasedModel* find_released_model(std::string_view name);

struct DownloadOptions {
  std::string endpoint;   // e.g. https://huggingface.co (may end in a path prefix)
  std::string cache_dir;  // files go to <cache_dir>/<repository>/<file>
  std::string token;      // Bearer token for the endpoint (never sent where it redirects to)
};

// --hf-endpoint's default: $HF_ENDPOINT, else https://huggingface.co.
std::string default_hf_endpoint();
// --model-cache-dir's default: $XDG_CACHE_HOME/rwkv-emb-server, else ~/.cache/rwkv-emb-server.
std::string default_model_cache_dir();

// The local path of `file` of the released repository: the cached copy, else
// downloaded (following redirects, with progress on stderr), its SHA-256
// checked, then moved into the cache. On any failure nothing is left in the
// cache and DownloadError says why.
std::string fetch_released_file(std::string_view file, const DownloadOptions& options);

}  // namespace rwkv::server
