// What the memory and disk state stores add to the common contract: LRU
// eviction within the budget (memory), restart and corruption handling and
// atomic files (disk).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/states/disk_state_store.h"
#include "engine/states/memory_state_store.h"
#include "tests/states/state_store_test_helpers.h"

namespace rwkv {
namespace {

using namespace test;

// ---- Memory: LRU within the budget ----

TEST(StateStoreMemory, EvictsLeastRecentlyUsedWithinTheBudget) {
  states::MemoryStateStore s(kBlobBytes * 5 / 2);  // room for two states
  ASSERT_TRUE(s.put(meta("", "a"), blob(1), false));
  ASSERT_TRUE(s.put(meta("", "b"), blob(2), false));
  ASSERT_TRUE(s.get("", "a"));  // a is now more recent than b
  ASSERT_TRUE(s.put(meta("", "c"), blob(3), false));
  EXPECT_FALSE(s.stat("", "b"));
  EXPECT_TRUE(s.stat("", "a"));
  EXPECT_TRUE(s.stat("", "c"));
  states::StateStoreStats st = s.stats();
  EXPECT_EQ(st.states, 2u);
  EXPECT_EQ(st.evictions, 1u);
  EXPECT_LE(st.bytes, s.max_bytes());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(s.put(meta("o", "n" + std::to_string(i)), blob(4), false));
  st = s.stats();
  EXPECT_EQ(st.states, 2u);
  EXPECT_EQ(st.evictions, 11u);
  EXPECT_LE(st.bytes, s.max_bytes());
  states::MemoryStateStore tiny(kBlobBytes - 1);
  EXPECT_THROW(tiny.put(meta("", "big"), blob(1), false), states::StateStoreFull);
}

// ---- Disk: restarts, corruption, atomic files ----

TEST(StateStoreDisk, RestartKeepsEveryState) {
  const fs::path dir = temp_dir("restart");
  {
    states::DiskStateStore s(dir, 0);
    EXPECT_FALSE(fs::exists(dir));  // created with the first state only
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(s.put(meta(i % 2 ? "k1" : "", numbered("s", i)), blob(i), false));
  }
  states::DiskStateStore again(dir, 0);
  EXPECT_EQ(again.skipped_at_start(), 0u);
  EXPECT_EQ(again.stats().states, 5u);
  for (int i = 0; i < 5; ++i) {
    const auto got = again.get(i % 2 ? "k1" : "", "s" + std::to_string(i));
    ASSERT_TRUE(got) << i;
    EXPECT_EQ(*got->blob, *blob(i));
  }
  EXPECT_EQ(again.list("k1", "", 10).items.size(), 2u);
  fs::remove_all(dir);
}

TEST(StateStoreDisk, CorruptedFilesAreSkippedAndTempFilesRemoved) {
  const fs::path dir = temp_dir("corrupt");
  {
    states::DiskStateStore s(dir, 0);
    for (const char* id : {"good", "flipped", "truncated", "renamed"})
      ASSERT_TRUE(s.put(meta("", id), blob(1), false));
  }
  const fs::path folder = dir / "_";
  {
    std::fstream f(folder / "flipped.state", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3000);
    f.put('\x55');
  }
  fs::resize_file(folder / "truncated.state", 500);
  fs::rename(folder / "renamed.state", folder / "other-name.state");  // holds another id
  std::ofstream(folder / "garbage.state") << "not a state";
  std::ofstream(folder / "0123abcd.tmp") << "an interrupted write";
  std::ofstream(dir / "README") << "ignored";

  states::DiskStateStore s(dir, 0);
  EXPECT_EQ(s.skipped_at_start(), 4u);
  EXPECT_EQ(s.stats().corrupted, 4u);  // rwkv_emb_state_corrupted_total
  EXPECT_FALSE(fs::exists(folder / "0123abcd.tmp"));
  EXPECT_TRUE(fs::exists(folder / "flipped.state"));  // left for inspection
  const auto page = s.list("", "", 10);
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0].id, "good");
  EXPECT_FALSE(s.get("", "flipped"));
  // A valid put replaces a corrupted file.
  EXPECT_TRUE(s.put(meta("", "flipped"), blob(2), false));
  EXPECT_EQ(*s.get("", "flipped")->blob, *blob(2));
  fs::remove_all(dir);
}

