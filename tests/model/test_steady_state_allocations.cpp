// No allocation while serving: the engine reserves everything a step within
// its limits needs when it is built (workspace, batch index arrays, head and
// logit buffers, the backend's matrix-product scratch), so steps, results and
// state loads of any shape within the limits allocate no backend memory (on
// a GPU: no cudaMalloc, and recorded steps find their memory where it was).
#include <gtest/gtest.h>

#include <random>

#include "engine/io/random_model.h"
#include "engine/model/engine.h"
#include "tests/support/backend_params.h"
#include "tests/support/random_tokens.h"

namespace rwkv {
namespace {

class SteadyStateAllocations : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Backends, SteadyStateAllocations,
                         ::testing::Values("cpu", "cpu_bfloat16", "cuda", "cuda_float16"),
                         [](const auto& info) { return info.param; });

TEST_P(SteadyStateAllocations, StepsWithinTheLimitsAllocateNothing) {
  RWKV_REQUIRE_BACKEND(GetParam());
  const io::ModelShape shape = io::ModelShape::demo();
  const io::Checkpoint model = io::make_random_embedding_checkpoint(shape, 3);
  const io::Checkpoint reranker = io::make_random_reranker_checkpoint(shape, 4);
  model::EngineOptions opt;
  opt.max_slots = 6;
  opt.max_step_tokens = 300;
  opt.chunk_tokens = 100;
  model::Engine engine(test::make_backend(GetParam()), model, &reranker, opt);
  const int64_t after_construction = engine.backend().allocations();

  const model::Outputs everything{model::Output::kRetrievalEmbedding, model::Output::kStsEmbedding,
                                  model::Output::kClassificationEmbedding,
                                  model::Output::kFinalState, model::Output::kRerankLogit};
  std::mt19937 rng(5);
  // A warm-up at the limits (full steps, every slot), then other shapes:
  // fewer and longer sequences, single tokens, continued states.
  std::vector<std::vector<int32_t>> at_limits;
  for (int i = 0; i < opt.max_slots; ++i) at_limits.push_back(test::random_tokens(rng, 100));
  std::vector<model::Engine::Sequence> seqs(at_limits.begin(), at_limits.end());
  const auto warm = engine.run(seqs, everything);
  EXPECT_EQ(engine.backend().allocations(), after_construction) << "warm-up at the limits";

  for (const std::vector<int>& lengths : std::vector<std::vector<int>>{
           {1}, {299}, {7, 1, 64, 1000, 3, 250, 12, 9}, {100, 100, 100}}) {
    std::vector<std::vector<int32_t>> inputs;
    for (int n : lengths) inputs.push_back(test::random_tokens(rng, n));
    std::vector<model::Engine::Sequence> batch(inputs.begin(), inputs.end());
    for (size_t i = 0; i < batch.size() && i < warm.size(); i += 2)
      batch[i].initial = &warm[i].state;  // continue a cached state
    engine.run(batch, everything);
    EXPECT_EQ(engine.backend().allocations(), after_construction)
        << inputs.size() << " sequences, the first of " << lengths.front() << " tokens";
  }
}

}  // namespace
}  // namespace rwkv
