// What the Redis state store adds to the common contract: URLs, states shared
// by two stores, outages and reconnection; and the record framing of a stored
// state with its metadata.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "engine/states/redis_state_store.h"
#include "tests/states/state_store_test_helpers.h"

namespace rwkv {
namespace {

using namespace test;

// ---- Redis: shared by processes, outages ----

TEST(StateStoreRedis, UrlParsing) {
  states::RedisAddress a = states::parse_redis_url("redis://127.0.0.1:6380/2");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 6380);
  EXPECT_EQ(a.db, 2);
  a = states::parse_redis_url("redis://user:p%40ss@cache.local");
  EXPECT_EQ(a.user, "user");
  EXPECT_EQ(a.password, "p@ss");
  EXPECT_EQ(a.host, "cache.local");
  EXPECT_EQ(a.port, 6379);
  a = states::parse_redis_url("redis://:secret@[::1]:7000");
  EXPECT_EQ(a.password, "secret");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 7000);
  for (const char* bad : {"http://x", "redis://h:port", "redis://h:70000", "redis://h/db"})
    EXPECT_THROW(states::parse_redis_url(bad), std::invalid_argument) << bad;
}

TEST(StateStoreRedis, TwoStoresShareStates) {
  RWKV_REQUIRE_REDIS();
  RedisProcess redis;
  states::RedisStateStore a(redis.url(), "shared:"), b(redis.url(), "shared:"),
      other_prefix(redis.url(), "other:");
  ASSERT_TRUE(a.put(meta("k", "doc"), blob(1), false));
  EXPECT_EQ(*b.get("k", "doc")->blob, *blob(1));
  EXPECT_FALSE(b.put(meta("k", "doc"), blob(2), false));
  EXPECT_FALSE(other_prefix.get("k", "doc"));
  EXPECT_TRUE(b.erase("k", "doc"));
  EXPECT_FALSE(a.get("k", "doc"));
}

TEST(StateStoreRedis, OutageIsUnavailableAndReconnects) {
  RWKV_REQUIRE_REDIS();
  auto redis = std::make_unique<RedisProcess>();
  const int port = redis->port();
  states::RedisStateStore s(redis->url(), "t:", 500ms);
  ASSERT_TRUE(s.put(meta("", "a"), blob(1), false));
  redis->stop();
  EXPECT_THROW(s.get("", "a"), states::StateStoreUnavailable);
  EXPECT_THROW(s.put(meta("", "b"), blob(1), false), states::StateStoreUnavailable);
  EXPECT_THROW(s.check_available(), states::StateStoreUnavailable);
  redis = std::make_unique<RedisProcess>(port);  // back, empty (no persistence)
  EXPECT_NO_THROW(s.check_available());
  EXPECT_FALSE(s.get("", "a"));
  EXPECT_TRUE(s.put(meta("", "b"), blob(1), false));

  states::RedisStateStore nowhere("redis://127.0.0.1:" + std::to_string(free_port()), "t:", 300ms);
  EXPECT_THROW(nowhere.stat("", "a"), states::StateStoreUnavailable);
}

TEST(StateStoreRecord, RoundTripAndFraming) {
  states::StateMeta m = meta("owner", "doc", 1234);
  const auto b = blob(9, 99);
  const std::string rec = states::encode_state_record(m, *b);
  std::string_view view;
  const states::StateMeta back = states::decode_state_record(rec, &view);
  EXPECT_EQ(back.owner, "owner");
  EXPECT_EQ(back.id, "doc");
  EXPECT_EQ(back.expires_ms, 1234);
  EXPECT_EQ(back.info.tokens, 99u);
  EXPECT_EQ(view, *b);
  // The metadata alone from a prefix (Redis listing).
  EXPECT_EQ(states::decode_state_record(std::string_view(rec).substr(0, 600)).info.bytes,
            b->size());
  EXPECT_THROW(states::decode_state_record(std::string_view(rec).substr(0, rec.size() - 1), &view),
               std::runtime_error);
  std::string bad = rec;
  bad[20] ^= 1;  // inside the metadata JSON
  EXPECT_THROW(states::decode_state_record(bad, &view), std::runtime_error);
  m.write_id = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(states::decode_state_record(states::encode_state_record(m, *b)).write_id, m.write_id);
}

// Records written before write ids existed still load, with none.
TEST(StateStoreRecord, RecordsWithoutAWriteIdLoad) {
  const auto b = blob(10);
  const std::string json = R"({"owner":"","id":"old","created_ms":1,"expires_ms":0,"bytes":)" +
                           std::to_string(b->size()) + "}";
  std::string rec = "RWKVSREC";
  for (uint32_t v : {1u, uint32_t(json.size())}) rec.append(reinterpret_cast<const char*>(&v), 4);
  rec += json;
  const uint32_t crc = states::crc32_of(json);
  rec.append(reinterpret_cast<const char*>(&crc), 4);
  rec += *b;
  std::string_view view;
  const states::StateMeta m = states::decode_state_record(rec, &view);
  EXPECT_EQ(m.id, "old");
  EXPECT_EQ(m.write_id, "");
  EXPECT_EQ(view, *b);
}

}  // namespace
}  // namespace rwkv
