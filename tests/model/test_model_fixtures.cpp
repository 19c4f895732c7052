// The engine on each backend against the reference outputs in ../shared/fixtures.
// Float32 tolerances follow the fixture README: the reference ran in float64
// and a float32 port of the same pipeline differs by at most 2.9e-6
// (embeddings), 6.5e-7 (logits), 1.7e-5 (WKV state); we allow about 10x that.
// Half-precision products (GPU float16/bfloat16) are held to cosine >= 0.9999
// and a max abs error of 2% of the largest reference value for embeddings and
// states, 0.02 for logits: about 4x what rounding the products' inputs and
// weights to those types gave when emulated on the CPU (float16: 0.1-0.25%,
// cosine >= 0.999996; bfloat16: 0.3-0.35%, cosine >= 0.99998; logits 0.003).
#include <gtest/gtest.h>

#include <cmath>

#include "engine/model/engine.h"
#include "engine/text/prompt_templates.h"
#include "engine/text/tokenizer.h"
#include "tests/support/backend_params.h"
#include "tests/support/fixture_data.h"
#include "tests/support/fixture_outputs.h"

namespace rwkv {
namespace {

using nlohmann::json;
using test::expect_close;
using test::expected;
using test::load_state_file;
using test::to_floats;
using test::to_ids;

constexpr double kEmbeddingTol = 1e-4;
constexpr double kLogitTol = 1e-4;
constexpr double kHalfMinCosine = 0.9999;
constexpr double kHalfMaxAbsOfScale = 0.02;
constexpr double kHalfLogitTol = 0.02;

struct Fixture {
  io::Checkpoint embedding, rr_idx, rr_full;
  Fixture()
      : embedding(io::load_checkpoint(test::fixtures_dir() + "/embedding.pth")),
        rr_idx(io::load_checkpoint(test::fixtures_dir() + "/reranker_idx.pth")),
        rr_full(io::load_checkpoint(test::fixtures_dir() + "/reranker_full.pth")) {}
  const io::Checkpoint& reranker(const std::string& name) const {
    return name == "rr_idx" ? rr_idx : rr_full;
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

class ModelFixtures : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    RWKV_REQUIRE_FIXTURES();
    RWKV_REQUIRE_BACKEND(GetParam());
  }
  std::unique_ptr<model::Engine> make_engine(const io::Checkpoint* reranker = nullptr,
                                             model::EngineOptions opt = {}) {
    return std::make_unique<model::Engine>(test::make_backend(GetParam()), fixture().embedding,
                                           reranker, opt);
  }

  void check_embedding(const std::vector<float>& got, const std::vector<float>& want,
                       const std::string& what) const {
    if (test::half_precision(GetParam()))
      check_half(got, want, what);
    else
      expect_close(got, want, kEmbeddingTol, 0, what);
  }
  void check_state(const std::vector<float>& got, const std::vector<float>& want,
                   const std::string& what) const {
    if (test::half_precision(GetParam()))
      check_half(got, want, what);
    else
      expect_close(got, want, 2e-4, 2e-5, what);
  }
  void check_state(const std::vector<float>& got, const json& ref, const std::string& what) const {
    check_state(got, load_state_file(ref), what);
  }
  void check_logits(const std::vector<float>& got, const std::vector<float>& want,
                    const std::string& what) const {
    expect_close(got, want, test::half_precision(GetParam()) ? kHalfLogitTol : kLogitTol, 0, what);
  }

