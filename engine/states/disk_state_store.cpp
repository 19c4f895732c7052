#include "engine/states/disk_state_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <random>

#include "engine/common/sha256.h"

namespace rwkv::states {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kStateSuffix = ".state";
constexpr std::string_view kTempSuffix = ".tmp";
constexpr std::string_view kPublicOwnerDir = "_";  // owner "" (no API keys)

// A failed file operation: out of space (or quota) is StateStoreFull (507: the
// client can delete states), anything else, e.g. a read-only or unwritable
// folder, StateStoreUnavailable (503: for the operator to fix). The paths go
// to the log only.
[[noreturn]] void io_failure(const std::string& what, const fs::path& path) {
  const int error = errno;
  const std::string reason = std::strerror(error);
  const std::string message = "state store: cannot " + what + " " + path.string() + ": " + reason;
  if (error == ENOSPC || error == EDQUOT) {
    spdlog::error("{}", message);
    throw StateStoreFull("the state store's volume is full (" + reason +
                         "); delete states or ask the operator for space");
  }
  throw StateStoreUnavailable(message);
}

// The whole file; nullopt when it does not exist.
std::optional<std::string> read_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    io_failure("open", path);
  }
  std::string data;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) data.reserve(size_t(st.st_size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      errno = saved;
      io_failure("read", path);
    }
    data.append(buffer, size_t(n));
  }
  ::close(fd);
  return data;
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) io_failure("open folder", dir);
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) io_failure("fsync folder", dir);
}

// Creates `dir` (and its parents) when missing, fsyncing each new entry's parent.
void ensure_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return;
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  if (!parent.empty() && parent != dir) ensure_dir(parent);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) io_failure("create folder", dir);
  fsync_dir(parent.empty() ? fs::path(".") : parent);
}

// Writes `data` to a new temporary file in `dir`, fsynced; returns its path.
fs::path write_temp(const fs::path& dir, std::string_view data) {
  static std::mutex rng_mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t r;
  {
    std::lock_guard lock(rng_mutex);
    r = rng();
  }
  const uint8_t* rb = reinterpret_cast<const uint8_t*>(&r);
  const fs::path path = dir / (common::to_hex(rb, sizeof(r)) + std::string(kTempSuffix));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) io_failure("create", path);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      ::unlink(path.c_str());
      errno = saved;
      io_failure("write", path);
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    ::unlink(path.c_str());
    errno = saved;
    io_failure("fsync", path);
  }
  ::close(fd);
  return path;
}

bool ends_with(const std::string& s, std::string_view suffix) { return s.ends_with(suffix); }

}  // namespace

DiskStateStore::DiskStateStore(fs::path dir, uint64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {
  scan();
}

fs::path DiskStateStore::owner_dir(const std::string& owner) const {
  return dir_ / (owner.empty() ? std::string(kPublicOwnerDir) : owner);
}

fs::path DiskStateStore::file_of(const std::string& owner, const std::string& id) const {
  return owner_dir(owner) / (id + std::string(kStateSuffix));
}

void DiskStateStore::scan() {
  std::error_code ec;
  if (!fs::exists(dir_, ec)) {
    spdlog::info("disk state store {}: empty (the folder is created with the first state)",
                 dir_.string());
    return;
  }
  if (!fs::is_directory(dir_, ec))
    throw std::runtime_error("state store folder " + dir_.string() + " is not a folder");
  const int64_t now = unix_now_ms();
  size_t expired = 0;
  fs::directory_iterator owners(dir_, ec);
  if (ec)
    throw std::runtime_error("cannot read the state store folder " + dir_.string() + ": " +
                             ec.message());
  for (const fs::directory_entry& owner_entry : owners) {
    const std::string owner_name = owner_entry.path().filename().string();
    if (!owner_entry.is_directory(ec)) continue;
    if (owner_name != kPublicOwnerDir && (owner_name.empty() || !valid_state_owner(owner_name)))
      continue;
    const std::string owner = owner_name == kPublicOwnerDir ? "" : owner_name;
    fs::directory_iterator files(owner_entry.path(), ec);
    if (ec)
      throw std::runtime_error("cannot read " + owner_entry.path().string() + ": " + ec.message());
    for (const fs::directory_entry& file : files) {
      const std::string name = file.path().filename().string();
      if (ends_with(name, kTempSuffix)) {  // an interrupted write
        fs::remove(file.path(), ec);
        continue;
      }
      if (!ends_with(name, kStateSuffix)) continue;
      const std::string id = name.substr(0, name.size() - kStateSuffix.size());
      try {
        if (!valid_state_id(id)) throw std::runtime_error("the file name is not a valid state id");
        const std::optional<std::string> data = read_file(file.path());
        if (!data) continue;  // removed meanwhile
        std::string_view blob;
        StateMeta meta = decode_state_record(*data, &blob);
        if (meta.owner != owner || meta.id != id)
          throw std::runtime_error("it holds state '" + meta.id + "' of another owner or name");
        if (meta.expired(now)) {
          fs::remove(file.path(), ec);
          ++expired;
          continue;
        }
        bytes_ += meta.info.bytes;
        index_[{owner, id}] = {std::move(meta), ++generations_};
      } catch (const std::exception& e) {
        ++skipped_;
        spdlog::warn("disk state store: skipping corrupted file {}: {}", file.path().string(),
                     e.what());
      }
    }
  }
  spdlog::info(
      "disk state store {}: {} state(s), {} bytes loaded; {} corrupted file(s) skipped, {} expired "
      "removed",
      dir_.string(), index_.size(), bytes_, skipped_, expired);
}

void DiskStateStore::remove_file(const Key& key) {
  const fs::path path = file_of(key.first, key.second);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) io_failure("remove", path);
  const auto it = index_.find(key);
  if (it != index_.end()) {
    bytes_ -= it->second.meta.info.bytes;
    index_.erase(it);
  }
}

