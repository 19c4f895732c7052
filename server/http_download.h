// GET of an http(s) URL that follows redirects (to other hosts too: a hub
// sends large files from its CDN) and streams the body, with progress on stderr.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace rwkv::server {

struct DownloadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Receives the body piece by piece; false aborts the download.
using BodySink = std::function<bool(std::string_view piece)>;

// Streams the body of the final 200 response into `sink`, showing progress
// under `name`. `bearer_token`, when not empty, goes to the origin of `url`
// only, never to a host it redirects to. Returns the SHA-256 the server
// published for the body: X-Linked-Etag, else ETag, of the first response that
// carries one (HuggingFace sends it with its redirect to the CDN); empty when
// none is a SHA-256. Throws DownloadError on a network error, an HTTP error or
// a refused piece.
std::string http_download(const std::string& url, const std::string& name,
                          const std::string& bearer_token, const BodySink& sink);

}  // namespace rwkv::server
