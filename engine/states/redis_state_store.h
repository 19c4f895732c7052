// States in Redis (hiredis), shared by every replica pointed at it. Each
// state is one string value, the state record of state_store.h, under
// <prefix><owner or "_">:<id>; TTLs are Redis expiries (PX), "create only"
// is SET NX. Connections are pooled, opened with a connect timeout, used
// with a command timeout, and reopened after an error; when Redis cannot be
// reached calls throw StateStoreUnavailable (HTTP 503) and the next call
// tries again. Budgets and eviction are Redis' own (maxmemory).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/states/state_store.h"

struct redisContext;
struct redisReply;

namespace rwkv::states {

// redis://[[user]:password@]host[:port][/db]
struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user, password;
  int db = 0;
};
// Throws std::invalid_argument on a malformed URL.
RedisAddress parse_redis_url(const std::string& url);

class RedisStateStore : public StateStore {
 public:
  RedisStateStore(const std::string& url, std::string prefix,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
  ~RedisStateStore() override;

  std::string_view kind() const override { return "redis"; }
  bool put(StateMeta meta, std::shared_ptr<const std::string> blob, bool replace) override;
  std::optional<StoredState> get(const std::string& owner, const std::string& id) override;
  std::optional<StateMeta> stat(const std::string& owner, const std::string& id) override;
  std::vector<std::optional<StoredState>> get_many(const std::string& owner,
                                                   const std::vector<std::string>& ids) override;
  std::vector<std::optional<StateMeta>> stat_many(const std::string& owner,
                                                  const std::vector<std::string>& ids) override;
  bool erase(const std::string& owner, const std::string& id) override;
  StateListPage list(const std::string& owner, const std::string& after, size_t limit) override;
  // states and bytes (record sizes) are counted with SCAN, at most every 5 s.
  StateStoreStats stats() override;
  void check_available() override;  // PING

 private:
  struct ReplyDeleter {
    void operator()(redisReply* r) const;
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;
  using Command = std::vector<std::string>;

  // Runs the commands pipelined on one pooled connection and returns their
  // replies; Redis error replies become StateStoreUnavailable (StateStoreFull
  // for OOM). A broken pooled connection is replaced and the batch retried once.
  std::vector<Reply> run(const std::vector<Command>& commands);
  Reply run1(const Command& command) { return std::move(run({command}).front()); }
  redisContext* connect();
  std::string key(const std::string& owner, const std::string& id) const;
  std::string owner_pattern(const std::string& owner) const;  // SCAN MATCH pattern
  std::vector<std::string> scan(const std::string& pattern);
  // The live state of a GET / the metadata of a GETRANGE reply; nullopt when
  // missing, expired or unusable (logged).
  std::optional<StoredState> stored_of(const redisReply* r, const std::string& owner,
                                       const std::string& id);
  std::optional<StateMeta> meta_of(const redisReply* r, const std::string& owner,
                                   const std::string& id);
  Command meta_read(const std::string& owner, const std::string& id) const;

  RedisAddress address_;
  std::string where_;  // host:port for messages
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  std::mutex pool_mutex_;
  std::vector<redisContext*> idle_;

  std::mutex stats_mutex_;
  uint64_t hits_ = 0, misses_ = 0, corrupted_ = 0;
  std::chrono::steady_clock::time_point counted_at_{};
  uint64_t counted_states_ = 0, counted_bytes_ = 0;
};

}  // namespace rwkv::states