void DiskStateStore::sweep_expired() {
  const int64_t now = unix_now_ms();
  for (auto it = index_.begin(); it != index_.end();) {
    const auto next = std::next(it);
    if (it->second.meta.expired(now)) remove_file(it->first);
    it = next;
  }
}

bool DiskStateStore::put(StateMeta meta, std::shared_ptr<const std::string> blob, bool replace) {
  check_state_for_put(meta, *blob);
  const fs::path folder = owner_dir(meta.owner);
  ensure_dir(folder);
  const fs::path temp = write_temp(folder, encode_state_record(meta, *blob));
  std::lock_guard lock(mutex_);
  const Key key{meta.owner, meta.id};
  const auto it = index_.find(key);
  uint64_t old_bytes = 0;
  if (it != index_.end()) {
    if (!it->second.meta.expired(unix_now_ms()) && !replace) {
      ::unlink(temp.c_str());
      return false;
    }
    old_bytes = it->second.meta.info.bytes;
  }
  if (max_bytes_ && bytes_ - old_bytes + meta.info.bytes > max_bytes_) {
    ::unlink(temp.c_str());
    throw StateStoreFull("the disk state store is full: " + std::to_string(bytes_) + " of " +
                         std::to_string(max_bytes_) +
                         " bytes used (--state-max-bytes); delete states first");
  }
  const fs::path target = file_of(meta.owner, meta.id);
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const int saved = errno;
    ::unlink(temp.c_str());
    errno = saved;
    io_failure("rename into", target);
  }
  fsync_dir(folder);
  bytes_ += meta.info.bytes - old_bytes;
  index_[key] = {std::move(meta), ++generations_};
  return true;
}

std::optional<StoredState> DiskStateStore::get(const std::string& owner, const std::string& id) {
  const Key key{owner, id};
  uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    const auto it = index_.find(key);
    if (it == index_.end() || it->second.meta.expired(unix_now_ms())) {
      if (it != index_.end()) remove_file(key);
      ++misses_;
      return std::nullopt;
    }
    generation = it->second.generation;
  }
  // Read outside the lock: a concurrent replace renames atomically, so the
  // file is the old state or the new one.
  const fs::path path = file_of(owner, id);
  std::optional<std::string> data = read_file(path);
  std::string problem;
  if (data) {
    try {
      std::string_view blob;
      StateMeta meta = decode_state_record(*data, &blob);
      if (meta.owner != owner || meta.id != id) throw std::runtime_error("it holds another state");
      std::lock_guard lock(mutex_);
      ++hits_;
      return StoredState{std::move(meta), std::make_shared<const std::string>(blob)};
    } catch (const std::exception& e) {
      problem = e.what();
    }
  } else {
    problem = "the file is gone";
  }
  std::lock_guard lock(mutex_);
  ++misses_;
  // Deleted or replaced while it was read: a miss, and the newer entry stays.
  const auto it = index_.find(key);
  if (it == index_.end() || it->second.generation != generation) return std::nullopt;
  spdlog::warn("disk state store: state file {} is unusable: {}", path.string(), problem);
  ++unusable_;
  bytes_ -= it->second.meta.info.bytes;
  index_.erase(it);  // the file stays for inspection
  return std::nullopt;
}

std::vector<std::optional<StoredState>> DiskStateStore::get_many(
    const std::string& owner, const std::vector<std::string>& ids) {
  std::vector<std::optional<StoredState>> out(ids.size());
  std::atomic<size_t> next{0};
  const auto read_some = [&] {
    for (size_t i; (i = next++) < ids.size();) out[i] = get(owner, ids[i]);
  };
  std::vector<std::future<void>> readers;
  for (size_t n = std::min<size_t>(ids.size(), 8); n > 1; --n)
    readers.push_back(std::async(std::launch::async, read_some));
  read_some();
  for (auto& r : readers) r.get();  // rethrows a reader's exception
  return out;
}

std::optional<StateMeta> DiskStateStore::stat(const std::string& owner, const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = index_.find({owner, id});
  if (it == index_.end()) return std::nullopt;
  if (it->second.meta.expired(unix_now_ms())) {
    remove_file(it->first);
    return std::nullopt;
  }
  return it->second.meta;
}

bool DiskStateStore::erase(const std::string& owner, const std::string& id) {
  std::lock_guard lock(mutex_);
  const Key key{owner, id};
  const auto it = index_.find(key);
  if (it == index_.end()) return false;
  const bool live = !it->second.meta.expired(unix_now_ms());
  remove_file(key);
  fsync_dir(owner_dir(owner));
  return live;
}

StateListPage DiskStateStore::list(const std::string& owner, const std::string& after,
                                   size_t limit) {
  std::lock_guard lock(mutex_);
  sweep_expired();
  StateListPage page;
  for (auto it = index_.upper_bound({owner, after}); it != index_.end() && it->first.first == owner;
       ++it) {
    if (page.items.size() == limit) {
      page.has_more = true;
      break;
    }
    page.items.push_back(it->second.meta);
  }
  return page;
}

StateStoreStats DiskStateStore::stats() {
  std::lock_guard lock(mutex_);
  sweep_expired();
  return {index_.size(), bytes_, hits_, misses_, 0, skipped_ + unusable_};
}

}  // namespace rwkv::states
