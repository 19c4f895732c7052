// The decoded-state cache: hits only for the write id it was filled from,
// LRU within its byte budget, erase, and a budget of 0 that keeps nothing.
#include <gtest/gtest.h>

#include "engine/states/decoded_state_cache.h"

namespace rwkv {
namespace {

// A state of `values` float32 values (4 bytes each).
std::shared_ptr<const states::SequenceState> state(size_t values, float fill = 1) {
  auto s = std::make_shared<states::SequenceState>();
  s->shift.assign(values / 2, fill);
  s->wkv.assign(values - values / 2, fill);
  return s;
}

TEST(DecodedStateCache, HitsOnlyForTheRecordItWasFilledFrom) {
  states::DecodedStateCache cache(1 << 20);
  EXPECT_EQ(cache.find("", "a", "w1"), nullptr);
  const auto a = state(100);
  cache.insert("", "a", "w1", a);
  EXPECT_EQ(cache.find("", "a", "w1"), a);
  EXPECT_EQ(cache.find("owner", "a", "w1"), nullptr);  // another owner's "a"
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ(cache.find("", "a", "w2"), nullptr);  // overwritten (by any replica): stale
  EXPECT_EQ(cache.stats().entries, 0u);           // and dropped
  EXPECT_EQ(cache.find("", "a", "w1"), nullptr);
  const states::DecodedStateCacheStats st = cache.stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 4u);
  EXPECT_EQ(st.bytes, 0u);
}

TEST(DecodedStateCache, RecordsWithoutAWriteIdAreNotKept) {
  states::DecodedStateCache cache(1 << 20);
  cache.insert("", "old", "", state(10));
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.find("", "old", ""), nullptr);
}

TEST(DecodedStateCache, EvictsLeastRecentlyUsedWithinTheBudget) {
  states::DecodedStateCache cache(3 * 400);  // three states of 100 values
  for (const char* id : {"a", "b", "c"}) cache.insert("", id, "w", state(100));
  EXPECT_EQ(cache.stats().bytes, 1200u);
  ASSERT_NE(cache.find("", "a", "w"), nullptr);  // a is now the most recent
  cache.insert("", "d", "w", state(100));        // evicts b
  EXPECT_EQ(cache.find("", "b", "w"), nullptr);
  EXPECT_NE(cache.find("", "a", "w"), nullptr);
  EXPECT_NE(cache.find("", "c", "w"), nullptr);
  EXPECT_NE(cache.find("", "d", "w"), nullptr);
  EXPECT_EQ(cache.stats().evictions, 1u);
  cache.insert("", "big", "w", state(400));  // larger than the budget: not kept, nothing evicted
  EXPECT_EQ(cache.find("", "big", "w"), nullptr);
  EXPECT_EQ(cache.stats().entries, 3u);
  cache.insert("", "c", "w2", state(200));  // replaces c, evicts the least recent (a)
  EXPECT_EQ(cache.stats().bytes, 1200u);
  EXPECT_EQ(cache.find("", "a", "w"), nullptr);
  EXPECT_NE(cache.find("", "c", "w2"), nullptr);
}

TEST(DecodedStateCache, EraseAndAZeroBudget) {
  states::DecodedStateCache cache(1 << 20);
  cache.insert("", "a", "w", state(10));
  cache.erase("", "a");
  cache.erase("", "never");
  EXPECT_EQ(cache.find("", "a", "w"), nullptr);
  EXPECT_EQ(cache.stats().entries, 0u);
  states::DecodedStateCache off(0);
  off.insert("", "a", "w", state(10));
  EXPECT_EQ(off.find("", "a", "w"), nullptr);
  EXPECT_EQ(off.stats().bytes, 0u);
}

}  // namespace
}  // namespace rwkv
