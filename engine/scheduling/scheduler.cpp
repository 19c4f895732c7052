#include "engine/scheduling/scheduler.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <iterator>
#include <map>

namespace rwkv::scheduling {
namespace {

// Length buckets of powers of two: chunks in one bucket differ at most 2x in
// length, which keeps the time-sequential WKV balanced across a step.
int length_bucket(size_t chunk) { return std::bit_width(chunk); }

}  // namespace

Scheduler::Scheduler(model::Engine& engine, SchedulerOptions options, StepCallback on_step)
    : engine_(engine),
      options_(options),
      on_step_(std::move(on_step)),
      thread_([this] { loop(); }) {}

Scheduler::~Scheduler() { shutdown(); }

std::shared_ptr<PendingRequest> Scheduler::submit(std::vector<SequenceJob> jobs) {
  auto request = std::make_shared<PendingRequest>();
  for (const SequenceJob& j : jobs) {
    engine_.check_tokens(j.tokens);
    request->tokens_ += j.tokens.size();
  }
  request->remaining_ = jobs.size();
  request->results_.resize(jobs.size());
  request->jobs_ = std::move(jobs);
  if (request->jobs_.empty()) {
    request->promise_.set_value({});
    return request;
  }
  {
    std::lock_guard lock(mutex_);
    if (!accepting_) throw ShuttingDown("the server is shutting down");
    if (queued_requests_ + 1 > options_.max_queued_requests ||
        queued_tokens_ + request->tokens_ > options_.max_queued_tokens)
      throw QueueFull("the request queue is full");
    ++queued_requests_;
    queued_tokens_ += request->tokens_;
    for (size_t j = 0; j < request->jobs_.size(); ++j) waiting_.push_back({request, j});
  }
  work_.notify_one();
  return request;
}

void Scheduler::shutdown() {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
  }
  work_.notify_one();
  if (thread_.joinable()) thread_.join();
}

size_t Scheduler::queued_requests() const {
  std::lock_guard lock(mutex_);
  return queued_requests_;
}

size_t Scheduler::queued_tokens() const {
  std::lock_guard lock(mutex_);
  return queued_tokens_;
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [&] { return !waiting_.empty() || !active_.empty() || !accepting_; });
      if (!accepting_ && waiting_.empty() && active_.empty()) return;
    }
    try {
      drop_cancelled();
      admit();
      const std::vector<model::Engine::Chunk> chunks = plan_step();
      const auto t0 = std::chrono::steady_clock::now();
      engine_.step(chunks);
      StepStats stats;
      stats.sequences = static_cast<int>(chunks.size());
      for (const auto& c : chunks) stats.tokens += static_cast<int>(c.tokens.size());
      stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      finish_done();
      if (on_step_ && stats.tokens > 0) on_step_(stats);
    } catch (...) {
      // An engine failure fails the requests in flight, not the server.
      fail_all(std::current_exception());
    }
  }
}

// Moves waiting sequences into free slots, oldest first. The device copies
// run without the queue lock, so submit() never waits for them.
void Scheduler::admit() {
  for (const Waiting& w : take_waiting(size_t(engine_.free_slot_count()))) start(w);
}

