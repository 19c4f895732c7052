// A text's outputs must not depend on what it was batched with, how it was
// chunked across engine steps, or the thread count (docs/model.md "Exactness"):
// embeddings of every head, the final state and the rerank logit, bit for
// bit. Checked on the fixture checkpoints and on random models of other
// shapes (widths that are not powers of two, other layer counts), with the
// token ids of real texts (the fixtures' texts and the input protocol's
// multi-EOS cases), inputs shorter than one product tile, an EOS-only input
// and inputs long enough to be split across steps.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <tuple>

#include "engine/io/random_model.h"
#include "engine/model/engine.h"
#include "engine/text/tokenizer.h"
#include "tests/support/backend_params.h"
#include "tests/support/fixture_data.h"
#include "tests/support/random_tokens.h"

namespace rwkv {
namespace {

using test::random_tokens;

struct Outputs {
  std::array<std::vector<float>, 3> embeddings;
  std::vector<float> shift, wkv;
  float logit = 0;
};

struct ModelCase {
  std::string name;
  size_t longest_text;  // the longest real text's ids used (time in CI)
  std::string backend;  // as tests/support/backend_params.h names them
  // Builds (embedding, reranker) checkpoints; null when it needs absent fixtures.
  std::function<std::unique_ptr<std::pair<io::Checkpoint, io::Checkpoint>>()> load;
};

// Test names say which model (gtest would print the struct's bytes).
void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

std::unique_ptr<std::pair<io::Checkpoint, io::Checkpoint>> fixture_models() {
  if (!test::fixtures_present()) return nullptr;
  const std::string dir = test::fixtures_dir();
  return std::make_unique<std::pair<io::Checkpoint, io::Checkpoint>>(
      io::load_checkpoint(dir + "/embedding.pth"), io::load_checkpoint(dir + "/reranker_idx.pth"));
}

std::unique_ptr<std::pair<io::Checkpoint, io::Checkpoint>> random_models(
    const io::ModelShape& shape) {
  return std::make_unique<std::pair<io::Checkpoint, io::Checkpoint>>(
      io::make_random_embedding_checkpoint(shape, 11),
      io::make_random_reranker_checkpoint(shape, 12));
}

// Each model on the CPU and its CUDA twin (skipped without a device); the
// fixture model in every product dtype too.
const std::vector<ModelCase>& model_cases() {
  using Loader = std::function<std::unique_ptr<std::pair<io::Checkpoint, io::Checkpoint>>()>;
  const std::vector<std::tuple<std::string, size_t, Loader, std::vector<std::string>>> models = {
      {"fixture", 3000, fixture_models, {"cpu", "cuda"}},
      {"fixture",
       600,
       fixture_models,
       {"cpu_bfloat16", "cpu_int8", "cuda_float16", "cuda_bfloat16"}},
      {"demo_L2_C128", 600, [] { return random_models(io::ModelShape::demo()); }, {"cpu", "cuda"}},
      // 3 heads (C = 192), FFN and LoRA widths that are no multiple of 32.
      {"odd_L3_C192",
       600,
       [] {
         return random_models({3, 192, 600, 24, 40, 20, 56, 65536});
       },
       {"cpu", "cuda"}},
      // 5 heads (C = 320), more layers than the fixture's.
      {"odd_L5_C320",
       600,
       [] {
         return random_models({5, 320, 1000, 48, 36, 28, 72, 65536});
       },
       {"cpu", "cuda"}},
  };
  static const std::vector<ModelCase> cases = [&] {
    std::vector<ModelCase> out;
    for (const auto& [name, longest, load, backends] : models)
      for (const std::string& backend : backends)
        out.push_back({name + "_" + backend, longest, backend, load});
    return out;
  }();
  return cases;
}

// Token ids of real texts where the fixtures exist (each embedding case of
// expected.json, the input protocol's cases up to `longest` tokens, the
// online rerank texts), then inputs of 1, 2 and 3 tokens, EOS alone, and a
// random long one.
std::vector<std::vector<int32_t>> inputs(size_t longest) {
  std::vector<std::vector<int32_t>> in;
  if (test::fixtures_present()) {
    for (const auto& c : test::expected()["embeddings"]) in.push_back(test::to_ids(c["ids"]));
    for (const auto& c : test::protocol()["cases"])
      if (c["ids"].size() <= longest) in.push_back(test::to_ids(c["ids"]));
    for (const auto& ids : test::expected()["rerank_online"]["ids"])
      in.push_back(test::to_ids(ids));
  } else {
    std::printf("[ warn ] fixtures missing: batch invariance on random tokens only\n");
  }
  std::mt19937 rng(3);
  for (int n : {1, 2, 3, 1500}) in.push_back(random_tokens(rng, n));
  in.push_back({text::Tokenizer::kEos});
  return in;
}

class BatchInvariance : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    RWKV_REQUIRE_BACKEND(GetParam().backend);
    models_ = GetParam().load();
    if (!models_) RWKV_REQUIRE_FIXTURES();
  }

