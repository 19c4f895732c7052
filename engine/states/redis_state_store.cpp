#include "engine/states/redis_state_store.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

namespace rwkv::states {
namespace {

constexpr size_t kMaxPooled = 32;
constexpr long long kMetaPrefixBytes =
    2048;  // record framing + metadata JSON + blob header fit in this
constexpr auto kStatsInterval = std::chrono::seconds(5);

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(uint8_t(s[i + 1])) &&
        std::isxdigit(uint8_t(s[i + 2]))) {
      out.push_back(char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

int parse_number(std::string_view s, const std::string& url, const char* what) {
  if (s.empty() || s.size() > 9 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw std::invalid_argument("bad " + std::string(what) + " in the Redis URL '" + url + "'");
  return std::stoi(std::string(s));
}

// Escapes the glob characters of SCAN MATCH.
std::string glob_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string reply_text(const redisReply* r) { return std::string(r->str, r->len); }

}  // namespace

RedisAddress parse_redis_url(const std::string& url) {
  constexpr std::string_view kScheme = "redis://";
  if (!std::string_view(url).starts_with(kScheme))
    throw std::invalid_argument("the Redis URL '" + url + "' must start with redis://");
  RedisAddress a;
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (const size_t colon = userinfo.find(':'); colon != std::string_view::npos) {
      a.user = percent_decode(userinfo.substr(0, colon));
      a.password = percent_decode(userinfo.substr(colon + 1));
    } else {
      a.password =
          percent_decode(userinfo);  // redis://secret@host: the password, as redis-cli reads it
    }
  }
  std::string_view hostport = rest;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) a.db = parse_number(db, url, "database number");
  }
  std::string_view host = hostport, port;
  if (hostport.starts_with('[')) {  // [IPv6]:port
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos)
      throw std::invalid_argument("bad host in the Redis URL '" + url + "'");
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':')
        throw std::invalid_argument("bad host in the Redis URL '" + url + "'");
      port = hostport.substr(close + 2);
    }
  } else if (const size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (!host.empty()) a.host = std::string(host);
  if (!port.empty()) {
    a.port = parse_number(port, url, "port");
    if (a.port < 1 || a.port > 65535)
      throw std::invalid_argument("bad port in the Redis URL '" + url + "'");
  }
  return a;
}

void RedisStateStore::ReplyDeleter::operator()(redisReply* r) const { freeReplyObject(r); }

RedisStateStore::RedisStateStore(const std::string& url, std::string prefix,
                                 std::chrono::milliseconds timeout)
    : address_(parse_redis_url(url)),
      where_(address_.host + ":" + std::to_string(address_.port)),
      prefix_(std::move(prefix)),
      timeout_(timeout) {
  try {
    check_available();
    spdlog::info("redis state store at {} (db {}, key prefix '{}')", where_, address_.db, prefix_);
  } catch (const std::exception& e) {
    spdlog::warn("redis state store: {} (requests that need states get 503 until it is reachable)",
                 e.what());
  }
}

RedisStateStore::~RedisStateStore() {
  for (redisContext* c : idle_) redisFree(c);
}

redisContext* RedisStateStore::connect() {
  const auto ms = timeout_.count();
  const timeval tv{time_t(ms / 1000), suseconds_t((ms % 1000) * 1000)};
  redisContext* c = redisConnectWithTimeout(address_.host.c_str(), address_.port, tv);
  if (c == nullptr)
    throw StateStoreUnavailable("Redis at " + where_ + " is unreachable: out of memory");
  if (c->err) {
    const std::string err = c->errstr;
    redisFree(c);
    throw StateStoreUnavailable("Redis at " + where_ + " is unreachable: " + err);
  }
  redisSetTimeout(c, tv);
  redisEnableKeepAlive(c);
  std::vector<Command> setup;
  if (!address_.password.empty()) {
    if (address_.user.empty())
      setup.push_back({"AUTH", address_.password});
    else
      setup.push_back({"AUTH", address_.user, address_.password});
  }
  if (address_.db != 0) setup.push_back({"SELECT", std::to_string(address_.db)});
  for (const Command& cmd : setup) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : cmd) argv.push_back(a.data()), lens.push_back(a.size());
    auto* r =
        static_cast<redisReply*>(redisCommandArgv(c, int(argv.size()), argv.data(), lens.data()));
    std::string problem;
    if (r == nullptr)
      problem = c->errstr;
    else if (r->type == REDIS_REPLY_ERROR)
      problem = reply_text(r);
    if (r) freeReplyObject(r);
    if (!problem.empty()) {
      redisFree(c);
      throw StateStoreUnavailable("Redis at " + where_ + ": " + cmd.front() +
                                  " failed: " + problem);
    }
  }
  return c;
}

