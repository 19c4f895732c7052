#include "server/model_download.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>

#include "engine/sha256.h"
#include "server/download_progress.h"

namespace rwkv::server {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kRepository = "howard-hou/EmbeddingRWKV";
constexpr std::string_view kRevision = "main";
constexpr int kMaxRedirects = 10;
constexpr int kReadTimeoutSeconds = 120;
constexpr size_t kErrorBodyBytes = 300;  // of an error page, quoted in the message
// A download's file unwritten for longer than the read timeout belongs to a
// process that was killed (a live one would have given up by then).
constexpr auto kAbandonedAfter = std::chrono::minutes(10);

constexpr std::array<ReleasedModel, 3> kReleased = {{
    {"tiny", "rwkv0b1-emb-curriculum.pth", "rwkv0b1-reranker.pth"},
    {"base", "rwkv0b4-emb-curriculum.pth", "rwkv0b3-reranker.pth"},
    {"large", "rwkv1b4-emb-curriculum.pth", "rwkv1b3-reranker.pth"},
}};

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
    u.target = url.substr(path_start);
    if (u.target.front() == '?') u.target.insert(0, "/");
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

// A download in progress next to its destination, removed unless moved into place.
class PartialFile {
 public:
  explicit PartialFile(const fs::path& destination) {
    std::string name =
        (destination.parent_path() / ("." + destination.filename().string() + ".part-XXXXXX"))
            .string();
    const int fd = mkstemp(name.data());
    if (fd < 0)
      throw DownloadError("cannot create a file in " + destination.parent_path().string() + ": " +
                          std::strerror(errno));
    path_ = name;
    file_ = fdopen(fd, "wb");
  }
  ~PartialFile() {
    if (file_ != nullptr) std::fclose(file_);
    if (!path_.empty()) fs::remove(path_);
  }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  bool write(const char* data, size_t n) { return std::fwrite(data, 1, n, file_) == n; }
  // Makes the bytes durable, then renames the file to `destination`.
  void commit(const fs::path& destination) {
    const bool flushed = std::fflush(file_) == 0 && fsync(fileno(file_)) == 0;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!flushed || !closed) throw DownloadError("cannot write " + path_.string());
    fs::rename(path_, destination);
    path_.clear();
  }

 private:
  fs::path path_;
  std::FILE* file_ = nullptr;
};

// Removes the files of downloads of `destination` that were abandoned.
void remove_abandoned_parts(const fs::path& destination) {
  const std::string prefix = "." + destination.filename().string() + ".part-";
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(destination.parent_path(), ec)) {
    if (!entry.path().filename().string().starts_with(prefix)) continue;
    const auto written = entry.last_write_time(ec);
    if (!ec && fs::file_time_type::clock::now() - written > kAbandonedAfter) {
      spdlog::info("removing {}, an abandoned download", entry.path().string());
      fs::remove(entry.path(), ec);
    }
  }
}

// Streams `url` into `out`, following redirects, hashing as it goes. Returns
// the published SHA-256 and the one computed.
std::pair<std::string, std::string> download(const std::string& url, const std::string& name,
                                             const std::string& token, PartialFile& out) {
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
    if (!token.empty() && at.origin == endpoint_origin)
      headers.emplace("Authorization", "Bearer " + token);

    int status = 0;
    std::string location, error_body;
    bool write_failed = false;
    Sha256 hash;
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
      if (!out.write(data, n)) {
        write_failed = true;
        return false;
      }
      hash.update({data, n});
      progress->advance(n);
      return true;
    };
    const httplib::Result result = client.Get(at.target, headers, on_response, on_data);
    if (write_failed) throw DownloadError("cannot write the download of " + name + " (disk full?)");
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
    const Sha256Digest digest = hash.finish();
    progress->finish();
    return {published, to_hex(digest.data(), digest.size())};
  }
  throw DownloadError("more than " + std::to_string(kMaxRedirects) + " redirects for " + url);
}

std::string env_or(const char* name, std::string fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

}  // namespace

const ReleasedModel* find_released_model(std::string_view name) {
  for (const ReleasedModel& m : kReleased)
    if (m.name == name) return &m;
  return nullptr;
}

std::string default_hf_endpoint() { return env_or("HF_ENDPOINT", "https://huggingface.co"); }

std::string default_model_cache_dir() {
  const std::string xdg = env_or("XDG_CACHE_HOME", "");
  if (!xdg.empty()) return (fs::path(xdg) / "rwkv-emb-server").string();
  return (fs::path(env_or("HOME", ".")) / ".cache" / "rwkv-emb-server").string();
}

std::string fetch_released_file(std::string_view file, const DownloadOptions& options) {
  const fs::path destination = fs::path(options.cache_dir) / kRepository / file;
  if (fs::exists(destination)) {
    spdlog::info("{}: cached at {}", file, destination.string());
    return destination.string();
  }
  std::string endpoint = options.endpoint;
  while (endpoint.ends_with('/')) endpoint.pop_back();
  const std::string url = endpoint + "/" + std::string(kRepository) + "/resolve/" +
                          std::string(kRevision) + "/" + std::string(file);
  std::error_code ec;
  fs::create_directories(destination.parent_path(), ec);
  if (ec)
    throw DownloadError("cannot create the model cache " + destination.parent_path().string() +
                        ": " + ec.message());
  spdlog::info("{}: fetching {}", file, url);
  remove_abandoned_parts(destination);
  PartialFile partial(destination);
  const auto [published, computed] = download(url, std::string(file), options.token, partial);
  if (published.empty())
    throw DownloadError(url +
                        " published no SHA-256 (X-Linked-Etag or ETag header); refusing "
                        "an unverified download");
  if (published != computed)
    throw DownloadError("checksum mismatch for " + url + ": the endpoint published SHA-256 " +
                        published + ", the downloaded file has " + computed +
                        "; nothing was cached");
  partial.commit(destination);
  spdlog::info("{}: SHA-256 {} verified, saved to {}", file, computed, destination.string());
  return destination.string();
}

}  // namespace rwkv::server