// Pops up to `n` waiting sequences of requests that have not failed.
std::vector<Scheduler::Waiting> Scheduler::take_waiting(size_t n) {
  std::vector<Waiting> taken;
  std::lock_guard lock(mutex_);
  while (!waiting_.empty() && taken.size() < n) {
    if (!waiting_.front().request->failed_) taken.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  return taken;
}

// Puts a sequence into a slot. A failure, e.g. an initial state of the wrong
// shape, fails its request only (the other requests go on); its sequences
// already in slots are dropped by drop_cancelled().
void Scheduler::start(const Waiting& w) {
  if (w.request->failed_) return;  // a sequence taken with it failed
  int slot = -1;
  try {
    slot = engine_.acquire_slot();
    if (const auto& initial = w.request->jobs_[w.job].initial) engine_.load_state(slot, *initial);
    active_.push_back({w.request, w.job, slot});
  } catch (...) {
    if (slot >= 0) engine_.release_slot(slot);
    fail(*w.request, std::current_exception());
  }
}

// Picks the chunks of the next step: buckets by chunk length, starting with
// the bucket of the oldest active sequence, then the others from short to long,
// until the token budget is spent.
std::vector<model::Engine::Chunk> Scheduler::plan_step() {
  const model::EngineOptions& opt = engine_.options();
  std::map<int, std::vector<Active*>> buckets;
  for (Active& a : active_) {
    const size_t left = a.request->jobs_[a.job].tokens.size() - a.pos;
    buckets[length_bucket(std::min(left, size_t(opt.chunk_tokens)))].push_back(&a);
  }
  std::vector<int> order;
  if (!active_.empty()) {
    const size_t left =
        active_.front().request->jobs_[active_.front().job].tokens.size() - active_.front().pos;
    order.push_back(length_bucket(std::min(left, size_t(opt.chunk_tokens))));
  }
  for (const auto& [bucket, _] : buckets)
    if (order.empty() || bucket != order.front()) order.push_back(bucket);

  std::vector<model::Engine::Chunk> chunks;
  size_t budget = opt.max_step_tokens;
  for (int bucket : order) {
    for (Active* a : buckets[bucket]) {
      const auto& tokens = a->request->jobs_[a->job].tokens;
      const size_t take = std::min({tokens.size() - a->pos, size_t(opt.chunk_tokens), budget});
      if (take == 0 && a->pos < tokens.size()) continue;
      chunks.push_back({a->slot, std::span(tokens).subspan(a->pos, take)});
      a->pos += take;
      budget -= take;
    }
  }
  return chunks;
}

// Reads the outputs of finished sequences, grouped by what is wanted, and
// completes requests whose last sequence finished.
void Scheduler::finish_done() {
  const auto finished = std::stable_partition(active_.begin(), active_.end(), [](const Active& a) {
    return a.pos < a.request->jobs_[a.job].tokens.size();
  });
  std::vector<Active> done(std::make_move_iterator(finished),
                           std::make_move_iterator(active_.end()));
  active_.erase(finished, active_.end());
  while (!done.empty()) {
    const model::Outputs wanted = done.front().request->jobs_[done.front().job].wanted;
    // This group first: the finished sequences that want the same outputs.
    const auto group_end = std::stable_partition(done.begin(), done.end(), [&](const Active& a) {
      return a.request->jobs_[a.job].wanted == wanted;
    });
    std::vector<int> slots;
    std::vector<model::Engine::Result*> results;
    for (auto a = done.begin(); a != group_end; ++a) {
      slots.push_back(a->slot);
      results.push_back(&a->request->results_[a->job]);
    }
    std::exception_ptr error;
    try {
      engine_.collect(slots, results, wanted);
    } catch (...) {
      error = std::current_exception();
    }
    for (int s : slots) engine_.release_slot(s);
    for (auto a = done.begin(); a != group_end; ++a) {
      if (error)
        fail(*a->request, error);
      else if (--a->request->remaining_ == 0 && !a->request->failed_)
        complete(*a->request);
    }
    done.erase(done.begin(), group_end);
  }
}

void Scheduler::complete(PendingRequest& r) {
  {
    std::lock_guard lock(mutex_);
    --queued_requests_;
    queued_tokens_ -= r.tokens_;
  }
  r.promise_.set_value(std::move(r.results_));
}

// Fails the requests whose client went away, and frees the slots and queued
// sequences of every failed request.
void Scheduler::drop_cancelled() {
  const auto cancelled = std::make_exception_ptr(Cancelled("request cancelled"));
  std::erase_if(active_, [&](const Active& a) {
    if (a.request->cancelled()) fail(*a.request, cancelled);
    if (!a.request->failed_) return false;
    engine_.release_slot(a.slot);
    return true;
  });
  std::vector<std::shared_ptr<PendingRequest>> waiting_cancelled;
  {
    std::lock_guard lock(mutex_);
    for (const Waiting& w : waiting_)
      if (w.request->cancelled()) waiting_cancelled.push_back(w.request);
  }
  for (const auto& r : waiting_cancelled) fail(*r, cancelled);
  std::lock_guard lock(mutex_);
  std::erase_if(waiting_, [](const Waiting& w) { return w.request->failed_; });
}

void Scheduler::fail_all(std::exception_ptr error) {
  for (const Active& a : active_) {
    engine_.release_slot(a.slot);
    fail(*a.request, error);
  }
  active_.clear();
  std::lock_guard lock(mutex_);
  std::erase_if(waiting_, [](const Waiting& w) { return w.request->failed_; });
}

void Scheduler::fail(PendingRequest& r, std::exception_ptr error) {
  if (r.failed_) return;
  r.failed_ = true;
  {
    std::lock_guard lock(mutex_);
    --queued_requests_;
    queued_tokens_ -= r.tokens_;
  }
  r.promise_.set_exception(error);
}

}  // namespace rwkv::scheduling
