// The state stores behind one interface: the same contract for memory, disk
// and Redis (a real redis-server started here on a free loopback port;
// skipped loudly when the binary is missing). What each store adds:
// test_state_store_memory_disk.cpp and test_state_store_redis.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/states/disk_state_store.h"
#include "engine/states/memory_state_store.h"
#include "engine/states/redis_state_store.h"
#include "tests/states/state_store_test_helpers.h"

namespace rwkv {
namespace {

using namespace test;

// ---- The common contract ----

class StateStoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string kind = GetParam();
    if (kind == "memory") {
      store_ = std::make_unique<states::MemoryStateStore>(uint64_t(1) << 30);
    } else if (kind == "disk") {
      dir_ = temp_dir("disk");
      store_ = std::make_unique<states::DiskStateStore>(dir_, 0);
    } else {
      RWKV_REQUIRE_REDIS();
      redis_ = std::make_unique<RedisProcess>();
      store_ = std::make_unique<states::RedisStateStore>(redis_->url(), "test:");
    }
  }
  void TearDown() override {
    store_.reset();
    redis_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::unique_ptr<states::StateStore> store_;
  std::unique_ptr<RedisProcess> redis_;
  fs::path dir_;
};

TEST_P(StateStoreContract, PutGetStatErase) {
  states::StateStore& s = *store_;
  EXPECT_EQ(s.kind(), GetParam());
  const auto b = blob(1, 42);
  EXPECT_TRUE(s.put(meta("", "doc-1"), b, false));
  const auto got = s.get("", "doc-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got->blob, *b);
  EXPECT_EQ(got->meta.id, "doc-1");
  EXPECT_EQ(got->meta.info.tokens, 42u);
  EXPECT_EQ(got->meta.info.bytes, b->size());
  const auto st = s.stat("", "doc-1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->info.bytes, b->size());
  EXPECT_EQ(st->info.shape, kShape);
  EXPECT_EQ(st->expires_ms, 0);
  EXPECT_FALSE(s.get("", "doc-2"));
  EXPECT_TRUE(s.erase("", "doc-1"));
  EXPECT_FALSE(s.erase("", "doc-1"));
  EXPECT_FALSE(s.get("", "doc-1"));
  EXPECT_FALSE(s.stat("", "doc-1"));
}

TEST_P(StateStoreContract, CreateOnlyKeepsTheExistingStateAndReplaceReplaces) {
  states::StateStore& s = *store_;
  ASSERT_TRUE(s.put(meta("", "x"), blob(1), false));
  EXPECT_FALSE(s.put(meta("", "x"), blob(2), false));
  EXPECT_EQ(*s.get("", "x")->blob, *blob(1));
  EXPECT_TRUE(s.put(meta("", "x"), blob(2), true));
  EXPECT_EQ(*s.get("", "x")->blob, *blob(2));
  EXPECT_EQ(s.list("", "", 10).items.size(), 1u);
}

// Every put gives the record a new write id (what the decoded-state cache
// keys on); get, stat and the batch reads agree on it.
TEST_P(StateStoreContract, EveryPutHasANewWriteId) {
  states::StateStore& s = *store_;
  ASSERT_TRUE(s.put(meta("", "x"), blob(1), false));
  const std::string first = s.stat("", "x")->write_id;
  EXPECT_EQ(first.size(), 32u);
  EXPECT_EQ(s.get("", "x")->meta.write_id, first);
  ASSERT_TRUE(s.put(meta("", "x"), blob(1), true));  // the same bytes again
  const std::string second = s.stat("", "x")->write_id;
  EXPECT_NE(second, first);
  EXPECT_EQ(s.get("", "x")->meta.write_id, second);
  ASSERT_TRUE(s.put(meta("", "y"), blob(2), false));
  const auto metas = s.stat_many("", {"y", "missing", "x"});
  ASSERT_EQ(metas.size(), 3u);
  EXPECT_EQ(metas[0]->write_id, s.stat("", "y")->write_id);
  EXPECT_FALSE(metas[1]);
  EXPECT_EQ(metas[2]->write_id, second);
}

TEST_P(StateStoreContract, GetManyReadsEveryStateInOrder) {
  states::StateStore& s = *store_;
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(numbered("s", i));
    ASSERT_TRUE(s.put(meta("ab", ids.back()), blob(uint32_t(i), i), false));
  }
  ids.insert(ids.begin() + 5, "missing");
  const states::StateStoreStats before = s.stats();
  const auto got = s.get_many("ab", ids);
  ASSERT_EQ(got.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == "missing") {
      EXPECT_FALSE(got[i]);
      continue;
    }
    ASSERT_TRUE(got[i]) << ids[i];
    EXPECT_EQ(got[i]->meta.id, ids[i]);
    EXPECT_EQ(*got[i]->blob, *s.get("ab", ids[i])->blob);
  }
  EXPECT_EQ(s.stats().hits, before.hits + 20 + 20);  // get_many counts like get
  EXPECT_EQ(s.stats().misses, before.misses + 1);
  EXPECT_TRUE(s.get_many("ab", {}).empty());
  EXPECT_TRUE(s.get_many("other", {"s1"}).front() == std::nullopt);
}

TEST_P(StateStoreContract, OwnersNeverSeeEachOther) {
  states::StateStore& s = *store_;
  ASSERT_TRUE(s.put(meta("aaaa", "shared-name"), blob(1), false));
  EXPECT_FALSE(s.get("bbbb", "shared-name"));
  EXPECT_FALSE(s.get("", "shared-name"));
  EXPECT_FALSE(s.stat("bbbb", "shared-name"));
  EXPECT_FALSE(s.erase("bbbb", "shared-name"));
  EXPECT_TRUE(s.list("bbbb", "", 10).items.empty());
  // The same id is free for another owner, and independent.
  EXPECT_TRUE(s.put(meta("bbbb", "shared-name"), blob(2), false));
  EXPECT_EQ(*s.get("aaaa", "shared-name")->blob, *blob(1));
  EXPECT_EQ(*s.get("bbbb", "shared-name")->blob, *blob(2));
  EXPECT_TRUE(s.erase("bbbb", "shared-name"));
  EXPECT_TRUE(s.get("aaaa", "shared-name"));
}

TEST_P(StateStoreContract, ListIsSortedAndPaginated) {
  states::StateStore& s = *store_;
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back("id-" + std::to_string(6 - i));
  for (const auto& id : ids) ASSERT_TRUE(s.put(meta("owner1", id), blob(1), false));
  ASSERT_TRUE(s.put(meta("owner2", "id-9"), blob(1), false));
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  for (;; ++pages) {
    const states::StateListPage page = s.list("owner1", after, 3);
    for (const auto& m : page.items) seen.push_back(m.id);
    if (!page.has_more) break;
    after = page.items.back().id;
  }
  EXPECT_EQ(pages, 2);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(seen, ids);
  EXPECT_TRUE(s.list("owner1", "id-6", 3).items.empty());
}

TEST_P(StateStoreContract, ExpiredStatesAreGone) {
  states::StateStore& s = *store_;
  ASSERT_TRUE(s.put(meta("", "short", states::unix_now_ms() + 300), blob(1), false));
  ASSERT_TRUE(s.put(meta("", "long", states::unix_now_ms() + 60'000), blob(2), false));
  ASSERT_TRUE(s.get("", "short"));
  EXPECT_GT(s.stat("", "long")->expires_ms, states::unix_now_ms());
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(s.get("", "short"));
  EXPECT_FALSE(s.stat("", "short"));
  EXPECT_EQ(s.list("", "", 10).items.size(), 1u);
  // An expired id is free again.
  EXPECT_TRUE(s.put(meta("", "short"), blob(3), false));
}

TEST_P(StateStoreContract, InvalidIdsOwnersAndBlobsAreRefused) {
  states::StateStore& s = *store_;
  for (const std::string& id :
       std::vector<std::string>{"", ".", "..", "a/b", "../x", "a b", std::string(129, 'a'), "é"})
    EXPECT_THROW(s.put(meta("", id), blob(1), false), std::invalid_argument) << id;
  EXPECT_THROW(s.put(meta("a_b", "x"), blob(1), false), std::invalid_argument);
  EXPECT_THROW(s.put(meta("../up", "x"), blob(1), false), std::invalid_argument);
  auto truncated = std::make_shared<const std::string>(blob(1)->substr(0, 100));
  EXPECT_THROW(s.put(meta("", "x"), truncated, false), std::invalid_argument);
  std::string corrupt = *blob(1);
  corrupt[200] ^= 1;
  EXPECT_THROW(s.put(meta("", "x"), std::make_shared<const std::string>(corrupt), false),
               std::invalid_argument);
  EXPECT_FALSE(s.get("", "x"));
  EXPECT_TRUE(s.put(meta("", std::string(128, 'a')), blob(1), false));
  EXPECT_TRUE(s.put(meta("", "A.b_c-9"), blob(1), false));
}

TEST_P(StateStoreContract, StatsCountStatesBytesHitsAndMisses) {
  states::StateStore& s = *store_;
  ASSERT_TRUE(s.put(meta("", "a"), blob(1), false));
  ASSERT_TRUE(s.put(meta("o", "b"), blob(2), false));
  s.get("", "a");
  s.get("", "a");
  s.get("", "b");
  const states::StateStoreStats st = s.stats();
  EXPECT_EQ(st.states, 2u);
  EXPECT_GE(st.bytes, 2 * kBlobBytes);
  EXPECT_LE(st.bytes, 2 * kBlobBytes + 1024);  // Redis counts records (blob + metadata)
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 1u);
}

TEST_P(StateStoreContract, ConcurrentClients) {
  states::StateStore& s = *store_;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string id = std::to_string(
            t * 100 + i);  // (string + string trips a GCC 12 -Wrestrict false positive)
        if (!s.put(meta("", id), blob(uint32_t(i)), false)) ++failures;
        const auto got = s.get("", id);
        if (!got || *got->blob != *blob(uint32_t(i))) ++failures;
        if (i % 2 && !s.erase("", id)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(s.list("", "", 100).items.size(), 20u);
}

INSTANTIATE_TEST_SUITE_P(StateStore, StateStoreContract,
                         ::testing::Values("memory", "disk", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace rwkv
