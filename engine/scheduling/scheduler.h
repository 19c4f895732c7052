// Continuous batching: requests are split into sequences, queued, and fed to
// the engine one step at a time from a single loop thread. Every step packs
// chunks of up to `chunk_tokens` from up to `max_slots` sequences, grouped by
// chunk length (length bucketing), so short requests never wait behind a long
// document: a new sequence joins at the next step.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/model/engine.h"

namespace rwkv::scheduling {

// One sequence of a request and what is wanted from it.
struct SequenceJob {
  std::vector<int32_t> tokens;
  std::shared_ptr<const states::SequenceState> initial;  // zero state when null
  model::Outputs wanted;                                 // nothing unless asked for
};

struct SchedulerOptions {
  size_t max_queued_requests = 1024;           // beyond: QueueFull (HTTP 429)
  size_t max_queued_tokens = 8 * 1024 * 1024;  // tokens waiting, same
};

class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShuttingDown : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class Cancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StepStats {
  int sequences = 0;
  int tokens = 0;
  double seconds = 0;
};

// A submitted request: wait for its results, or cancel it.
class PendingRequest {
 public:
  // The results in job order. Throws Cancelled, or what the engine threw.
  std::vector<model::Engine::Result> wait() { return future_.get(); }
  // Waits at most `timeout`; false when not ready yet.
  bool wait_for(std::chrono::milliseconds timeout) {
    return future_.wait_for(timeout) == std::future_status::ready;
  }
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Scheduler;
  std::vector<SequenceJob> jobs_;
  std::vector<model::Engine::Result> results_;
  size_t remaining_ = 0;
  size_t tokens_ = 0;
  std::atomic<bool> cancelled_{false};
  bool failed_ = false;
  std::promise<std::vector<model::Engine::Result>> promise_;
  std::future<std::vector<model::Engine::Result>> future_ = promise_.get_future();
};

class Scheduler {
 public:
  using StepCallback = std::function<void(const StepStats&)>;
  // `on_step`, when set, is called from the loop thread after every step (metrics).
  Scheduler(model::Engine& engine, SchedulerOptions options, StepCallback on_step = {});
  ~Scheduler();  // drains, like shutdown()

  // Queues a request. Throws QueueFull, ShuttingDown, or InvalidTokens for
  // token ids the model cannot take.
  std::shared_ptr<PendingRequest> submit(std::vector<SequenceJob> jobs);
  // Stops accepting requests, finishes every accepted one, stops the loop.
  void shutdown();

  size_t queued_requests() const;
  size_t queued_tokens() const;

 private:
  // A sequence being processed in an engine slot.
  struct Active {
    std::shared_ptr<PendingRequest> request;
    size_t job;
    int slot;
    size_t pos = 0;
  };
  // A sequence waiting for a slot.
  struct Waiting {
    std::shared_ptr<PendingRequest> request;
    size_t job;
  };

  void loop();
  void admit();
  std::vector<Waiting> take_waiting(size_t n);
  void start(const Waiting& w);
  std::vector<model::Engine::Chunk> plan_step();
  void finish_done();
  void drop_cancelled();
  void fail_all(std::exception_ptr error);
  void complete(PendingRequest& r);
  // Ends a request with an error and frees its queue place (once).
  void fail(PendingRequest& r, std::exception_ptr error);

  model::Engine& engine_;
  SchedulerOptions options_;
  const StepCallback on_step_;  // set before the loop thread starts

  mutable std::mutex mutex_;  // guards waiting_, queued counters, accepting_
  std::condition_variable work_;
  std::deque<Waiting> waiting_;
  size_t queued_requests_ = 0, queued_tokens_ = 0;
  bool accepting_ = true;

  std::vector<Active> active_;  // loop thread only
  std::thread thread_;
};

}  // namespace rwkv::scheduling
