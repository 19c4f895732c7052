// The continuous-batching scheduler: results equal single-request results
// whatever the concurrency, short requests overtake long ones, the queue is
// bounded, cancellation frees work, shutdown drains, a failure fails only its
// request, and submit() never waits for the engine.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "engine/io/random_model.h"
#include "engine/scheduling/scheduler.h"
#include "engine/text/tokenizer.h"
#include "tests/support/random_tokens.h"

namespace rwkv {
namespace {

using test::random_tokens;

const io::Checkpoint& model() {
  static const io::Checkpoint m = io::make_random_embedding_checkpoint(io::ModelShape::demo(), 11);
  return m;
}

std::unique_ptr<model::Engine> make_engine(model::EngineOptions opt = {}) {
  return std::make_unique<model::Engine>(kernels::make_cpu_backend(), model(), nullptr, opt);
}

// A job that wants the retrieval embedding.
scheduling::SequenceJob job(std::vector<int32_t> tokens) {
  scheduling::SequenceJob j;
  j.tokens = std::move(tokens);
  j.wanted = {model::Output::kRetrievalEmbedding};
  return j;
}

std::vector<float> embedding_alone(model::Engine& engine, const std::vector<int32_t>& tokens,
                                   const states::SequenceState* initial = nullptr) {
  const model::Engine::Sequence s{tokens, initial};
  return engine.run(std::span(&s, 1), {model::Output::kRetrievalEmbedding})[0].embeddings[0];
}

states::SequenceState state_after(model::Engine& engine, const std::vector<int32_t>& tokens) {
  const model::Engine::Sequence s{tokens};
  return engine.run(std::span(&s, 1), {model::Output::kFinalState})[0].state;
}

// Bit for bit: a request's results do not depend on what it was batched with.
void expect_same(const std::vector<float>& got, const std::vector<float>& want,
                 const std::string& what) {
  EXPECT_EQ(got, want) << what;
}

// The results; a test failure, not a hang, for a request that never completes.
std::vector<model::Engine::Result> results_of(scheduling::PendingRequest& request) {
  if (!request.wait_for(std::chrono::minutes(2))) {
    ADD_FAILURE() << "the request never completed";
    return {};
  }
  return request.wait();
}

// The CPU backend with a gate on copies to the device: while the gate is
// closed, a copy waits for it to open (in the thread that drives the engine).
class GatedBackend : public kernels::Backend {
 public:
  void close_gate() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    waiting_ = false;
  }
  void wait_for_blocked_copy() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return waiting_; });
  }
  void open_gate() {
    {
      std::lock_guard lock(mutex_);
      closed_ = false;
    }
    changed_.notify_all();
  }

  void to_device(void* dst, const void* host_src, size_t bytes) override {
    {
      std::unique_lock lock(mutex_);
      waiting_ = closed_;
      changed_.notify_all();
      changed_.wait(lock, [&] { return !closed_; });
    }
    cpu_->to_device(dst, host_src, bytes);
  }

  // The rest goes straight to the CPU backend.
  std::string name() const override { return cpu_->name(); }
  void release(void* ptr) override { cpu_->release(ptr); }
  void to_host(void* host_dst, const void* src, size_t bytes) override {
    cpu_->to_host(host_dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override { cpu_->copy(dst, src, bytes); }
  void zero(void* dst, size_t bytes) override { cpu_->zero(dst, bytes); }
  void synchronize() override { cpu_->synchronize(); }
  kernels::MatmulDtype matrix_dtype(int rows, int cols, kernels::MatrixInput input) const override {
    return cpu_->matrix_dtype(rows, cols, input);
  }
  size_t matrix_bytes(int rows, int cols, kernels::MatmulDtype dtype) const override {
    return cpu_->matrix_bytes(rows, cols, dtype);
  }
  void upload_matrix(void* dst, const void* host_src, int rows, int cols,
                     kernels::MatmulDtype dtype) override {
    cpu_->upload_matrix(dst, host_src, rows, cols, dtype);
  }
  void reserve_matmul(int max_rows, int max_width) override {
    cpu_->reserve_matmul(max_rows, max_width);
  }
  void matmul(int M, const float* x, const kernels::Matrix& w, float* y, bool accumulate) override {
    cpu_->matmul(M, x, w, y, accumulate);
  }
  void gather_rows(const int32_t* tokens, int num_tokens, const float* table, int C,
                   float* out) override {
    cpu_->gather_rows(tokens, num_tokens, table, C, out);
  }
  void broadcast_row(const float* row, int rows, int C, float* out) override {
    cpu_->broadcast_row(row, rows, C, out);
  }
  void layer_norm(int rows, int C, const float* x, const float* weight, const float* bias,
                  float eps, float* y) override {
    cpu_->layer_norm(rows, C, x, weight, bias, eps, y);
  }
  void token_shift_mix(const kernels::PackedBatch& batch, int C, const float* u,
                       kernels::SlotArray shift, int num_mix, const float* const* mix,
                       float* const* out) override {
    cpu_->token_shift_mix(batch, C, u, shift, num_mix, mix, out);
  }
  void activate(kernels::Activation act, size_t n, float* x) override { cpu_->activate(act, n, x); }
  void add_bias(int rows, int C, const float* bias, float* x) override {
    cpu_->add_bias(rows, C, bias, x);
  }
  void add(size_t n, const float* x, float* y) override { cpu_->add(n, x, y); }
  void wkv_prepare(const kernels::WkvPrepareArgs& args) override { cpu_->wkv_prepare(args); }
  void wkv7(const kernels::PackedBatch& batch, int heads, const float* r, const float* decay,
            const float* k, const float* v, const float* alpha, const float* beta,
            kernels::SlotArray state, float* y) override {
    cpu_->wkv7(batch, heads, r, decay, k, v, alpha, beta, state, y);
  }
  void wkv_output(int num_tokens, int heads, const float* r, const float* k, const float* v,
                  const float* r_k, const float* gn_weight, const float* gn_bias, float eps,
                  const float* g, float* y) override {
    cpu_->wkv_output(num_tokens, heads, r, k, v, r_k, gn_weight, gn_bias, eps, g, y);
  }
  void pool_token_layer_norm(const kernels::PackedBatch& batch, int C, const float* x,
                             const float* weight, const float* bias, float eps, int32_t pool_token,
                             kernels::SlotArray pool) override {
    cpu_->pool_token_layer_norm(batch, C, x, weight, bias, eps, pool_token, pool);
  }
  void run_recorded(uint64_t key, const std::function<void()>& ops) override {
    cpu_->run_recorded(key, ops);
  }

 protected:
  void* allocate_bytes(size_t bytes) override { return cpu_->allocate(bytes); }

 private:
  std::unique_ptr<kernels::Backend> cpu_ = kernels::make_cpu_backend();
  std::mutex mutex_;
  std::condition_variable changed_;
  bool closed_ = false, waiting_ = false;  // waiting_: a copy waits at the closed gate
};

TEST(Scheduler, ConcurrentClientsGetTheirSingleRequestResults) {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> texts;
  for (int i = 0; i < 24; ++i) texts.push_back(random_tokens(rng, 1 + int(rng() % 300)));

  // Reference: each text alone through a fresh engine.
  std::vector<std::vector<float>> reference;
  {
    auto engine = make_engine();
    for (const auto& t : texts) {
      const model::Engine::Sequence s{t};
      reference.push_back(
          engine->run(std::span(&s, 1), {model::Output::kRetrievalEmbedding})[0].embeddings[0]);
    }
  }

  model::EngineOptions opt;
  opt.max_slots = 5;
  opt.chunk_tokens = 32;
  opt.max_step_tokens = 100;
  auto engine = make_engine(opt);
  scheduling::Scheduler scheduler(*engine, {});
  std::vector<std::thread> clients;
  std::vector<std::vector<float>> got(texts.size());
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      // Client c sends texts c, c+6, ... as requests of two sequences each.
      for (size_t i = c; i < texts.size(); i += 12) {
        std::vector<scheduling::SequenceJob> jobs;
        jobs.push_back(job(texts[i]));
        if (i + 6 < texts.size()) jobs.push_back(job(texts[i + 6]));
        auto results = scheduler.submit(std::move(jobs))->wait();
        got[i] = results[0].embeddings[0];
        if (results.size() > 1) got[i + 6] = results[1].embeddings[0];
      }
    });
  }
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(got[i], reference[i]) << "text " << i;
}

