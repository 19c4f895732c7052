// Recorded work replayed as CUDA graphs, by key (Backend::run_recorded).
//
// A step of the 0.1B model is ~250 launches (kernels and cuBLASLt calls);
// replaying them as one graph saves their launch cost, which matters when
// the step itself is short (rerank queries, small batches). Recording costs
// about as much as running, plus instantiating the graph, so a key is only
// recorded the second time it is seen: shapes that never repeat (packed
// variable-length prefill) run directly and pay nothing.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <unordered_map>

namespace rwkv::kernels::cuda {

class GraphCache {
 public:
  explicit GraphCache(cudaStream_t stream) : stream_(stream) {}
  ~GraphCache() { clear(); }
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // Runs `ops` on the stream: directly, recorded into a graph and launched,
  // or by replaying the key's graph.
  void run(uint64_t key, const std::function<void()>& ops);
  // Drops every graph (the memory they read or write is being released).
  void clear();

  int64_t replays() const { return replays_; }

 private:
  static constexpr size_t kMaxGraphs = 64;     // least recently used dropped beyond
  static constexpr size_t kMaxSeen = 1 << 14;  // keys remembered while not yet recorded

  void record(uint64_t key, const std::function<void()>& ops);
  void evict_oldest();

  struct Entry {
    cudaGraphExec_t exec = nullptr;
    uint64_t last_use = 0;
  };
  cudaStream_t stream_;
  std::unordered_map<uint64_t, Entry> graphs_;
  std::unordered_map<uint64_t, int> seen_;
  uint64_t clock_ = 0;
  int64_t replays_ = 0;
};

}  // namespace rwkv::kernels::cuda
