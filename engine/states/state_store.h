// Where cached document states live (/v1/states): one interface, three
// backends. memory: LRU within a byte budget (memory_state_store.h); disk:
// one file per state, written atomically, reloaded on restart
// (disk_state_store.h); redis: shared by replicas (redis_state_store.h).
//
// Every state belongs to an owner (a hash of the API key that created it, ""
// without keys) and is addressed by (owner, id): one owner can never see,
// use or delete another's states, and an id taken by another owner looks
// exactly like a free one. All methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/states/state_blob.h"

namespace rwkv::states {

struct StateMeta {
  std::string owner;       // "" or [A-Za-z0-9]{1,64}
  std::string id;          // valid_state_id
  int64_t created_ms = 0;  // Unix time
  int64_t expires_ms = 0;  // Unix time; 0: never
  StateBlobInfo info;      // from the blob's header (bytes, tokens, dtype, shape, fingerprint)
  // Random, new at every put: tells a decoded copy of this record from one of
  // an overwritten state (DecodedStateCache). "" in records written before it existed.
  std::string write_id;

  bool expired(int64_t now_ms) const { return expires_ms != 0 && expires_ms <= now_ms; }
};

struct StoredState {
  StateMeta meta;
  std::shared_ptr<const std::string> blob;
};

struct StateListPage {
  std::vector<StateMeta> items;  // ids in ascending byte order
  bool has_more = false;
};

struct StateStoreStats {
  uint64_t states = 0, bytes = 0;  // what is stored now (bytes: blob sizes)
  uint64_t hits = 0, misses = 0;   // get() since start, this process
  uint64_t evictions = 0;          // states dropped to stay within the budget
  uint64_t corrupted = 0;          // stored states found unusable and skipped, since start
};

// The backend cannot be reached (Redis down, disk unwritable): HTTP 503.
class StateStoreUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The state does not fit (budget, Redis maxmemory): HTTP 507.
class StateStoreFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// [A-Za-z0-9._-]{1,128}, not "." or "..": safe as a file name and a Redis key part.
bool valid_state_id(std::string_view id);
// "" or [A-Za-z0-9]{1,64}.
bool valid_state_owner(std::string_view owner);
int64_t unix_now_ms();

class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual std::string_view kind() const = 0;  // "memory", "disk", "redis"

  // Stores `blob` (checked with inspect_state_blob; std::invalid_argument
  // when it is not a valid blob or the meta's owner/id are invalid) under
  // (meta.owner, meta.id); meta.info is filled from the blob. With `replace`
  // false an existing live state is kept and false is returned.
  virtual bool put(StateMeta meta, std::shared_ptr<const std::string> blob, bool replace) = 0;
  // The state and its blob; nullopt when missing or expired. Counts a hit or a miss.
  virtual std::optional<StoredState> get(const std::string& owner, const std::string& id) = 0;
  // The metadata only (no hit/miss counted).
  virtual std::optional<StateMeta> stat(const std::string& owner, const std::string& id) = 0;
  // get() and stat() of several ids at once, in their order. Redis: one
  // round trip (MGET, pipelined GETRANGE); disk: files read in parallel.
  virtual std::vector<std::optional<StoredState>> get_many(const std::string& owner,
                                                           const std::vector<std::string>& ids);
  virtual std::vector<std::optional<StateMeta>> stat_many(const std::string& owner,
                                                          const std::vector<std::string>& ids);
  // True when a live state was removed.
  virtual bool erase(const std::string& owner, const std::string& id) = 0;
  // The owner's states with ids greater than `after`, at most `limit`.
  virtual StateListPage list(const std::string& owner, const std::string& after, size_t limit) = 0;
  virtual StateStoreStats stats() = 0;
  // Throws StateStoreUnavailable when the backend cannot be reached now.
  virtual void check_available() {}
};

// ---- What the disk and Redis backends write: a record = meta + blob ----
//
//   0  8  magic "RWKVSREC"
//   8  4  u32 record version (1)
//  12  4  u32 n = length of the metadata JSON
//  16  n  metadata JSON {"owner","id","created_ms","expires_ms","bytes","write_id"?}
//  16+n 4 u32 CRC-32 of the JSON
//  20+n   the state blob (docs/state-format.md), `bytes` long
std::string encode_state_record(const StateMeta& meta, std::string_view blob);
// The metadata of a record, checking its framing. With `blob` the whole
// record must be given; the blob is checked (inspect_state_blob) and its view
// returned. Throws std::runtime_error saying what is wrong. Without `blob`
// a prefix holding the metadata is enough (Redis listing).
StateMeta decode_state_record(std::string_view record, std::string_view* blob = nullptr);

// For backends' put(): checks meta.owner, meta.id and the blob
// (std::invalid_argument saying what is wrong), fills meta.info and gives
// meta a new write_id.
void check_state_for_put(StateMeta& meta, std::string_view blob);

// ---- Choosing a backend ----

enum class StoreKind { kMemory, kDisk, kRedis };

struct StateStoreOptions {
  StoreKind kind = StoreKind::kDisk;
  std::string dir = "states";  // disk: created when the first state is stored
  // Budget in blob bytes. memory: LRU eviction beyond it (0: 1 GiB);
  // disk: new states are refused (507) beyond it (0: unlimited); redis: unused
  // (configure Redis' own maxmemory).
  uint64_t max_bytes = 0;
  std::string redis_url = "redis://127.0.0.1:6379/0";
  std::string redis_prefix = "rwkv-emb:state:";
};

std::unique_ptr<StateStore> make_state_store(const StateStoreOptions& options);

}  // namespace rwkv::states