TEST(Scheduler, ShortRequestDoesNotWaitForALongDocument) {
  std::mt19937 rng(6);
  model::EngineOptions opt;
  opt.chunk_tokens = 256;
  auto engine = make_engine(opt);
  scheduling::Scheduler scheduler(*engine, {});
  auto long_doc = scheduler.submit({job(random_tokens(rng, 16384))});
  auto short_req = scheduler.submit({job(random_tokens(rng, 8))});
  short_req->wait();
  EXPECT_FALSE(long_doc->wait_for(std::chrono::milliseconds(0)))
      << "the long document finished before the short request";
  EXPECT_EQ(long_doc->wait()[0].embeddings[0].size(), 128u);
}

TEST(Scheduler, SequencesWantingDifferentOutputsFinishInTheSameStep) {
  // Embeddings and states of one request, interleaved: they finish together
  // and are collected in two groups (this crashed the scheduler under mixed load).
  std::mt19937 rng(12);
  const std::vector<int32_t> a = random_tokens(rng, 20), b = random_tokens(rng, 20);
  const model::Outputs state_only{model::Output::kFinalState};
  auto reference = make_engine();
  const model::Engine::Sequence sa{a}, sb{b};
  const auto embedding =
      reference->run(std::span(&sa, 1), {model::Output::kRetrievalEmbedding})[0].embeddings[0];
  const auto state = reference->run(std::span(&sb, 1), state_only)[0].state;

  auto engine = make_engine();
  scheduling::Scheduler scheduler(*engine, {});
  std::vector<scheduling::SequenceJob> jobs{job(a), job(b), job(a), job(b)};
  jobs[1].wanted = jobs[3].wanted = state_only;
  const auto results = scheduler.submit(std::move(jobs))->wait();
  ASSERT_EQ(results.size(), 4u);
  for (size_t i : {0, 2}) EXPECT_EQ(results[i].embeddings[0], embedding) << i;
  for (size_t i : {1, 3}) {
    EXPECT_EQ(results[i].state.shift, state.shift) << i;
    EXPECT_EQ(results[i].state.wkv, state.wkv) << i;
  }
  EXPECT_EQ(engine->free_slot_count(), engine->options().max_slots);
}

