// Decoded document states in front of the state store: a rerank over states
// it has used before reads no blob and decodes nothing. Entries are float32
// SequenceStates, the engine's own layout, keyed by (owner, id) and the
// store's write id of the record they came from (StateMeta::write_id): a
// state overwritten or deleted by any replica has another write id, or none,
// so a stale entry is never returned. Least recently used entries are
// dropped beyond the byte budget; a budget of 0 disables the cache.
// Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "engine/model/engine.h"

namespace rwkv::states {

struct DecodedStateCacheStats {
  uint64_t entries = 0, bytes = 0;  // held now (bytes: float32 values)
  uint64_t hits = 0, misses = 0;    // lookups since start
  uint64_t evictions = 0;           // entries dropped to stay within the budget
};

class DecodedStateCache {
 public:
  explicit DecodedStateCache(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  // The entry of (owner, id) when it was decoded from the record `write_id`;
  // nullptr (a miss) otherwise, and the stale entry is dropped.
  std::shared_ptr<const SequenceState> find(const std::string& owner, const std::string& id,
                                            const std::string& write_id);
  // Keeps `state` as (owner, id) decoded from `write_id`, replacing what was
  // there; not kept when it alone exceeds the budget.
  void insert(const std::string& owner, const std::string& id, const std::string& write_id,
              std::shared_ptr<const SequenceState> state);
  void erase(const std::string& owner, const std::string& id);
  DecodedStateCacheStats stats() const;

 private:
  struct Entry {
    std::string key, write_id;
    std::shared_ptr<const SequenceState> state;
    uint64_t bytes = 0;
  };
  void drop(std::list<Entry>::iterator it);  // with mutex_ held

  const uint64_t max_bytes_;
  mutable std::mutex mutex_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  DecodedStateCacheStats stats_;
};

}  // namespace rwkv::states
