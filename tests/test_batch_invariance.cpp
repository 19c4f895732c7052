// A text's outputs must not depend on what it was batched with or how it was
// chunked across engine steps (MODEL.md "Exactness").
#include <gtest/gtest.h>

#include <random>

#include "engine/engine.h"
#include "engine/random_model.h"
#include "engine/tokenizer.h"
#include "tests/random_tokens.h"

namespace rwkv {
namespace {

using test::random_tokens;

struct Outputs {
  std::vector<float> embedding, shift, wkv;
};

class BatchInvariance : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new Checkpoint(make_random_embedding_checkpoint(ModelShape::demo(), 7));
  }
  static void TearDownTestSuite() { delete model_; }

  std::vector<Outputs> run(const std::vector<std::vector<int32_t>>& inputs, EngineOptions opt) {
    Engine engine(kernels::make_cpu_backend(), *model_, nullptr, opt);
    std::vector<Engine::Sequence> seqs(inputs.begin(), inputs.end());
    Engine::Wanted wanted;
    wanted.state = true;
    std::vector<Outputs> out;
    for (auto& r : engine.run(seqs, wanted))
      out.push_back({r.embeddings[0], r.state.shift, r.state.wkv});
    return out;
  }

  static Checkpoint* model_;
};
Checkpoint* BatchInvariance::model_ = nullptr;

void expect_same(const Outputs& a, const Outputs& b, const std::string& what) {
  // Per-sequence kernels in a fixed order: the same numbers, bit for bit.
  EXPECT_EQ(a.embedding, b.embedding) << what;
  EXPECT_EQ(a.shift, b.shift) << what;
  EXPECT_EQ(a.wkv, b.wkv) << what;
}

TEST_F(BatchInvariance, AloneBatchedAndChunkedAgree) {
  std::mt19937 rng(1);
  const auto text = random_tokens(rng, 200);
  const Outputs alone = run({text}, {})[0];
  ASSERT_EQ(alone.embedding.size(), 128u);

  // In a batch with sequences of other lengths, at different positions.
  std::vector<std::vector<int32_t>> batch;
  for (int n : {5, 1, 77, 200, 2, 129}) batch.push_back(random_tokens(rng, n));
  batch.insert(batch.begin() + 3, text);
  batch.push_back(text);
  const auto batched = run(batch, {});
  expect_same(alone, batched[3], "in a mixed batch");
  expect_same(alone, batched.back(), "last in a mixed batch");

  // Split into chunks of several sizes, with small steps shared with others.
  for (int chunk : {1, 7, 64, 199}) {
    EngineOptions opt;
    opt.chunk_tokens = chunk;
    opt.max_step_tokens = 97;
    opt.max_slots = 3;
    const auto chunked = run(batch, opt);
    expect_same(alone, chunked[3], "chunk_tokens=" + std::to_string(chunk));
  }
}

TEST_F(BatchInvariance, StateContinuationEqualsOnePass) {
  // Running a prefix, saving the state, and continuing from it is the same as one pass.
  std::mt19937 rng(2);
  const auto text = random_tokens(rng, 120);
  Engine engine(kernels::make_cpu_backend(), *model_, nullptr);
  Engine::Wanted wanted;
  wanted.state = true;
  const std::vector<int32_t> prefix(text.begin(), text.begin() + 50),
      rest(text.begin() + 50, text.end());
  const Engine::Sequence first{prefix};
  const auto mid = engine.run(std::span(&first, 1), wanted)[0];
  const Engine::Sequence second{rest, &mid.state};
  const auto continued = engine.run(std::span(&second, 1), wanted)[0];
  const Engine::Sequence whole{text};
  const auto once = engine.run(std::span(&whole, 1), wanted)[0];
  EXPECT_EQ(continued.state.wkv, once.state.wkv);
  EXPECT_EQ(continued.state.shift, once.state.shift);
  // Pooling only sees the EOS in the second part, as in one pass here.
  EXPECT_EQ(continued.embeddings[0], once.embeddings[0]);
}

TEST_F(BatchInvariance, NoEosGivesNoEmbedding) {
  Engine engine(kernels::make_cpu_backend(), *model_, nullptr);
  const std::vector<int32_t> ids = {1, 2, 3};
  const Engine::Sequence seq{ids};
  const auto r = engine.run(std::span(&seq, 1), {})[0];
  EXPECT_EQ(r.pooled_count, 0);
  EXPECT_TRUE(r.embeddings[0].empty());
}

}  // namespace
}  // namespace rwkv
