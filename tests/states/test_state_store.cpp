// The state stores behind one interface: the same contract for memory, disk
// and Redis (a real redis-server started here on a free loopback port;
// skipped loudly when the binary is missing), then what each adds: LRU
// eviction within the budget (memory), restart and corruption handling
// (disk), sharing and outages (Redis).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "engine/states/disk_state_store.h"
#include "engine/states/memory_state_store.h"
#include "engine/states/redis_state_store.h"
#include "engine/states/state_store.h"

namespace rwkv {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr states::StateShape kShape{1, 1, 64};

std::shared_ptr<const std::string> blob(uint32_t seed, uint64_t tokens = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  states::SequenceState st;
  st.shift.resize(2 * 64);
  st.wkv.resize(64 * 64);
  for (float& x : st.shift) x = d(rng);
  for (float& x : st.wkv) x = d(rng);
  io::ModelFingerprint f;
  f.bytes.fill(3);
  return std::make_shared<const std::string>(
      states::encode_state(st, f, kShape, states::StateDtype::kFloat32, tokens));
}
const uint64_t kBlobBytes = states::state_blob_size(kShape, states::StateDtype::kFloat32);

states::StateMeta meta(std::string owner, std::string id, int64_t expires_ms = 0) {
  states::StateMeta m;
  m.owner = std::move(owner);
  m.id = std::move(id);
  m.created_ms = states::unix_now_ms();
  m.expires_ms = expires_ms;
  return m;
}

// prefix + i. Not `"s" + std::to_string(i)`: GCC 12 at -O3 reports a false
// -Wrestrict overlap in that concatenation here (GCC bug 105329).
std::string numbered(const char* prefix, int i) {
  char out[32];
  std::snprintf(out, sizeof(out), "%s%d", prefix, i);
  return out;
}

fs::path temp_dir(const std::string& tag) {
  const fs::path p =
      fs::temp_directory_path() / ("rwkv-state-test-" + tag + "-" + std::to_string(::getpid()) +
                                   "-" + std::to_string(std::random_device{}()));
  fs::remove_all(p);
  return p;
}

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

std::string redis_server_binary() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"})
    if (fs::exists(p)) return p;
  return "";
}

// A throwaway redis-server: loopback only, no persistence, in a temp folder.
class RedisProcess {
 public:
  explicit RedisProcess(int port = 0) : port_(port ? port : free_port()), dir_(temp_dir("redis")) {
    fs::create_directories(dir_);
    const std::string binary = redis_server_binary(), port_arg = std::to_string(port_),
                      log = (dir_ / "redis.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {  // only async-signal-safe calls until exec
      ::execl(binary.c_str(), "redis-server", "--port", port_arg.c_str(), "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--dir", dir_.c_str(), "--logfile", log.c_str(),
              nullptr);
      ::_exit(127);
    }
    // Ready when a store can PING it.
    states::RedisStateStore probe(url(), "probe:", 200ms);
    for (int i = 0; i < 100; ++i) {
      try {
        probe.check_available();
        return;
      } catch (const states::StateStoreUnavailable&) {
        std::this_thread::sleep_for(50ms);
      }
    }
    ADD_FAILURE() << "redis-server did not start on port " << port_;
  }
  ~RedisProcess() { stop(); }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

 private:
  int port_;
  fs::path dir_;
  pid_t pid_ = -1;
};

#define RWKV_REQUIRE_REDIS()                                                              \
  do {                                                                                    \
    if (redis_server_binary().empty())                                                    \
      GTEST_SKIP() << "\n\n*** redis-server NOT FOUND (apt-get install redis-server, or " \
                      "scripts/setup.sh); "                                               \
                      "Redis state store tests SKIPPED ***\n";                            \
  } while (0)

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
