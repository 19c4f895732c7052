// Helpers the state store tests share: small valid blobs and their metadata,
// scratch folders, and a throwaway redis-server (RWKV_REQUIRE_REDIS() skips
// loudly when there is no binary).
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "engine/io/fingerprint.h"
#include "engine/states/redis_state_store.h"
#include "engine/states/state_blob.h"
#include "engine/states/state_store.h"

namespace rwkv::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline constexpr states::StateShape kShape{1, 1, 64};

inline std::shared_ptr<const std::string> blob(uint32_t seed, uint64_t tokens = 7) {
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
inline const uint64_t kBlobBytes = states::state_blob_size(kShape, states::StateDtype::kFloat32);

inline states::StateMeta meta(std::string owner, std::string id, int64_t expires_ms = 0) {
  states::StateMeta m;
  m.owner = std::move(owner);
  m.id = std::move(id);
  m.created_ms = states::unix_now_ms();
  m.expires_ms = expires_ms;
  return m;
}

// prefix + i. Not `"s" + std::to_string(i)`: GCC 12 at -O3 reports a false
// -Wrestrict overlap in that concatenation here (GCC bug 105329).
inline std::string numbered(const char* prefix, int i) {
  char out[32];
  std::snprintf(out, sizeof(out), "%s%d", prefix, i);
  return out;
}

inline fs::path temp_dir(const std::string& tag) {
  const fs::path p =
      fs::temp_directory_path() / ("rwkv-state-test-" + tag + "-" + std::to_string(::getpid()) +
                                   "-" + std::to_string(std::random_device{}()));
  fs::remove_all(p);
  return p;
}

inline int free_port() {
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

inline std::string redis_server_binary() {
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

}  // namespace rwkv::test

#define RWKV_REQUIRE_REDIS()                                                              \
  do {                                                                                    \
    if (redis_server_binary().empty())                                                    \
      GTEST_SKIP() << "\n\n*** redis-server NOT FOUND (apt-get install redis-server, or " \
                      "scripts/setup.sh); "                                               \
                      "Redis state store tests SKIPPED ***\n";                            \
  } while (0)