TEST(Scheduler, QueueBoundsGiveQueueFull) {
  std::mt19937 rng(7);
  auto engine = make_engine();
  scheduling::SchedulerOptions so;
  so.max_queued_requests = 2;
  scheduling::Scheduler scheduler(*engine, so);
  auto a = scheduler.submit({job(random_tokens(rng, 4000))});
  auto b = scheduler.submit({job(random_tokens(rng, 10))});
  EXPECT_THROW(scheduler.submit({job(random_tokens(rng, 10))}), scheduling::QueueFull);
  a->wait();
  b->wait();
  // Places free up once requests complete.
  EXPECT_NO_THROW(scheduler.submit({job(random_tokens(rng, 10))})->wait());

  scheduling::SchedulerOptions tokens_only;
  tokens_only.max_queued_tokens = 100;
  scheduling::Scheduler small(*engine, tokens_only);
  EXPECT_THROW(small.submit({job(random_tokens(rng, 101))}), scheduling::QueueFull);
}

TEST(Scheduler, CancelledRequestIsDroppedAndFreesItsSlots) {
  std::mt19937 rng(8);
  model::EngineOptions opt;
  opt.max_slots = 2;
  opt.chunk_tokens = 16;
  auto engine = make_engine(opt);
  scheduling::Scheduler scheduler(*engine, {});
  auto doomed = scheduler.submit({job(random_tokens(rng, 50000)), job(random_tokens(rng, 50000)),
                                  job(random_tokens(rng, 50000))});
  doomed->cancel();
  EXPECT_THROW(doomed->wait(), scheduling::Cancelled);
  auto next = scheduler.submit({job(random_tokens(rng, 20)), job(random_tokens(rng, 20))});
  EXPECT_EQ(next->wait().size(), 2u);
  EXPECT_EQ(engine->free_slot_count(), 2);
  EXPECT_EQ(scheduler.queued_requests(), 0u);
  EXPECT_EQ(scheduler.queued_tokens(), 0u);
}

TEST(Scheduler, ShutdownFinishesAcceptedWorkThenRefuses) {
  std::mt19937 rng(9);
  auto engine = make_engine();
  scheduling::Scheduler scheduler(*engine, {});
  std::vector<std::shared_ptr<scheduling::PendingRequest>> accepted;
  for (int i = 0; i < 10; ++i) accepted.push_back(scheduler.submit({job(random_tokens(rng, 500))}));
  scheduler.shutdown();
  for (auto& r : accepted) EXPECT_EQ(r->wait()[0].embeddings[0].size(), 128u);
  EXPECT_THROW(scheduler.submit({job(random_tokens(rng, 5))}), scheduling::ShuttingDown);
}