  // `threads` counts for the CPU backends only.
  std::unique_ptr<model::Engine> engine(model::EngineOptions opt = {}, int threads = 2) {
    const std::string& name = GetParam().backend;
    auto backend = !name.starts_with("cpu")
                       ? test::make_backend(name)
                       : kernels::make_cpu_backend(
                             threads, name == "cpu_bfloat16" ? kernels::MatmulDtype::kBFloat16
                                      : name == "cpu_int8"   ? kernels::MatmulDtype::kInt8
                                                             : kernels::MatmulDtype::kFloat32);
    return std::make_unique<model::Engine>(std::move(backend), models_->first, &models_->second,
                                           opt);
  }

  // Runs the inputs together through `engine`; outputs in input order.
  static std::vector<Outputs> run(model::Engine& engine,
                                  const std::vector<std::vector<int32_t>>& in) {
    std::vector<model::Engine::Sequence> seqs(in.begin(), in.end());
    const model::Outputs wanted{model::Output::kRetrievalEmbedding, model::Output::kStsEmbedding,
                                model::Output::kClassificationEmbedding, model::Output::kFinalState,
                                model::Output::kRerankLogit};
    std::vector<Outputs> out;
    for (auto& r : engine.run(seqs, wanted))
      out.push_back({r.embeddings, r.state.shift, r.state.wkv, r.logit});
    return out;
  }

  std::unique_ptr<std::pair<io::Checkpoint, io::Checkpoint>> models_;
};

void expect_same(const Outputs& a, const Outputs& b, const std::string& what) {
  for (int h = 0; h < 3; ++h) EXPECT_EQ(a.embeddings[h], b.embeddings[h]) << what << " head " << h;
  EXPECT_EQ(a.shift, b.shift) << what;
  EXPECT_EQ(a.wkv, b.wkv) << what;
  EXPECT_EQ(a.logit, b.logit) << what;
}

TEST_P(BatchInvariance, AloneBatchedChunkedAndThreadedAgree) {
  const auto in = inputs(GetParam().longest_text);
  const auto two_threads = engine();
  std::vector<Outputs> alone;
  for (const auto& ids : in) alone.push_back(run(*two_threads, {ids})[0]);

  const auto all = run(*two_threads, in);
  for (size_t i = 0; i < in.size(); ++i)
    expect_same(alone[i], all[i], "all in one run, input " + std::to_string(i));

  // Small steps shared by several slots, chunks of several sizes.
  for (int chunk : {61, 509}) {
    model::EngineOptions opt;
    opt.chunk_tokens = chunk;
    opt.max_step_tokens = 97 + chunk;
    opt.max_slots = 5;
    const auto chunked = run(*engine(opt), in);
    for (size_t i = 0; i < in.size(); ++i)
      expect_same(alone[i], chunked[i],
                  "chunk_tokens=" + std::to_string(chunk) + ", input " + std::to_string(i));
  }

  // Random subsets in random order, at one thread on the CPU.
  const auto one_thread = engine({}, 1);
  std::mt19937 rng(4);
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<size_t> pick(in.size());
    std::iota(pick.begin(), pick.end(), 0);
    std::shuffle(pick.begin(), pick.end(), rng);
    pick.resize(1 + rng() % in.size());
    std::vector<std::vector<int32_t>> subset;
    for (size_t i : pick) subset.push_back(in[i]);
    const auto got = run(*one_thread, subset);
    for (size_t j = 0; j < pick.size(); ++j)
      expect_same(alone[pick[j]], got[j], "subset at 1 thread, input " + std::to_string(pick[j]));
  }
}

TEST_P(BatchInvariance, StateContinuationEqualsOnePass) {
  // Running a prefix, saving the state, and continuing from it is the same as one pass.
  std::mt19937 rng(2);
  const auto text = random_tokens(rng, 120);
  const auto engine_ptr = engine();
  model::Engine& engine = *engine_ptr;
  const model::Outputs wanted{model::Output::kFinalState};
  const std::vector<int32_t> prefix(text.begin(), text.begin() + 50),
      rest(text.begin() + 50, text.end());
  const model::Engine::Sequence first{prefix};
  const auto mid = engine.run(std::span(&first, 1), wanted)[0];
  const model::Engine::Sequence second{rest, &mid.state};
  const auto continued = engine.run(std::span(&second, 1), wanted)[0];
  const model::Engine::Sequence whole{text};
  const auto once = engine.run(std::span(&whole, 1), wanted)[0];
  EXPECT_EQ(continued.state.wkv, once.state.wkv);
  EXPECT_EQ(continued.state.shift, once.state.shift);
  // Pooling only sees the EOS in the second part, as in one pass here.
  EXPECT_EQ(continued.embeddings[0], once.embeddings[0]);
}

TEST_P(BatchInvariance, NoEosGivesNoEmbedding) {
  const auto engine_ptr = engine();
  model::Engine& engine = *engine_ptr;
  const std::vector<int32_t> ids = {1, 2, 3};
  const model::Engine::Sequence seq{ids};
  const auto r = engine.run(std::span(&seq, 1), {model::Output::kRetrievalEmbedding})[0];
  EXPECT_EQ(r.pooled_count, 0);
  EXPECT_TRUE(r.embeddings[0].empty());
}

INSTANTIATE_TEST_SUITE_P(Models, BatchInvariance, ::testing::ValuesIn(model_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace rwkv