TEST(StateStoreDisk, CorruptionAfterStartIsAMiss) {
  const fs::path dir = temp_dir("late");
  states::DiskStateStore s(dir, 0);
  ASSERT_TRUE(s.put(meta("", "a"), blob(1), false));
  {
    std::fstream f(dir / "_" / "a.state", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('\x01');
  }
  EXPECT_FALSE(s.get("", "a"));
  EXPECT_EQ(s.stats().states, 0u);
  fs::remove_all(dir);
}

TEST(StateStoreDisk, AStateStoredWhileACorruptedOneIsReadIsKept) {
  // The order made certain: the state's file is replaced by a FIFO, whose
  // read waits until the test writes garbage into it. Meanwhile a put stores
  // a good state under the same id; the failed read must not drop it.
  const fs::path dir = temp_dir("replaced");
  states::DiskStateStore s(dir, 0);
  ASSERT_TRUE(s.put(meta("", "a"), blob(1), false));
  const fs::path file = dir / "_" / "a.state", held = dir / "_" / "held.fifo";
  fs::remove(file);
  ASSERT_EQ(::mkfifo(file.c_str(), 0644), 0);
  fs::create_hard_link(file, held);  // the FIFO stays reachable once the put replaces it

  std::optional<states::StoredState> read;
  std::thread reader([&] { read = s.get("", "a"); });
  int fd = -1;  // opens once the reader has the FIFO open
  for (int i = 0; i < 1000 && fd < 0; ++i) {
    fd = ::open(held.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) std::this_thread::sleep_for(10ms);
  }
  EXPECT_GE(fd, 0) << "the reader never opened the state's file";
  if (fd < 0) fd = ::open(held.c_str(), O_RDWR | O_CLOEXEC);  // never waits: the test ends
  EXPECT_TRUE(s.put(meta("", "a"), blob(2), true));
  EXPECT_EQ(::write(fd, "garbage", 7), 7);
  ::close(fd);
  reader.join();
  fs::remove(held);

  EXPECT_FALSE(read);
  const auto got = s.get("", "a");
  ASSERT_TRUE(got) << "the failed read dropped the state stored meanwhile";
  EXPECT_EQ(*got->blob, *blob(2));
  EXPECT_EQ(s.stats().states, 1u);
  EXPECT_EQ(s.stats().bytes, kBlobBytes);
  fs::remove_all(dir);
}

TEST(StateStoreDisk, ConcurrentGetsNeverDropAStateStoredMeanwhile) {
  // Writers delete and store their own states again and again, readers read
  // every state meanwhile; a read often finds the file deleted, and must not
  // then drop the state stored after it. The last put of each state wins,
  // nothing stored is lost, and the byte count is that of the stored blobs,
  // in this process and in the next.
  const fs::path dir = temp_dir("concurrent");
  states::DiskStateStore s(dir, 0);
  constexpr int kWriters = 3, kStatesEach = 3, kRounds = 15;
  const auto id_of = [](int w, int k) { return std::to_string(w * kStatesEach + k); };
  const auto seed_of = [](int w, int k, int round) {
    return uint32_t((w * kStatesEach + k) * 1000 + round);
  };
  std::atomic<bool> writing{true};
  std::atomic<int> lost{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < kRounds; ++round) {
        for (int k = 0; k < kStatesEach; ++k) {
          // Only this thread writes this id: what it stored must still be there.
          if (round > 0 && !s.erase("", id_of(w, k))) ++lost;
          if (!s.put(meta("", id_of(w, k)), blob(seed_of(w, k, round) + 500), false)) ++wrong;
          s.put(meta("", id_of(w, k)), blob(seed_of(w, k, round)), true);
        }
      }
    });
  }
  for (int r = 0; r < 4; ++r) {
    threads.emplace_back([&] {
      while (writing) {
        for (int i = 0; i < kWriters * kStatesEach; ++i) {
          const std::string id = std::to_string(i);
          const auto got = s.get("", id);
          if (got && (got->meta.id != id || got->blob->size() != kBlobBytes)) ++wrong;
        }
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[size_t(w)].join();
  writing = false;
  for (auto& t : threads)
    if (t.joinable()) t.join();

  EXPECT_EQ(lost, 0) << "states deleted by a concurrent get";
  EXPECT_EQ(wrong, 0);
  for (int w = 0; w < kWriters; ++w) {
    for (int k = 0; k < kStatesEach; ++k) {
      const auto got = s.get("", id_of(w, k));
      ASSERT_TRUE(got) << id_of(w, k);
      EXPECT_EQ(*got->blob, *blob(seed_of(w, k, kRounds - 1))) << id_of(w, k);
    }
  }
  const uint64_t stored = kWriters * kStatesEach;
  const states::StateStoreStats st = s.stats();
  EXPECT_EQ(st.states, stored);
  EXPECT_EQ(st.bytes, stored * kBlobBytes);
  EXPECT_EQ(st.corrupted, 0u) << "a concurrent delete is no corruption";
  states::DiskStateStore again(dir, 0);
  EXPECT_EQ(again.stats().states, stored);
  EXPECT_EQ(again.stats().bytes, stored * kBlobBytes);
  fs::remove_all(dir);
}

TEST(StateStoreDisk, BudgetRefusesNewStates) {
  const fs::path dir = temp_dir("budget");
  states::DiskStateStore s(dir, kBlobBytes * 2);
  ASSERT_TRUE(s.put(meta("", "a"), blob(1), false));
  ASSERT_TRUE(s.put(meta("", "b"), blob(2), false));
  EXPECT_THROW(s.put(meta("", "c"), blob(3), false), states::StateStoreFull);
  EXPECT_TRUE(s.put(meta("", "b"), blob(3), true));  // replacing fits
  EXPECT_TRUE(s.erase("", "a"));
  EXPECT_TRUE(s.put(meta("", "c"), blob(3), false));
  EXPECT_FALSE(fs::exists(dir / "_" / "a.state"));
  fs::remove_all(dir);
}

TEST(StateStoreDisk, UnwritableFolderIsUnavailable) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes anywhere";
  const fs::path dir = temp_dir("ro");
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
  states::DiskStateStore s(dir / "sub", 0);
  EXPECT_THROW(s.put(meta("", "a"), blob(1), false), states::StateStoreUnavailable);
  fs::permissions(dir, fs::perms::owner_all);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rwkv
