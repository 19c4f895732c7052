// int8 products on the CPU (kernels/cpu/gemm_int8.h). The kernels: every
// VNNI kernel this CPU runs gives the portable kernel's bits, for shapes with
// partial tiles and panels and odd depths, at 1 and 2 threads; a row's result
// does not depend on the row count; the result is the product of the
// quantized operands as their definitions give them. The model: int8 against float32 on the fixture
// checkpoints and on a random model of the 0.1B shape, bounded at what was
// measured plus a margin (the numbers are in bench/README.md).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/io/random_model.h"
#include "engine/model/engine.h"
#include "engine/text/prompt_templates.h"
#include "engine/text/tokenizer.h"
#include "kernels/cpu/gemm_int8.h"
#include "tests/fixture_data.h"
#include "tests/random_tokens.h"
#include "tests/vector_compare.h"

namespace rwkv {
namespace {

using test::cosine;
using test::same_bits;

using kernels::cpu::Int8Isa;
using kernels::cpu::RowQuant;

std::vector<float> random_floats(size_t n, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

std::vector<Int8Isa> runnable_int8_isas() {
  std::vector<Int8Isa> isas;
  for (const Int8Isa isa : {Int8Isa::kPortable, Int8Isa::kAvxVnni, Int8Isa::kAvx512Vnni})
    if (kernels::cpu::cpu_runs(isa)) isas.push_back(isa);
  return isas;
}

// x quantized per row, and W packed, for products of [M, K] by [N, K].
struct Operands {
  int M, N, K;
  std::vector<float> x, w;
  std::vector<uint8_t> q;
  std::vector<RowQuant> rows;
  std::vector<std::byte> packed;
  Operands(int m, int n, int k, std::mt19937& rng)
      : M(m),
        N(n),
        K(k),
        x(random_floats(size_t(m) * k, rng)),
        w(random_floats(size_t(n) * k, rng)) {
    // Rows of every sign mix: shifted up, down, and one all zero.
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < K; ++j) x[size_t(i) * K + j] += float(i % 3) - 1.0f;
    if (M > 2) std::fill_n(x.begin() + 2 * size_t(K), K, 0.0f);
    q.resize(size_t(M) * kernels::cpu::int8_depth(K));
    rows.resize(M);
    kernels::cpu::quantize_rows(M, K, x.data(), q.data(), rows.data(), Int8Isa::kPortable);
    packed.resize(kernels::cpu::packed_int8_bytes(N, K));
    kernels::cpu::pack_weights_int8(w.data(), N, K, packed.data());
  }
  std::vector<float> product(int rows_, Int8Isa isa, const std::vector<float>& y0,
                             bool accumulate) const {
    std::vector<float> y(y0.begin(), y0.begin() + size_t(rows_) * N);
    kernels::cpu::gemm_int8(rows_, N, K, q.data(), rows.data(), packed.data(), y.data(), accumulate,
                            isa);
    return y;
  }
};

TEST(CpuInt8, EveryKernelGivesThePortableBits) {
  std::printf("[ info ] best int8 kernel on this CPU: %s\n",
              kernels::cpu::int8_isa_name(kernels::cpu::best_int8_isa()));
  std::mt19937 rng(5);
  struct Shape {
    int M, N, K;
  };
  const std::vector<Shape> shapes = {{1, 1, 1},     {1, 32, 64},   {5, 7, 3},     {12, 32, 256},
                                     {13, 33, 257}, {17, 64, 301}, {6, 100, 513}, {145, 40, 96},
                                     {300, 65, 70}, {2, 768, 3072}};
  const int saved_threads = omp_get_max_threads();
  for (const Shape& s : shapes) {
    const Operands op(s.M, s.N, s.K, rng);
    const auto y0 = random_floats(size_t(s.M) * s.N, rng);
    for (bool accumulate : {false, true}) {
      const auto want = op.product(s.M, Int8Isa::kPortable, y0, accumulate);
      for (Int8Isa isa : runnable_int8_isas())
        for (int threads : {1, 2}) {
          omp_set_num_threads(threads);
          EXPECT_TRUE(same_bits(op.product(s.M, isa, y0, accumulate), want))
              << kernels::cpu::int8_isa_name(isa) << " M=" << s.M << " N=" << s.N << " K=" << s.K
              << " accumulate=" << accumulate << " threads=" << threads;
        }
    }
  }
  omp_set_num_threads(saved_threads);
}

TEST(CpuInt8, VectorQuantizationGivesThePortableBytes) {
  if (runnable_int8_isas().size() == 1) GTEST_SKIP() << "this CPU has no VNNI";
  std::mt19937 rng(7);
  for (int K : {1, 7, 8, 9, 64, 301, 3072}) {
    const int M = 5, depth = kernels::cpu::int8_depth(K);
    auto x = random_floats(size_t(M) * K, rng, 3.0f);
    for (int k = 0; k < K; ++k) x[k] = std::abs(x[k]);           // all >= 0 (relu²)
    for (int k = 0; k < K; ++k) x[K + k] = -std::abs(x[K + k]);  // all <= 0
    std::fill_n(x.begin() + 2 * K, K, 0.0f);                     // all zero
    std::vector<uint8_t> want(size_t(M) * depth, 1), got(size_t(M) * depth, 2);
    std::vector<RowQuant> want_rows(M), got_rows(M);
    kernels::cpu::quantize_rows(M, K, x.data(), want.data(), want_rows.data(), Int8Isa::kPortable);
    kernels::cpu::quantize_rows(M, K, x.data(), got.data(), got_rows.data(),
                                kernels::cpu::best_int8_isa());
    EXPECT_EQ(got, want) << "K=" << K;
    for (int m = 0; m < M; ++m) {
      EXPECT_EQ(got_rows[m].scale, want_rows[m].scale) << "K=" << K << " row " << m;
      EXPECT_EQ(got_rows[m].zero, want_rows[m].zero) << "K=" << K << " row " << m;
    }
  }
}

// The property the server relies on: the first rows of a product do not
// change when more rows share the call, or with the thread count.
TEST(CpuInt8, LeadingRowsDoNotDependOnTheRowCountOrThreads) {
  std::mt19937 rng(9);
  const Operands op(160, 768, 3072, rng);  // the FFN value product of the 0.1B shape
  const std::vector<float> zeros(size_t(160) * 768);
  const auto first = op.product(16, kernels::cpu::best_int8_isa(), zeros, false);
  const int saved_threads = omp_get_max_threads();
  for (int M : {1, 17, 32, 64, 160})
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      const auto y = op.product(M, kernels::cpu::best_int8_isa(), zeros, false);
      const int rows = std::min(M, 16);
      EXPECT_EQ(0, std::memcmp(y.data(), first.data(), sizeof(float) * rows * op.N))
          << "M=" << M << " threads=" << threads;
    }
  omp_set_num_threads(saved_threads);
}

// The product is that of the quantized operands, recomputed here from their
// definitions: x ≈ (q - zero)·s_x with |x - (q - zero)·s_x| <= s_x/2 (checked),
// w ≈ round(w / s_w)·s_w with s_w = absmax / 127. Within float rounding of it,
// and so within the quantization error of the float product:
// |y - x·w| <= Σ_k (|x_k| s_w/2 + |w_k| s_x/2 + s_x s_w/4).
TEST(CpuInt8, IsTheProductOfTheQuantizedOperands) {
  std::mt19937 rng(11);
  const Operands op(37, 100, 301, rng);
  const auto y = op.product(op.M, kernels::cpu::best_int8_isa(),
                            std::vector<float>(size_t(op.M) * op.N), false);
  const int depth = kernels::cpu::int8_depth(op.K);
  for (int m = 0; m < op.M; ++m)
    for (int k = 0; k < op.K; ++k) {
      const RowQuant& r = op.rows[m];
      const double back = (op.q[size_t(m) * depth + k] - r.zero) * double(r.scale);
      ASSERT_LE(std::abs(back - op.x[size_t(m) * op.K + k]), r.scale * 0.5001) << m << " " << k;
    }
  double worst = 0;
  for (int n = 0; n < op.N; ++n) {
    const float* w = &op.w[size_t(n) * op.K];
    double absmax = 0;
    for (int k = 0; k < op.K; ++k) absmax = std::max(absmax, double(std::abs(w[k])));
    const double sw = absmax / 127;
    for (int m = 0; m < op.M; ++m) {
      const float* x = &op.x[size_t(m) * op.K];
      const RowQuant& r = op.rows[m];
      double quantized = 0, magnitude = 0, exact = 0, bound = 0;
      for (int k = 0; k < op.K; ++k) {
        const double t = (op.q[size_t(m) * depth + k] - r.zero) * double(r.scale) *
                         (std::nearbyint(w[k] / sw) * sw);
        quantized += t;
        magnitude += std::abs(t);
        exact += double(x[k]) * w[k];
        bound += std::abs(x[k]) * sw / 2 + std::abs(w[k]) * r.scale / 2 + r.scale * sw / 4;
      }
      const double got = y[size_t(m) * op.N + n];
      ASSERT_NEAR(got, quantized, 1e-6 * magnitude + 1e-7) << "m=" << m << " n=" << n;
      ASSERT_LE(std::abs(got - exact), bound) << "m=" << m << " n=" << n;
      worst = std::max(worst, std::abs(got - exact) / bound);
    }
  }
  std::printf("[ info ] worst |error| / the quantization bound: %.3f\n", worst);
}

// ---- The model in int8 against float32 ------------------------------------

struct Agreement {
  double min_cosine = 1, mean_cosine = 0, max_logit_diff = 0;
  int pairs = 0, order_changes = 0;  // candidate pairs, and those whose rerank order flips
  int top1_changes = 0;
  double logit_spread = 0;  // the largest float32 logit range of a candidate list
};

// Runs `embed` (every head) and `rerank` (logits of candidate lists) in
// float32 and int8 and compares them.
Agreement compare(const io::Checkpoint& model, const io::Checkpoint& reranker,
                  const std::vector<std::vector<int32_t>>& embed,
                  const std::vector<std::vector<std::vector<int32_t>>>& rerank) {
  model::Engine f32(kernels::make_cpu_backend(0, kernels::MatmulDtype::kFloat32), model, &reranker);
  model::Engine i8(kernels::make_cpu_backend(0, kernels::MatmulDtype::kInt8), model, &reranker);
  Agreement a;
  const model::Outputs heads{model::Output::kRetrievalEmbedding, model::Output::kStsEmbedding,
                             model::Output::kClassificationEmbedding};
  const std::vector<model::Engine::Sequence> seqs(embed.begin(), embed.end());
  const auto want = f32.run(seqs, heads), got = i8.run(seqs, heads);
  int n = 0;
  for (size_t i = 0; i < seqs.size(); ++i)
    for (int h = 0; h < 3; ++h) {
      const double c = cosine(got[i].embeddings[h], want[i].embeddings[h]);
      a.min_cosine = std::min(a.min_cosine, c);
      a.mean_cosine += c;
      ++n;
    }
  a.mean_cosine /= n;
  const model::Outputs logits{model::Output::kRerankLogit};
  for (const auto& list : rerank) {
    const std::vector<model::Engine::Sequence> cands(list.begin(), list.end());
    const auto w = f32.run(cands, logits), g = i8.run(cands, logits);
    size_t best_w = 0, best_g = 0;
    float lo = w[0].logit, hi = w[0].logit;
    for (size_t i = 0; i < cands.size(); ++i) {
      a.max_logit_diff = std::max(a.max_logit_diff, double(std::abs(g[i].logit - w[i].logit)));
      lo = std::min(lo, w[i].logit);
      hi = std::max(hi, w[i].logit);
      if (w[i].logit > w[best_w].logit) best_w = i;
      if (g[i].logit > g[best_g].logit) best_g = i;
      for (size_t j = 0; j < i; ++j, ++a.pairs)
        a.order_changes += (w[i].logit < w[j].logit) != (g[i].logit < g[j].logit);
    }
    a.top1_changes += best_w != best_g;
    a.logit_spread = std::max(a.logit_spread, double(hi - lo));
  }
  return a;
}

void print(const char* what, const Agreement& a) {
  std::printf(
      "[ info ] int8 vs float32, %s: embeddings cosine min %.6f mean %.6f; rerank max |logit "
      "diff| %.4f (logits span %.3f), %d of %d candidate pairs reordered, %d top-1 changes\n",
      what, a.min_cosine, a.mean_cosine, a.max_logit_diff, a.logit_spread, a.order_changes, a.pairs,
      a.top1_changes);
}

TEST(CpuInt8, AgreesWithFloat32OnThe01bShape) {
  if (!kernels::cpu::has_vnni()) GTEST_SKIP() << "this CPU has no VNNI: int8 is refused";
  const io::ModelShape shape = io::ModelShape::tiny_01b();
  const io::Checkpoint model = io::make_random_embedding_checkpoint(shape, 21);
  const io::Checkpoint reranker = io::make_random_reranker_checkpoint(shape, 22);
  std::mt19937 rng(23);
  std::vector<std::vector<int32_t>> embed;
  for (int n : {1, 5, 40, 120, 300, 600}) embed.push_back(test::random_tokens(rng, n));
  // 50 candidates of one query: a document, then the query's tokens.
  const auto query = test::random_tokens(rng, 12);
  std::vector<std::vector<int32_t>> candidates;
  for (int i = 0; i < 50; ++i) {
    auto c = test::random_tokens(rng, 20 + i % 40);
    c.insert(c.end(), query.begin(), query.end());
    candidates.push_back(c);
  }
  const Agreement a = compare(model, reranker, embed, {candidates});
  print("0.1B random model", a);
  // Measured: 0.99972, 0.99977, 0.0215, 42 of 1225, 0 (with the LoRA factors
  // in int8 too: a min cosine of 0.99814; symmetric rows: logits 0.042 off).
  EXPECT_GE(a.min_cosine, 0.9995);
  EXPECT_GE(a.mean_cosine, 0.9996);
  EXPECT_LE(a.max_logit_diff, 0.035);
  EXPECT_LE(a.order_changes, 70);
  EXPECT_EQ(a.top1_changes, 0);
}

TEST(CpuInt8, AgreesWithFloat32OnTheFixtures) {
  RWKV_REQUIRE_FIXTURES();
  if (!kernels::cpu::has_vnni()) GTEST_SKIP() << "this CPU has no VNNI: int8 is refused";
  const io::Checkpoint model = io::load_checkpoint(test::fixtures_dir() + "/embedding.pth");
  std::vector<std::vector<int32_t>> embed;
  for (const auto& c : test::expected()["embeddings"]) embed.push_back(test::to_ids(c["ids"]));
  // The fixture's rerank documents with the query, and 30 candidates made of
  // the embedding texts with the query.
  const auto& online = test::expected()["rerank_online"];
  std::vector<std::vector<int32_t>> fixture_docs, texts;
  for (const auto& ids : online["ids"]) fixture_docs.push_back(test::to_ids(ids));
  const std::string query = online["query"].get<std::string>();
  for (const auto& c : test::expected()["embeddings"])
    if (c.contains("text"))
      texts.push_back(text::Tokenizer::world().encode(
          text::rerank_online_text(c["text"].get<std::string>(), query)));
  for (const std::string name : {"reranker_idx", "reranker_full"}) {
    const io::Checkpoint reranker = io::load_checkpoint(test::fixtures_dir() + "/" + name + ".pth");
    const Agreement a = compare(model, reranker, embed, {fixture_docs, texts});
    print(("fixtures, " + name).c_str(), a);
    // Measured: 0.99984, 0.99991, 0.0137 (idx) and 0.0194 (full), 0 and 1 of 51, 0.
    EXPECT_GE(a.min_cosine, 0.9997);
    EXPECT_GE(a.mean_cosine, 0.9998);
    EXPECT_LE(a.max_logit_diff, 0.03);
    EXPECT_LE(a.order_changes, 3);
    EXPECT_EQ(a.top1_changes, 0);
  }
}

}  // namespace
}  // namespace rwkv
