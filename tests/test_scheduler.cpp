// The continuous-batching scheduler: results equal single-request results
// whatever the concurrency, short requests overtake long ones, the queue is
// bounded, cancellation frees work, shutdown drains.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "engine/random_model.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"
#include "tests/random_tokens.h"

namespace rwkv {
namespace {

using test::random_tokens;

const Checkpoint& model() {
  static const Checkpoint m = make_random_embedding_checkpoint(ModelShape::demo(), 11);
  return m;
}

std::unique_ptr<Engine> make_engine(EngineOptions opt = {}) {
  return std::make_unique<Engine>(kernels::make_cpu_backend(), model(), nullptr, opt);
}

SequenceJob job(std::vector<int32_t> tokens) {
  SequenceJob j;
  j.tokens = std::move(tokens);
  return j;
}

TEST(Scheduler, ConcurrentClientsGetTheirSingleRequestResults) {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> texts;
  for (int i = 0; i < 24; ++i) texts.push_back(random_tokens(rng, 1 + int(rng() % 300)));

  // Reference: each text alone through a fresh engine.
  std::vector<std::vector<float>> reference;
  {
    auto engine = make_engine();
    for (const auto& t : texts) {
      const Engine::Sequence s{t};
      reference.push_back(engine->run(std::span(&s, 1), {})[0].embeddings[0]);
    }
  }

  EngineOptions opt;
  opt.max_slots = 5;
  opt.chunk_tokens = 32;
  opt.max_step_tokens = 100;
  auto engine = make_engine(opt);
  Scheduler scheduler(*engine, {});
  std::vector<std::thread> clients;
  std::vector<std::vector<float>> got(texts.size());
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      // Client c sends texts c, c+6, ... as requests of two sequences each.
      for (size_t i = c; i < texts.size(); i += 12) {
        std::vector<SequenceJob> jobs{job(texts[i])};
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
  EngineOptions opt;
  opt.chunk_tokens = 256;
  auto engine = make_engine(opt);
  Scheduler scheduler(*engine, {});
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
  Engine::Wanted state_only;
  state_only.heads = {false, false, false};
  state_only.state = true;
  auto reference = make_engine();
  const Engine::Sequence sa{a}, sb{b};
  const auto embedding = reference->run(std::span(&sa, 1), {})[0].embeddings[0];
  const auto state = reference->run(std::span(&sb, 1), state_only)[0].state;

  auto engine = make_engine();
  Scheduler scheduler(*engine, {});
  std::vector<SequenceJob> jobs{job(a), job(b), job(a), job(b)};
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
  SchedulerOptions so;
  so.max_queued_requests = 2;
  Scheduler scheduler(*engine, so);
  auto a = scheduler.submit({job(random_tokens(rng, 4000))});
  auto b = scheduler.submit({job(random_tokens(rng, 10))});
  EXPECT_THROW(scheduler.submit({job(random_tokens(rng, 10))}), QueueFull);
  a->wait();
  b->wait();
  // Places free up once requests complete.
  EXPECT_NO_THROW(scheduler.submit({job(random_tokens(rng, 10))})->wait());

  SchedulerOptions tokens_only;
  tokens_only.max_queued_tokens = 100;
  Scheduler small(*engine, tokens_only);
  EXPECT_THROW(small.submit({job(random_tokens(rng, 101))}), QueueFull);
}

TEST(Scheduler, CancelledRequestIsDroppedAndFreesItsSlots) {
  std::mt19937 rng(8);
  EngineOptions opt;
  opt.max_slots = 2;
  opt.chunk_tokens = 16;
  auto engine = make_engine(opt);
  Scheduler scheduler(*engine, {});
  auto doomed = scheduler.submit({job(random_tokens(rng, 50000)), job(random_tokens(rng, 50000)),
                                  job(random_tokens(rng, 50000))});
  doomed->cancel();
  EXPECT_THROW(doomed->wait(), Cancelled);
  auto next = scheduler.submit({job(random_tokens(rng, 20)), job(random_tokens(rng, 20))});
  EXPECT_EQ(next->wait().size(), 2u);
  EXPECT_EQ(engine->free_slot_count(), 2);
  EXPECT_EQ(scheduler.queued_requests(), 0u);
  EXPECT_EQ(scheduler.queued_tokens(), 0u);
}

TEST(Scheduler, ShutdownFinishesAcceptedWorkThenRefuses) {
  std::mt19937 rng(9);
  auto engine = make_engine();
  Scheduler scheduler(*engine, {});
  std::vector<std::shared_ptr<PendingRequest>> accepted;
  for (int i = 0; i < 10; ++i) accepted.push_back(scheduler.submit({job(random_tokens(rng, 500))}));
  scheduler.shutdown();
  for (auto& r : accepted) EXPECT_EQ(r->wait()[0].embeddings[0].size(), 128u);
  EXPECT_THROW(scheduler.submit({job(random_tokens(rng, 5))}), ShuttingDown);
}

TEST(Scheduler, BadTokensAreRefusedAtSubmit) {
  auto engine = make_engine();
  Scheduler scheduler(*engine, {});
  EXPECT_THROW(scheduler.submit({job({1, 2, 70000})}), std::invalid_argument);
  EXPECT_EQ(scheduler.queued_requests(), 0u);
}

}  // namespace
}  // namespace rwkv
