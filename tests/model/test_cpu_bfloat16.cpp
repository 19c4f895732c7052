// bfloat16 products on the CPU against float32 on a random model of the 0.1B
// shape (the fixture suite covers the fixture checkpoints): the bounds of the
// GPU's half precision, embeddings cosine >= 0.9999 and rerank logits within
// 0.02. Prints what it measured.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "engine/io/random_model.h"
#include "engine/model/engine.h"
#include "kernels/cpu/gemm.h"
#include "tests/support/fixture_data.h"
#include "tests/support/random_tokens.h"
#include "tests/support/vector_compare.h"

namespace rwkv {
namespace {

using test::cosine;

TEST(CpuBfloat16, WithinTheHalfPrecisionBoundsOnThe01bShape) {
  if (!kernels::cpu::has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const io::ModelShape shape = io::ModelShape::tiny_01b();
  const io::Checkpoint model = io::make_random_embedding_checkpoint(shape, 21);
  const io::Checkpoint reranker = io::make_random_reranker_checkpoint(shape, 22);
  std::mt19937 rng(23);
  std::vector<std::vector<int32_t>> inputs;
  for (int n : {1, 40, 300}) inputs.push_back(test::random_tokens(rng, n));
  std::vector<model::Engine::Sequence> seqs(inputs.begin(), inputs.end());
  const model::Outputs wanted{model::Output::kRetrievalEmbedding, model::Output::kStsEmbedding,
                              model::Output::kClassificationEmbedding, model::Output::kRerankLogit};
  const auto run = [&](kernels::MatmulDtype dtype) {
    model::Engine engine(kernels::make_cpu_backend(0, dtype), model, &reranker);
    return engine.run(seqs, wanted);
  };
  const auto f32 = run(kernels::MatmulDtype::kFloat32);
  const auto bf16 = run(kernels::MatmulDtype::kBFloat16);
  double min_cosine = 1, max_logit_diff = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    for (int h = 0; h < 3; ++h)
      min_cosine = std::min(min_cosine, cosine(bf16[i].embeddings[h], f32[i].embeddings[h]));
    max_logit_diff = std::max(max_logit_diff, double(std::abs(bf16[i].logit - f32[i].logit)));
  }
  std::printf("[ info ] bfloat16 vs float32, 0.1B shape: min cosine %.7f, max |logit diff| %.5f\n",
              min_cosine, max_logit_diff);
  EXPECT_GE(min_cosine, 0.9999);
  EXPECT_LE(max_logit_diff, 0.02);
}

}  // namespace
}  // namespace rwkv
