#include "server/model_download.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "engine/common/sha256.h"

namespace rwkv::server {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kRepository = "howard-hou/EmbeddingRWKV";
constexpr std::string_view kRevision = "main";
// A download's file unwritten this long belongs to a process that was killed
// (a live one gives up after its read timeout, two minutes).
constexpr auto kAbandonedAfter = std::chrono::minutes(10);

constexpr std::array<ReleasedModel, 3> kReleased = {{
    {"tiny", "rwkv0b1-emb-curriculum.pth", "rwkv0b1-reranker.pth"},
    {"base", "rwkv0b4-emb-curriculum.pth", "rwkv0b3-reranker.pth"},
    {"large", "rwkv1b4-emb-curriculum.pth", "rwkv1b3-reranker.pth"},
}};

// Downloads of `destination` go to hidden files beside it: this path plus a
// random suffix.
fs::path part_prefix(const fs::path& destination) {
  std::string name = ".";
  name += destination.filename().string();
  name += ".part-";
  return destination.parent_path() / name;
}

// A download in progress next to its destination, removed unless moved into
// place. Written through its descriptor: no stdio stream, which could fail to
// open after the file was made.
class PartialFile {
 public:
  explicit PartialFile(const fs::path& destination) {
    std::string name = part_prefix(destination).string() + "XXXXXX";
    fd_ = mkstemp(name.data());
    if (fd_ < 0)
      throw DownloadError("cannot create a file in " + destination.parent_path().string() + ": " +
                          std::strerror(errno));
    path_ = name;
  }
  ~PartialFile() {
    if (fd_ >= 0) ::close(fd_);
    std::error_code ec;
    if (!path_.empty()) fs::remove(path_, ec);
  }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  // False (and a log line saying why) when the piece cannot be written.
  bool write(std::string_view piece) {
    while (!piece.empty()) {
      const ssize_t n = ::write(fd_, piece.data(), piece.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        spdlog::error("cannot write {}: {}", path_.string(), std::strerror(errno));
        return false;
      }
      piece.remove_prefix(size_t(n));
    }
    return true;
  }
  // Makes the bytes durable, then renames the file to `destination`.
  void commit(const fs::path& destination) {
    const bool synced = fsync(fd_) == 0;
    const int error = errno;
    const bool closed = ::close(fd_) == 0;
    fd_ = -1;
    if (!synced || !closed)
      throw DownloadError("cannot write " + path_.string() + ": " +
                          std::strerror(synced ? errno : error));
    fs::rename(path_, destination);
    path_.clear();
  }

 private:
  fs::path path_;
  int fd_ = -1;
};

// Removes the files of downloads of `destination` that were abandoned.
void remove_abandoned_parts(const fs::path& destination) {
  const std::string prefix = part_prefix(destination).filename().string();
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
  common::Sha256 hash;
  const std::string published =
      http_download(url, std::string(file), options.token, [&](std::string_view piece) {
        hash.update(piece);
        return partial.write(piece);
      });
  const common::Sha256Digest digest = hash.finish();
  const std::string computed = common::to_hex(digest.data(), digest.size());
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