 private:
  static void check_half(const std::vector<float>& got, const std::vector<float>& want,
                         const std::string& what) {
    test::expect_similar(got, want, kHalfMaxAbsOfScale * test::max_magnitude(want), kHalfMinCosine,
                         what);
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, ModelFixtures,
                         ::testing::Values("cpu", "cpu_bfloat16", "cuda", "cuda_float16",
                                           "cuda_bfloat16"),
                         [](const auto& info) { return info.param; });

TEST_P(ModelFixtures, EmbeddingsAndStatesOfEveryCase) {
  auto engine = make_engine();
  for (const json& c : expected()["embeddings"]) {
    const std::string name = c["name"];
    const auto ids = to_ids(c["ids"]);
    const model::Engine::Sequence seq{ids};
    const auto r = engine->run(std::span(&seq, 1), test::kHeadsAndState)[0];
    check_embedding(r.embeddings[0], to_floats(c["retr"]), name + " retr");
    check_embedding(r.embeddings[1], to_floats(c["sts"]), name + " sts");
    check_embedding(r.embeddings[2], to_floats(c["cls"]), name + " cls");
    if (c.contains("state0")) check_state(r.state.shift, c["state0"], name + " state0");
    if (c.contains("state1")) check_state(r.state.wkv, c["state1"], name + " state1");
  }
}

TEST_P(ModelFixtures, SplitPassCarriesState) {
  auto engine = make_engine();
  for (const json& c : expected()["split_pass"]) {
    const std::string name = c["name"];
    const auto ids = to_ids(c["ids"]);
    const int slot = engine->acquire_slot();
    for (const json& range : c["chunks"]) {
      const int begin = range[0], end = range[1];
      const model::Engine::Chunk chunk{slot, std::span(ids).subspan(begin, end - begin)};
      engine->step(std::span(&chunk, 1));
    }
    const auto emb = engine->embeddings(std::span(&slot, 1), model::EmbeddingHead::kRetrieval);
    const auto state = engine->read_state(slot);
    engine->release_slot(slot);
    check_embedding(emb[0], to_floats(c["retr_split"]), name + " retr_split");
    check_embedding(emb[0], to_floats(c["retr_full"]), name + " retr_full");
    check_state(state.shift, c["state0_split"], name + " state0_split");
    check_state(state.wkv, c["state1_split"], name + " state1_split");
  }
}

// The fixture batches are upstream's padded rows; running each row as its own
// packed sequence (pad tokens included, as upstream processes them)
// reproduces upstream's batched numbers, states included.
TEST_P(ModelFixtures, UpstreamBatchesRowByRow) {
  auto engine = make_engine();
  for (const json& c : expected()["batch"]) {
    const std::string name = c["name"];
    std::vector<std::vector<int32_t>> rows;
    for (const json& row : c["batch_ids"]) rows.push_back(to_ids(row));
    std::vector<model::Engine::Sequence> seqs(rows.begin(), rows.end());
    const auto results = engine->run(seqs, test::kHeadsAndState);
    const auto s0 = load_state_file(c["state0"]);  // [L, 2, B, C]
    const auto s1 = load_state_file(c["state1"]);  // [L, B, H, 64, 64]
    const size_t B = rows.size(), C = results[0].embeddings[0].size();
    const size_t L = results[0].state.shift.size() / (2 * C);
    const size_t W = results[0].state.wkv.size() / L;
    for (size_t b = 0; b < B; ++b) {
      const std::string row = name + " row " + std::to_string(b);
      check_embedding(results[b].embeddings[0], to_floats(c["retr"][b]), row + " retr");
      check_embedding(results[b].embeddings[1], to_floats(c["sts"][b]), row + " sts");
      check_embedding(results[b].embeddings[2], to_floats(c["cls"][b]), row + " cls");
      std::vector<float> want0, want1;
      for (size_t l = 0; l < L; ++l) {
        for (size_t k = 0; k < 2; ++k)
          want0.insert(want0.end(), s0.begin() + ((l * 2 + k) * B + b) * C,
                       s0.begin() + ((l * 2 + k) * B + b + 1) * C);
        want1.insert(want1.end(), s1.begin() + (l * B + b) * W, s1.begin() + (l * B + b + 1) * W);
      }
      check_state(results[b].state.shift, want0, row + " state0");
      check_state(results[b].state.wkv, want1, row + " state1");
    }
  }
}

TEST_P(ModelFixtures, OnlineRerank) {
  const json& c = expected()["rerank_online"];
  for (const std::string name : {"rr_idx", "rr_full"}) {
    auto engine = make_engine(&fixture().reranker(name));
    std::vector<std::vector<int32_t>> ids;
    for (size_t i = 0; i < c["documents"].size(); ++i) {
      ids.push_back(text::Tokenizer::world().encode(text::rerank_online_text(
          c["documents"][i].get<std::string>(), c["query"].get<std::string>())));
      ASSERT_EQ(ids.back(), to_ids(c["ids"][i]));
    }
    std::vector<model::Engine::Sequence> seqs(ids.begin(), ids.end());
    const model::Outputs wanted{model::Output::kFinalState, model::Output::kRerankLogit};
    const auto results = engine->run(seqs, wanted);
    std::vector<float> logits;
    for (size_t i = 0; i < results.size(); ++i) {
      logits.push_back(results[i].logit);
      check_state(results[i].state.shift, c["state0"][i],
                  name + " doc " + std::to_string(i) + " state0");
      check_state(results[i].state.wkv, c["state1"][i],
                  name + " doc " + std::to_string(i) + " state1");
    }
    check_logits(logits, to_floats(c["scores"][name]["logits"]), name + " logits");
  }
}

TEST_P(ModelFixtures, OfflineRerankFromCachedStates) {
  const json& c = expected()["rerank_offline"];
  for (const std::string name : {"rr_idx", "rr_full"}) {
    auto engine = make_engine(&fixture().reranker(name));
    std::vector<std::vector<int32_t>> doc_ids;
    for (const json& d : c["documents"]) {
      doc_ids.push_back(
          text::Tokenizer::world().encode(text::rerank_document_text(d.get<std::string>()), false));
      ASSERT_EQ(doc_ids.back(), to_ids(c["doc_ids"][doc_ids.size() - 1]));
    }
    const auto query_ids =
        text::Tokenizer::world().encode(text::rerank_query_text(c["query"].get<std::string>()));
    ASSERT_EQ(query_ids, to_ids(c["query_ids"]));

    std::vector<model::Engine::Sequence> docs(doc_ids.begin(), doc_ids.end());
    const model::Outputs state_only{model::Output::kFinalState};
    const auto cached = engine->run(docs, state_only);
    std::vector<model::Engine::Sequence> queries;
    for (size_t i = 0; i < cached.size(); ++i) {
      check_state(cached[i].state.shift, c["cached_state0"][i], name + " cached state0");
      check_state(cached[i].state.wkv, c["cached_state1"][i], name + " cached state1");
      queries.push_back({query_ids, &cached[i].state});
    }
    const model::Outputs wanted{model::Output::kFinalState, model::Output::kRerankLogit};
    const auto results = engine->run(queries, wanted);
    std::vector<float> logits;
    for (size_t i = 0; i < results.size(); ++i) {
      logits.push_back(results[i].logit);
      check_state(results[i].state.shift, c["final_state0"][i], name + " final state0");
      check_state(results[i].state.wkv, c["final_state1"][i], name + " final state1");
    }
    check_logits(logits, to_floats(c["scores"][name]["logits"]), name + " logits");
  }
}

// Loading `model` (and `reranker`) must fail with a message containing each of `words`.
void expect_load_error(const io::Checkpoint& model, const io::Checkpoint* reranker,
                       std::initializer_list<std::string> words) {
  try {
    model::Engine engine(kernels::make_cpu_backend(), model, reranker);
    FAIL() << "loaded a broken checkpoint";
  } catch (const io::CheckpointError& e) {
    for (const auto& w : words)
      EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
  }
}

TEST(ModelStructure, ErrorsAreClear) {
  RWKV_REQUIRE_FIXTURES();
  const Fixture& f = fixture();
  io::Checkpoint shape = f.embedding;
  shape.tensors["rwkv.blocks.1.att.key.weight"].shape = {64, 256};
  expect_load_error(shape, nullptr,
                    {"embedding.pth", "rwkv.blocks.1.att.key.weight", "expected [128, 128]"});

  io::Checkpoint missing = f.embedding;
  missing.tensors.erase("head.sts_head.fc2.weight");
  expect_load_error(missing, nullptr, {"missing tensor 'head.sts_head.fc2.weight'"});

  expect_load_error(f.rr_idx, nullptr, {"reranker_idx.pth", "reranker checkpoint"});

  io::Checkpoint vision = f.embedding;
  vision.tensors["vit.patch.weight"] = io::HostTensor{{1}, {0.f}};
  expect_load_error(vision, nullptr, {"vision"});

  io::Checkpoint bad_idx = f.rr_idx;
  bad_idx.int_lists["reranker_layer_idx"] = {0, 7};
  expect_load_error(f.embedding, &bad_idx, {"reranker_layer_idx", "7"});
}

}  // namespace
}  // namespace rwkv
