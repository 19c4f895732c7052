#include "engine/states/decoded_state_cache.h"

namespace rwkv::states {
namespace {

// Owners and ids never hold ':' (valid_state_owner, valid_state_id).
std::string cache_key(const std::string& owner, const std::string& id) { return owner + ":" + id; }

}  // namespace

std::shared_ptr<const SequenceState> DecodedStateCache::find(const std::string& owner,
                                                             const std::string& id,
                                                             const std::string& write_id) {
  std::lock_guard lock(mutex_);
  const auto it = index_.find(cache_key(owner, id));
  if (it == index_.end() || it->second->write_id != write_id || write_id.empty()) {
    if (it != index_.end()) drop(it->second);
    ++stats_.misses;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++stats_.hits;
  return it->second->state;
}

void DecodedStateCache::insert(const std::string& owner, const std::string& id,
                               const std::string& write_id,
                               std::shared_ptr<const SequenceState> state) {
  const uint64_t bytes = (state->shift.size() + state->wkv.size()) * sizeof(float);
  std::lock_guard lock(mutex_);
  const std::string key = cache_key(owner, id);
  if (const auto it = index_.find(key); it != index_.end()) drop(it->second);
  if (bytes > max_bytes_ || write_id.empty()) return;
  while (stats_.bytes + bytes > max_bytes_) {
    drop(std::prev(lru_.end()));
    ++stats_.evictions;
  }
  lru_.push_front({key, write_id, std::move(state), bytes});
  index_[key] = lru_.begin();
  stats_.bytes += bytes;
  ++stats_.entries;
}

void DecodedStateCache::erase(const std::string& owner, const std::string& id) {
  std::lock_guard lock(mutex_);
  if (const auto it = index_.find(cache_key(owner, id)); it != index_.end()) drop(it->second);
}

DecodedStateCacheStats DecodedStateCache::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void DecodedStateCache::drop(std::list<Entry>::iterator it) {
  stats_.bytes -= it->bytes;
  --stats_.entries;
  index_.erase(it->key);
  lru_.erase(it);
}

}  // namespace rwkv::states