std::vector<RedisStateStore::Reply> RedisStateStore::run(const std::vector<Command>& commands) {
  for (int attempt = 0;; ++attempt) {
    redisContext* c = nullptr;
    bool pooled = false;
    {
      std::lock_guard lock(pool_mutex_);
      if (!idle_.empty()) {
        c = idle_.back();
        idle_.pop_back();
        pooled = true;
      }
    }
    if (!c) c = connect();
    for (const Command& cmd : commands) {
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (const std::string& a : cmd) argv.push_back(a.data()), lens.push_back(a.size());
      redisAppendCommandArgv(c, int(argv.size()), argv.data(), lens.data());
    }
    std::vector<Reply> replies;
    bool io_ok = true;
    for (size_t i = 0; i < commands.size() && io_ok; ++i) {
      void* r = nullptr;
      if (redisGetReply(c, &r) != REDIS_OK || r == nullptr)
        io_ok = false;
      else
        replies.emplace_back(static_cast<redisReply*>(r));
    }
    if (!io_ok) {
      const std::string err = c->errstr;
      redisFree(c);
      if (pooled && attempt == 0) continue;  // a stale pooled connection: once more on a fresh one
      throw StateStoreUnavailable("Redis at " + where_ +
                                  " failed: " + (err.empty() ? "connection lost" : err));
    }
    {
      std::lock_guard lock(pool_mutex_);
      if (idle_.size() < kMaxPooled) c = (idle_.push_back(c), nullptr);
    }
    if (c) redisFree(c);
    for (const Reply& r : replies) {
      if (r->type != REDIS_REPLY_ERROR) continue;
      const std::string err = reply_text(r.get());
      if (err.starts_with("OOM")) throw StateStoreFull("Redis is full: " + err);
      throw StateStoreUnavailable("Redis at " + where_ + ": " + err);
    }
    return replies;
  }
}

std::string RedisStateStore::key(const std::string& owner, const std::string& id) const {
  return prefix_ + (owner.empty() ? "_" : owner) + ":" + id;
}

std::string RedisStateStore::owner_pattern(const std::string& owner) const {
  return glob_escape(prefix_ + (owner.empty() ? "_" : owner) + ":") + "*";
}

