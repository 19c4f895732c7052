#include "server/metrics.h"

#include <prometheus/text_serializer.h>

#include <optional>

namespace rwkv::server {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

namespace {

Histogram::BucketBoundaries exponential(double start, double factor, int count) {
  Histogram::BucketBoundaries b;
  for (double v = start; count-- > 0; v *= factor) b.push_back(v);
  return b;
}

// Sources count from their start; a counter takes the growth.
void advance(prometheus::Counter& counter, uint64_t now, uint64_t last) {
  if (now > last) counter.Increment(double(now - last));
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(BuildCounter()
                    .Name("rwkv_emb_http_requests_total")
                    .Help("HTTP requests by route and status")
                    .Register(*registry_)),
      latency_(BuildHistogram()
                   .Name("rwkv_emb_http_request_duration_seconds")
                   .Help("HTTP request latency by route")
                   .Register(*registry_)),
      queue_requests_(BuildGauge()
                          .Name("rwkv_emb_queue_requests")
                          .Help("Requests accepted and not yet finished")
                          .Register(*registry_)
                          .Add({})),
      queue_tokens_(BuildGauge()
                        .Name("rwkv_emb_queue_tokens")
                        .Help("Tokens of the requests accepted and not yet finished")
                        .Register(*registry_)
                        .Add({})),
      step_sequences_(BuildHistogram()
                          .Name("rwkv_emb_step_sequences")
                          .Help("Sequences per engine step (batch size)")
                          .Register(*registry_)
                          .Add({}, exponential(1, 2, 10))),
      step_tokens_(BuildHistogram()
                       .Name("rwkv_emb_step_tokens")
                       .Help("Tokens per engine step")
                       .Register(*registry_)
                       .Add({}, exponential(16, 2, 12))),
      step_seconds_(BuildHistogram()
                        .Name("rwkv_emb_step_duration_seconds")
                        .Help("Engine step time")
                        .Register(*registry_)
                        .Add({}, exponential(0.001, 2, 14))),
      tokens_processed_(BuildCounter()
                            .Name("rwkv_emb_tokens_processed_total")
                            .Help("Tokens run through the model")
                            .Register(*registry_)
                            .Add({})),
      states_stored_(BuildGauge()
                         .Name("rwkv_emb_states_stored")
                         .Help("Cached document states in the state store")
                         .Register(*registry_)
                         .Add({})),
      state_bytes_(BuildGauge()
                       .Name("rwkv_emb_state_bytes")
                       .Help("Bytes of the cached document states in the state store")
                       .Register(*registry_)
                       .Add({})),
      state_hits_(BuildCounter()
                      .Name("rwkv_emb_state_hits_total")
                      .Help("Cached states found when read (rerank, download)")
                      .Register(*registry_)
                      .Add({})),
      state_misses_(
          BuildCounter()
              .Name("rwkv_emb_state_misses_total")
              .Help(
                  "Cached states asked for and not found (missing, expired, evicted, other owner)")
              .Register(*registry_)
              .Add({})),
      state_evictions_(BuildCounter()
                           .Name("rwkv_emb_state_evictions_total")
                           .Help("Cached states evicted to stay within the store's byte budget")
                           .Register(*registry_)
                           .Add({})),
      state_corrupted_(BuildCounter()
                           .Name("rwkv_emb_state_corrupted_total")
                           .Help("Stored states found corrupted and skipped (disk: at start or "
                                 "when read; redis: when read); the log names each")
                           .Register(*registry_)
                           .Add({})),
      cache_entries_(BuildGauge()
                         .Name("rwkv_emb_state_cache_entries")
                         .Help("Decoded states held in memory in front of the state store")
                         .Register(*registry_)
                         .Add({})),
      cache_bytes_(BuildGauge()
                       .Name("rwkv_emb_state_cache_bytes")
                       .Help("Bytes of the decoded states held (float32 values)")
                       .Register(*registry_)
                       .Add({})),
      cache_hits_(BuildCounter()
                      .Name("rwkv_emb_state_cache_hits_total")
                      .Help("Rerank states taken decoded from the cache, without a store read")
                      .Register(*registry_)
                      .Add({})),
      cache_misses_(BuildCounter()
                        .Name("rwkv_emb_state_cache_misses_total")
                        .Help("Rerank states not in the cache (or overwritten since): read from "
                              "the store and decoded")
                        .Register(*registry_)
                        .Add({})),
      cache_evictions_(BuildCounter()
                           .Name("rwkv_emb_state_cache_evictions_total")
                           .Help("Decoded states dropped to stay within --state-cache-bytes")
                           .Register(*registry_)
                           .Add({})),
      fetch_bytes_(BuildHistogram()
                       .Name("rwkv_emb_state_fetch_bytes")
                       .Help("State bytes one rerank request read from the store")
                       .Register(*registry_)
                       .Add({}, exponential(65536, 4, 10))) {}

void Metrics::observe_state_fetch(uint64_t bytes) { fetch_bytes_.Observe(double(bytes)); }

void Metrics::observe_request(const std::string& route, int status, double seconds) {
  requests_.Add({{"route", route}, {"status", std::to_string(status)}}).Increment();
  latency_.Add({{"route", route}}, exponential(0.001, 2, 16)).Observe(seconds);
}

void Metrics::observe_step(int sequences, int tokens, double seconds) {
  step_sequences_.Observe(sequences);
  step_tokens_.Observe(tokens);
  step_seconds_.Observe(seconds);
  tokens_processed_.Increment(tokens);
}

void Metrics::set_queue(size_t requests, size_t tokens) {
  queue_requests_.Set(double(requests));
  queue_tokens_.Set(double(tokens));
}

void Metrics::update_state_metrics() const {
  const states::DecodedStateCacheStats cache =
      cache_source_ ? cache_source_() : states::DecodedStateCacheStats{};
  std::optional<states::StateStoreStats> store;
  try {
    if (state_source_) store = state_source_();
  } catch (const std::exception&) {
    // store unreachable: keep the last numbers
  }
  std::lock_guard lock(state_mutex_);
  cache_entries_.Set(double(cache.entries));
  cache_bytes_.Set(double(cache.bytes));
  advance(cache_hits_, cache.hits, cache_last_.hits);
  advance(cache_misses_, cache.misses, cache_last_.misses);
  advance(cache_evictions_, cache.evictions, cache_last_.evictions);
  cache_last_ = cache;
  if (!store) return;
  states_stored_.Set(double(store->states));
  state_bytes_.Set(double(store->bytes));
  advance(state_hits_, store->hits, state_last_.hits);
  advance(state_misses_, store->misses, state_last_.misses);
  advance(state_evictions_, store->evictions, state_last_.evictions);
  advance(state_corrupted_, store->corrupted, state_last_.corrupted);
  state_last_ = *store;
}

std::string Metrics::serialize() const {
  update_state_metrics();
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace rwkv::server
