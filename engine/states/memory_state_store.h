// States in process memory, least recently used first out once the blobs
// exceed a byte budget. Lost on restart; not shared between processes.
#pragma once

#include <list>
#include <map>
#include <mutex>

#include "engine/states/state_store.h"

namespace rwkv::states {

class MemoryStateStore : public StateStore {
 public:
  explicit MemoryStateStore(uint64_t max_bytes);

  std::string_view kind() const override { return "memory"; }
  bool put(StateMeta meta, std::shared_ptr<const std::string> blob, bool replace) override;
  std::optional<StoredState> get(const std::string& owner, const std::string& id) override;
  std::optional<StateMeta> stat(const std::string& owner, const std::string& id) override;
  bool erase(const std::string& owner, const std::string& id) override;
  StateListPage list(const std::string& owner, const std::string& after, size_t limit) override;
  StateStoreStats stats() override;

  uint64_t max_bytes() const { return max_bytes_; }

 private:
  using Key = std::pair<std::string, std::string>;  // owner, id
  struct Entry {
    StoredState state;
    std::list<Key>::iterator lru;  // position in lru_
  };
  // The live entry under `key` (an expired one is removed); mutex_ held.
  Entry* find_live(const Key& key, int64_t now_ms);
  void remove(std::map<Key, Entry>::iterator it);  // mutex_ held

  const uint64_t max_bytes_;
  std::mutex mutex_;
  std::map<Key, Entry> entries_;
  std::list<Key> lru_;  // most recently used first
  uint64_t bytes_ = 0, hits_ = 0, misses_ = 0, evictions_ = 0;
};

}  // namespace rwkv::states
