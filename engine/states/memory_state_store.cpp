#include "engine/states/memory_state_store.h"

namespace rwkv::states {

MemoryStateStore::MemoryStateStore(uint64_t max_bytes) : max_bytes_(max_bytes) {
  if (max_bytes == 0)
    throw std::invalid_argument("the memory state store needs a byte budget above 0");
}

MemoryStateStore::Entry* MemoryStateStore::find_live(const Key& key, int64_t now_ms) {
  const auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  if (it->second.state.meta.expired(now_ms)) {
    remove(it);
    return nullptr;
  }
  return &it->second;
}

void MemoryStateStore::remove(std::map<Key, Entry>::iterator it) {
  bytes_ -= it->second.state.blob->size();
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

bool MemoryStateStore::put(StateMeta meta, std::shared_ptr<const std::string> blob, bool replace) {
  check_state_for_put(meta, *blob);
  const uint64_t size = blob->size();
  if (size > max_bytes_)
    throw StateStoreFull("a state of " + std::to_string(size) +
                         " bytes does not fit the memory store's budget of " +
                         std::to_string(max_bytes_) + " bytes (--state-max-bytes)");
  std::lock_guard lock(mutex_);
  Key key{meta.owner, meta.id};
  if (find_live(key, unix_now_ms())) {
    if (!replace) return false;
    remove(entries_.find(key));
  }
  // Least recently used out until the new state fits.
  while (bytes_ + size > max_bytes_ && !lru_.empty()) {
    remove(entries_.find(lru_.back()));
    ++evictions_;
  }
  lru_.push_front(key);
  entries_.emplace(std::move(key), Entry{{std::move(meta), std::move(blob)}, lru_.begin()});
  bytes_ += size;
  return true;
}

std::optional<StoredState> MemoryStateStore::get(const std::string& owner, const std::string& id) {
  std::lock_guard lock(mutex_);
  Entry* e = find_live({owner, id}, unix_now_ms());
  if (!e) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, e->lru);  // now the most recently used
  return e->state;
}

std::optional<StateMeta> MemoryStateStore::stat(const std::string& owner, const std::string& id) {
  std::lock_guard lock(mutex_);
  Entry* e = find_live({owner, id}, unix_now_ms());
  if (!e) return std::nullopt;
  return e->state.meta;
}

bool MemoryStateStore::erase(const std::string& owner, const std::string& id) {
  std::lock_guard lock(mutex_);
  Key key{owner, id};
  if (!find_live(key, unix_now_ms())) return false;
  remove(entries_.find(key));
  return true;
}

StateListPage MemoryStateStore::list(const std::string& owner, const std::string& after,
                                     size_t limit) {
  std::lock_guard lock(mutex_);
  const int64_t now = unix_now_ms();
  StateListPage page;
  for (auto it = entries_.upper_bound({owner, after});
       it != entries_.end() && it->first.first == owner;) {
    const auto next = std::next(it);
    if (it->second.state.meta.expired(now)) {
      remove(it);
    } else if (page.items.size() == limit) {
      page.has_more = true;
      break;
    } else {
      page.items.push_back(it->second.state.meta);
    }
    it = next;
  }
  return page;
}

StateStoreStats MemoryStateStore::stats() {
  std::lock_guard lock(mutex_);
  const int64_t now = unix_now_ms();
  for (auto it = entries_.begin(); it != entries_.end();) {
    const auto next = std::next(it);
    if (it->second.state.meta.expired(now)) remove(it);
    it = next;
  }
  return {entries_.size(), bytes_, hits_, misses_, evictions_};
}

}  // namespace rwkv::states