TEST(Scheduler, AStateThatFailsToLoadFailsOnlyItsRequest) {
  // The engine refuses an initial state of another shape when the sequence
  // gets its slot, in the loop thread: that request fails with the engine's
  // error (a 400 for the HTTP layer), the others complete, and the slot and
  // queue places come back.
  std::mt19937 rng(13);
  model::EngineOptions opt;
  opt.max_slots = 3;
  opt.chunk_tokens = 16;
  auto reference = make_engine();
  auto engine = make_engine(opt);
  scheduling::Scheduler scheduler(*engine, {});
  std::vector<std::vector<int32_t>> texts;
  for (int i = 0; i < 6; ++i) texts.push_back(random_tokens(rng, 100 + int(rng() % 200)));
  std::vector<std::shared_ptr<scheduling::PendingRequest>> good;
  for (int i = 0; i < 2; ++i) good.push_back(scheduler.submit({job(texts[i])}));
  // Its first sequence gets a slot, then the second fails to load.
  scheduling::SequenceJob wrong_shape = job(random_tokens(rng, 50));
  wrong_shape.initial = std::make_shared<const states::SequenceState>();
  auto bad = scheduler.submit({job(random_tokens(rng, 400)), wrong_shape});
  for (size_t i = 2; i < texts.size(); ++i) good.push_back(scheduler.submit({job(texts[i])}));

  ASSERT_TRUE(bad->wait_for(std::chrono::minutes(2))) << "the failed request never completed";
  EXPECT_THROW(bad->wait(), std::invalid_argument);
  for (size_t i = 0; i < good.size(); ++i) {
    const auto results = results_of(*good[i]);
    ASSERT_EQ(results.size(), 1u) << i;
    expect_same(results[0].embeddings[0], embedding_alone(*reference, texts[i]),
                "request " + std::to_string(i));
  }
  EXPECT_EQ(scheduler.queued_requests(), 0u);
  EXPECT_EQ(scheduler.queued_tokens(), 0u);

  // Every slot still works: more sequences than slots, with states this time.
  std::vector<scheduling::SequenceJob> jobs;
  std::vector<std::vector<float>> expected;
  for (const auto& t : texts) {
    jobs.push_back(job(t));
    jobs.back().initial = std::make_shared<const states::SequenceState>(state_after(*reference, t));
    expected.push_back(embedding_alone(*reference, t, jobs.back().initial.get()));
  }
  auto after = scheduler.submit(std::move(jobs));
  const auto results = results_of(*after);
  ASSERT_EQ(results.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    expect_same(results[i].embeddings[0], expected[i], "sequence " + std::to_string(i));
  EXPECT_EQ(engine->free_slot_count(), opt.max_slots);
  EXPECT_EQ(scheduler.queued_requests(), 0u);
}

TEST(Scheduler, SubmitDoesNotWaitForTheEngineToLoadAState) {
  // The loop thread is held in the copy of a request's initial state to the
  // device; meanwhile another request is accepted at once.
  std::mt19937 rng(14);
  const std::vector<int32_t> a = random_tokens(rng, 30), b = random_tokens(rng, 30);
  auto reference = make_engine();
  scheduling::SequenceJob with_state = job(a);
  with_state.initial = std::make_shared<const states::SequenceState>(state_after(*reference, b));
  auto gated = std::make_unique<GatedBackend>();
  GatedBackend& gate = *gated;
  model::Engine engine(std::move(gated), model(), nullptr, {});
  scheduling::Scheduler scheduler(engine, {});

  gate.close_gate();
  auto first = scheduler.submit({with_state});
  gate.wait_for_blocked_copy();
  auto second = std::async(std::launch::async, [&] { return scheduler.submit({job(b)}); });
  EXPECT_EQ(second.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "submit() waited for the engine's copy";
  gate.open_gate();
  expect_same(results_of(*first).at(0).embeddings[0],
              embedding_alone(*reference, a, with_state.initial.get()), "first");
  expect_same(results_of(*second.get()).at(0).embeddings[0], embedding_alone(*reference, b),
              "second");
}

TEST(Scheduler, BadTokensAreRefusedAtSubmit) {
  auto engine = make_engine();
  scheduling::Scheduler scheduler(*engine, {});
  EXPECT_THROW(scheduler.submit({job({1, 2, 70000})}), std::invalid_argument);
  EXPECT_EQ(scheduler.queued_requests(), 0u);
}

}  // namespace
}  // namespace rwkv
