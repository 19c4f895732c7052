#include "server/http_download.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>

#include "server/download_progress.h"

namespace rwkv::server {
namespace {

constexpr int kMaxRedirects = 10;
constexpr int kReadTimeoutSeconds = 120;
constexpr size_t kErrorBodyBytes = 300;  // of an error page, quoted in the message

// An absolute http(s) URL split the way httplib::Client wants it.
struct Url {
  std::string origin;  // scheme://host[:port]
  std::string target;  // path and query, "/" at least
};

Url parse_url(std::string_view url) {
  const size_t scheme_end = url.find("://");
  const std::string_view scheme = url.substr(0, scheme_end);
  if (scheme_end == std::string_view::npos || (scheme != "http" && scheme != "https"))
    throw DownloadError("'" + std::string(url) + "' is not an http:// or https:// URL");
  const size_t path_start = url.find_first_of("/?", scheme_end + 3);
  Url u{std::string(url.substr(0, path_start)), "/"};
  if (path_start != std::string_view::npos) {
    u.target = url[path_start] == '?' ? "/" : "";
    u.target.append(url.substr(path_start));
  }
  if (u.origin.size() == scheme_end + 3)
    throw DownloadError("'" + std::string(url) + "' has no host");
  return u;
}

// httplib 0.11 percent-decodes every header value, Location included. Encoding
// again the bytes a URL cannot hold as they are gives back a URL with the same
// decoded query values (which is what signed CDN URLs are checked against),
// except for a value that held an encoded '&' or '+'.
std::string reencode_location(const std::string& decoded) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string url;
  for (const char c : decoded) {
    const auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7f ||
        std::string_view("\"<>\\^`{|}#%").find(c) != std::string_view::npos) {
      url += '%';
      url += kDigits[b >> 4];
      url += kDigits[b & 15];
    } else {
      url += c;
    }
  }
  return url;
}

// Where a redirect's Location points, relative to the URL that sent it.
Url follow(const Url& from, const std::string& decoded_location) {
  if (decoded_location.empty())
    throw DownloadError("redirect without a Location from " + from.origin);
  const std::string location = reencode_location(decoded_location);
  if (location.find("://") != std::string::npos) return parse_url(location);
  if (location.starts_with("//"))
    return parse_url(from.origin.substr(0, from.origin.find("://") + 1) + location);
  if (location.starts_with("/")) return {from.origin, location};
  const std::string path = from.target.substr(0, from.target.find('?'));
  return {from.origin, path.substr(0, path.rfind('/') + 1) + location};
}

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// The SHA-256 an endpoint publishes for an LFS file: X-Linked-Etag (HuggingFace
// puts it on the redirect to its CDN), else ETag; quotes and a weak mark
// removed. Empty when neither is a SHA-256 (e.g. a git blob id).
std::string published_sha256(const httplib::Response& r) {
  for (const char* header : {"X-Linked-Etag", "ETag"}) {
    std::string etag = r.get_header_value(header);
    if (etag.starts_with("W/")) etag.erase(0, 2);
    if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
      etag = etag.substr(1, etag.size() - 2);
    for (char& c : etag) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (etag.size() == 64 && etag.find_first_not_of("0123456789abcdef") == std::string::npos)
      return etag;
  }
  return "";
}

}  // namespace

std::string http_download(const std::string& url, const std::string& name,
                          const std::string& bearer_token, const BodySink& sink) {
  Url at = parse_url(url);
  const std::string endpoint_origin = at.origin;
  std::string published;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    httplib::Client client(at.origin);
    client.set_connection_timeout(30);
    client.set_read_timeout(kReadTimeoutSeconds);
    client.set_url_encode(false);  // targets are encoded already (reencode_location)
    httplib::Headers headers = {{"User-Agent", "rwkv-emb-server/" RWKV_EMB_VERSION},
                                {"Accept-Encoding", "identity"}};
    // The token is for the endpoint; a CDN it redirects to gets a signed URL instead.
    if (!bearer_token.empty() && at.origin == endpoint_origin)
      headers.emplace("Authorization", "Bearer " + bearer_token);

    int status = 0;
    std::string location, error_body;
    bool refused = false;
    std::optional<DownloadProgress> progress;
    auto on_response = [&](const httplib::Response& r) {
      status = r.status;
      if (published.empty()) published = published_sha256(r);
      location = r.get_header_value("Location");
      if (status == 200)
        progress.emplace(name,
                         std::strtoull(r.get_header_value("Content-Length").c_str(), nullptr, 10));
      return true;
    };
    auto on_data = [&](const char* data, size_t n) {
      if (status != 200) {  // a redirect's or an error's body: keep the start for the message
        error_body.append(
            data, std::min(n, kErrorBodyBytes - std::min(kErrorBodyBytes, error_body.size())));
        return true;
      }
      if (!sink({data, n})) {
        refused = true;
        return false;
      }
      progress->advance(n);
      return true;
    };
    const httplib::Result result = client.Get(at.target, headers, on_response, on_data);
    if (refused) throw DownloadError("cannot store the download of " + name);
    if (!result)
      throw DownloadError(at.origin + ": " + httplib::to_string(result.error()) +
                          " error while downloading " + name);
    if (is_redirect(status)) {
      at = follow(at, location);
      continue;
    }
    if (status != 200) {
      std::string why = "HTTP " + std::to_string(status) + " for " + at.origin + at.target;
      if (status == 401 || status == 403) why += " (a private or gated repository needs HF_TOKEN)";
      if (!error_body.empty()) why += ": " + error_body;
      throw DownloadError(why);
    }
    progress->finish();
    return published;
  }
  throw DownloadError("more than " + std::to_string(kMaxRedirects) + " redirects for " + url);
}

}  // namespace rwkv::server