std::vector<std::string> RedisStateStore::scan(const std::string& pattern) {
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    const Reply r = run1({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
      throw StateStoreUnavailable("Redis at " + where_ + ": unexpected SCAN reply");
    cursor = reply_text(r->element[0]);
    for (size_t i = 0; i < r->element[1]->elements; ++i)
      keys.push_back(reply_text(r->element[1]->element[i]));
  } while (cursor != "0");
  return keys;
}

void RedisStateStore::check_available() {
  const Reply r = run1({"PING"});
  (void)r;
}

bool RedisStateStore::put(StateMeta meta, std::shared_ptr<const std::string> blob, bool replace) {
  check_state_for_put(meta, *blob);
  Command cmd = {"SET", key(meta.owner, meta.id), encode_state_record(meta, *blob)};
  if (meta.expires_ms != 0) {
    cmd.push_back("PX");
    cmd.push_back(std::to_string(std::max<int64_t>(1, meta.expires_ms - unix_now_ms())));
  }
  if (!replace) cmd.push_back("NX");
  const Reply r = run1(cmd);
  return r->type != REDIS_REPLY_NIL;
}

std::optional<StoredState> RedisStateStore::stored_of(const redisReply* r, const std::string& owner,
                                                      const std::string& id) {
  std::optional<StoredState> out;
  bool unusable = false;
  if (r->type == REDIS_REPLY_STRING) {
    const std::string_view record(r->str, r->len);
    try {
      std::string_view blob;
      StateMeta meta = decode_state_record(record, &blob);
      if (meta.owner != owner || meta.id != id) throw std::runtime_error("it holds another state");
      if (!meta.expired(unix_now_ms()))
        out = StoredState{std::move(meta), std::make_shared<const std::string>(blob)};
    } catch (const std::exception& e) {
      spdlog::warn("redis state store: value of {} is unusable: {}", key(owner, id), e.what());
      unusable = true;
    }
  }
  std::lock_guard lock(stats_mutex_);
  ++(out ? hits_ : misses_);
  if (unusable) ++corrupted_;
  return out;
}

std::optional<StateMeta> RedisStateStore::meta_of(const redisReply* r, const std::string& owner,
                                                  const std::string& id) {
  if (r->type != REDIS_REPLY_STRING || r->len == 0)
    return std::nullopt;  // GETRANGE of a missing key is ""
  try {
    StateMeta meta = decode_state_record(std::string_view(r->str, r->len));
    if (meta.owner != owner || meta.id != id || meta.expired(unix_now_ms())) return std::nullopt;
    return meta;
  } catch (const std::exception& e) {
    spdlog::warn("redis state store: value of {} is unusable: {}", key(owner, id), e.what());
    return std::nullopt;
  }
}

RedisStateStore::Command RedisStateStore::meta_read(const std::string& owner,
                                                    const std::string& id) const {
  return {"GETRANGE", key(owner, id), "0", std::to_string(kMetaPrefixBytes - 1)};
}

std::optional<StoredState> RedisStateStore::get(const std::string& owner, const std::string& id) {
  return stored_of(run1({"GET", key(owner, id)}).get(), owner, id);
}

std::vector<std::optional<StoredState>> RedisStateStore::get_many(
    const std::string& owner, const std::vector<std::string>& ids) {
  if (ids.empty()) return {};
  Command mget = {"MGET"};
  for (const std::string& id : ids) mget.push_back(key(owner, id));
  const Reply r = run1(mget);
  if (r->type != REDIS_REPLY_ARRAY || r->elements != ids.size())
    throw StateStoreUnavailable("redis state store: unexpected MGET reply from " + where_);
  std::vector<std::optional<StoredState>> out;
  for (size_t i = 0; i < ids.size(); ++i) out.push_back(stored_of(r->element[i], owner, ids[i]));
  return out;
}

std::optional<StateMeta> RedisStateStore::stat(const std::string& owner, const std::string& id) {
  return meta_of(run1(meta_read(owner, id)).get(), owner, id);
}

std::vector<std::optional<StateMeta>> RedisStateStore::stat_many(
    const std::string& owner, const std::vector<std::string>& ids) {
  if (ids.empty()) return {};
  std::vector<Command> reads;
  for (const std::string& id : ids) reads.push_back(meta_read(owner, id));
  const std::vector<Reply> replies = run(reads);
  std::vector<std::optional<StateMeta>> out;
  for (size_t i = 0; i < ids.size(); ++i) out.push_back(meta_of(replies[i].get(), owner, ids[i]));
  return out;
}

bool RedisStateStore::erase(const std::string& owner, const std::string& id) {
  const Reply r = run1({"DEL", key(owner, id)});
  return r->type == REDIS_REPLY_INTEGER && r->integer > 0;
}

StateListPage RedisStateStore::list(const std::string& owner, const std::string& after,
                                    size_t limit) {
  const std::string key_prefix = key(owner, "");
  std::vector<std::string> ids;
  for (const std::string& k : scan(owner_pattern(owner))) {
    std::string id = k.substr(key_prefix.size());
    if (id > after && valid_state_id(id)) ids.push_back(std::move(id));
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());  // SCAN may repeat keys
  StateListPage page;
  page.has_more = ids.size() > limit;
  if (ids.size() > limit) ids.resize(limit);
  if (ids.empty()) return page;
  for (std::optional<StateMeta>& meta : stat_many(owner, ids))
    if (meta) page.items.push_back(std::move(*meta));  // else expired or deleted meanwhile
  return page;
}

StateStoreStats RedisStateStore::stats() {
  const auto now = std::chrono::steady_clock::now();
  bool recount;
  {
    std::lock_guard lock(stats_mutex_);
    recount = counted_at_ == std::chrono::steady_clock::time_point{} ||
              now - counted_at_ >= kStatsInterval;
  }
  if (recount) {
    const std::vector<std::string> keys = scan(glob_escape(prefix_) + "*");
    uint64_t bytes = 0;
    constexpr size_t kBatch = 512;
    for (size_t i = 0; i < keys.size(); i += kBatch) {
      std::vector<Command> lens;
      for (size_t j = i; j < std::min(keys.size(), i + kBatch); ++j)
        lens.push_back({"STRLEN", keys[j]});
      for (const Reply& r : run(lens))
        if (r->type == REDIS_REPLY_INTEGER) bytes += uint64_t(r->integer);
    }
    std::lock_guard lock(stats_mutex_);
    counted_at_ = now;
    counted_states_ = keys.size();
    counted_bytes_ = bytes;
  }
  std::lock_guard lock(stats_mutex_);
  return {counted_states_, counted_bytes_, hits_, misses_, 0, corrupted_};
}

}  // namespace rwkv::states
