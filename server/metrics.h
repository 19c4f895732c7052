// Prometheus metrics of the server (prometheus-cpp), served at GET /metrics.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace rwkv::server {

class Metrics {
 public:
  Metrics();

  // One finished HTTP request.
  void observe_request(const std::string& route, int status, double seconds);
  // One engine step.
  void observe_step(int sequences, int tokens, double seconds);
  void set_queue(size_t requests, size_t tokens);

  // The text exposition format.
  std::string serialize() const;

  prometheus::Registry& registry() { return *registry_; }

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
};

}  // namespace rwkv::server
