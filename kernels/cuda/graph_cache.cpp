#include "kernels/cuda/graph_cache.h"

#include "kernels/cuda/cuda_check.h"

namespace rwkv::kernels::cuda {

void GraphCache::run(uint64_t key, const std::function<void()>& ops) {
  ++clock_;
  if (auto it = graphs_.find(key); it != graphs_.end()) {
    it->second.last_use = clock_;
    RWKV_CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream_));
    ++replays_;
    return;
  }
  if (seen_.size() >= kMaxSeen) seen_.clear();
  if (++seen_[key] < 2) {
    ops();
    return;
  }
  seen_.erase(key);
  record(key, ops);
}

void GraphCache::record(uint64_t key, const std::function<void()>& ops) {
  // Thread-local mode: only this thread's calls that are illegal while
  // capturing (a synchronization, a cudaMalloc) fail; other engines' threads
  // are unaffected.
  RWKV_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  try {
    ops();
  } catch (...) {
    cudaStreamEndCapture(stream_, &graph);  // leaves the stream usable
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  RWKV_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  RWKV_CUDA_CHECK(instantiated);
  if (graphs_.size() >= kMaxGraphs) evict_oldest();
  graphs_[key] = {exec, clock_};
  RWKV_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
}

void GraphCache::evict_oldest() {
  auto oldest = graphs_.begin();
  for (auto it = graphs_.begin(); it != graphs_.end(); ++it)
    if (it->second.last_use < oldest->second.last_use) oldest = it;
  cudaGraphExecDestroy(oldest->second.exec);
  graphs_.erase(oldest);
}

void GraphCache::clear() {
  if (!graphs_.empty()) cudaStreamSynchronize(stream_);  // no replay still running
  for (auto& [key, entry] : graphs_) cudaGraphExecDestroy(entry.exec);
  graphs_.clear();
  seen_.clear();
}

}  // namespace rwkv::kernels::cuda
