// Prometheus metrics of the server (prometheus-cpp), served at GET /metrics.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "engine/states/decoded_state_cache.h"
#include "engine/states/state_store.h"

namespace rwkv::server {

class Metrics {
 public:
  Metrics();

  // One finished HTTP request.
  void observe_request(const std::string& route, int status, double seconds);
  // One engine step.
  void observe_step(int sequences, int tokens, double seconds);
  void set_queue(size_t requests, size_t tokens);

  // Where the state store's numbers come from; read at every serialize().
  void set_state_source(std::function<states::StateStoreStats()> source) {
    state_source_ = std::move(source);
  }

  // Where the decoded-state cache's numbers come from; read at every serialize().
  void set_state_cache_source(std::function<states::DecodedStateCacheStats()> source) {
    cache_source_ = std::move(source);
  }
  // The state bytes one request read from the store (its cache misses).
  void observe_state_fetch(uint64_t bytes);

  // The text exposition format.
  std::string serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Gauge& queue_requests_;
  prometheus::Gauge& queue_tokens_;
  prometheus::Histogram& step_sequences_;
  prometheus::Histogram& step_tokens_;
  prometheus::Histogram& step_seconds_;
  prometheus::Counter& tokens_processed_;
  std::function<states::StateStoreStats()> state_source_;
  prometheus::Gauge& states_stored_;
  prometheus::Gauge& state_bytes_;
  prometheus::Counter& state_hits_;
  prometheus::Counter& state_misses_;
  prometheus::Counter& state_evictions_;
  prometheus::Counter& state_corrupted_;
  std::function<states::DecodedStateCacheStats()> cache_source_;
  prometheus::Gauge& cache_entries_;
  prometheus::Gauge& cache_bytes_;
  prometheus::Counter& cache_hits_;
  prometheus::Counter& cache_misses_;
  prometheus::Counter& cache_evictions_;
  prometheus::Histogram& fetch_bytes_;
  mutable std::mutex state_mutex_;
  mutable states::StateStoreStats state_last_;         // counters already exported
  mutable states::DecodedStateCacheStats cache_last_;  // counters already exported
  void update_state_metrics() const;
};

}  // namespace rwkv::server
