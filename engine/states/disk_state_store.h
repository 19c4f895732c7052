// States as files: <dir>/<owner or "_">/<id>.state, each a state record
// (state_store.h) written to a temporary file, fsynced, then renamed into
// place (and the directory fsynced), so a crash leaves the old state or the
// new one, never a torn file. On start every file is read and checked;
// corrupted ones are skipped with a log line (and left for inspection),
// leftover temporary files are removed. The folder is created when the first
// state is stored. One server process per folder (use Redis to share).
#pragma once

#include <filesystem>
#include <map>
#include <mutex>

#include "engine/states/state_store.h"

namespace rwkv::states {

class DiskStateStore : public StateStore {
 public:
  // `max_bytes`: total blob bytes beyond which new states are refused
  // (StateStoreFull); 0 for no limit. Throws std::runtime_error when `dir`
  // exists and cannot be read.
  DiskStateStore(std::filesystem::path dir, uint64_t max_bytes);

  std::string_view kind() const override { return "disk"; }
  bool put(StateMeta meta, std::shared_ptr<const std::string> blob, bool replace) override;
  std::optional<StoredState> get(const std::string& owner, const std::string& id) override;
  // Up to 8 files read at once.
  std::vector<std::optional<StoredState>> get_many(const std::string& owner,
                                                   const std::vector<std::string>& ids) override;
  std::optional<StateMeta> stat(const std::string& owner, const std::string& id) override;
  bool erase(const std::string& owner, const std::string& id) override;
  StateListPage list(const std::string& owner, const std::string& after, size_t limit) override;
  StateStoreStats stats() override;

  const std::filesystem::path& dir() const { return dir_; }
  size_t skipped_at_start() const {
    return skipped_;
  }  // corrupted files found by the start-up scan

 private:
  using Key = std::pair<std::string, std::string>;  // owner, id
  struct Entry {
    StateMeta meta;
    uint64_t generation;  // new with every put: tells get() its entry from a newer one
  };
  std::filesystem::path owner_dir(const std::string& owner) const;
  std::filesystem::path file_of(const std::string& owner, const std::string& id) const;
  void scan();
  void sweep_expired();              // mutex_ held
  void remove_file(const Key& key);  // and its index entry; mutex_ held

  const std::filesystem::path dir_;
  const uint64_t max_bytes_;
  std::mutex mutex_;
  std::map<Key, Entry> index_;
  uint64_t bytes_ = 0, hits_ = 0, misses_ = 0, generations_ = 0;
  size_t skipped_ = 0;   // corrupted files found by the start-up scan
  size_t unusable_ = 0;  // indexed files found corrupted (or gone) when read
};

}  // namespace rwkv::states
