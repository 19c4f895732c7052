// GPU throughput of the engine on random models of the EmbeddingRWKV 0.1B
// shape (L12 C768), per matrix dtype (float32, float16, bfloat16):
//   embeddings  tokens/s at sequence lengths 512..16384 and batch 1/8/64, and
//               the model's matrix-product TFLOP/s (matrix FLOPs / forward
//               time) next to bare cuBLASLt GEMMs of the same shapes and rows
//               per step, measured in the same run (bench/bare_gemm.h);
//   gemm        per matrix shape: bare cuBLASLt vs the backend's matmul (its
//               input conversion and its one algorithm per matrix for all M);
//   rerank      pairs/s, 100 pairs, 64-token query, documents of 512..4096
//               tokens: online (document + query + EOS per pair) and offline
//               (document states cached first, then query + EOS on a copy of
//               each), and the ratio to the paper's EmbeddingRWKV-0.1B;
//   graphs      CUDA graphs on vs off, where steps repeat their shape;
//   wkv         chunked vs sequential WKV-7, the op alone and end to end.
// Cases that would overrun the time budget are skipped and said so.
//
//   gpu_bench [--device N] [--budget SECONDS] [--max-step TOKENS] [--quick]
//             [--only embeddings|gemm|rerank|graphs|wkv]
//
// Builds without CUDA print "built without CUDA" and exit 0.
#include <cstdio>

#ifndef RWKV_EMB_WITH_CUDA

int main() {
  std::puts("gpu_bench: built without CUDA (configure with -DRWKV_EMB_CUDA=ON)");
  return 0;
}

#else

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "bench/bare_gemm.h"
#include "bench/model_gemms.h"
#include "engine/io/random_model.h"
#include "engine/model/device_matrix.h"
#include "engine/model/engine.h"
#include "engine/text/tokenizer.h"
#include "kernels/cuda/cuda_backend.h"

namespace {

using Clock = std::chrono::steady_clock;
using rwkv::bench::Gemm;
using rwkv::bench::gemm_flops;
using rwkv::kernels::CudaOptions;
using rwkv::kernels::MatmulDtype;
using rwkv::model::Engine;
using rwkv::model::EngineOptions;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Options {
  int device = 0;
  double budget = 240;   // seconds for the whole run (checked between cases)
  int max_step = 65536;  // tokens per engine step
  bool quick = false;
  std::string only;  // one section, or all
};

constexpr MatmulDtype kDtypes[] = {MatmulDtype::kFloat16, MatmulDtype::kBFloat16,
                                   MatmulDtype::kFloat32};
const char* name(MatmulDtype d) { return rwkv::kernels::matmul_dtype_name(d); }

// EmbeddingRWKV-0.1B in the paper (RTX 4090): online pairs/s by document
// length, and offline pairs/s (cached document states).
constexpr int kPaperDocLengths[] = {512, 1024, 2048, 4096};
constexpr double kPaperOnline[] = {560, 300, 161, 82};
constexpr double kPaperOffline = 2440;

std::vector<int32_t> random_ids(std::mt19937& rng, int n, bool eos_last) {
  std::uniform_int_distribution<int32_t> id(1, 65529);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = id(rng);
  if (eos_last) t.back() = rwkv::text::Tokenizer::kEos;
  return t;
}

rwkv::model::Outputs nothing_but(bool rerank, bool state) {
  using rwkv::model::Output;
  if (rerank)
    return state ? rwkv::model::Outputs{Output::kRerankLogit, Output::kFinalState}
                 : rwkv::model::Outputs{Output::kRerankLogit};
  return state ? rwkv::model::Outputs{Output::kFinalState} : rwkv::model::Outputs{};
}

class Bench {
 public:
  explicit Bench(const Options& o)
      : o_(o),
        shape_(rwkv::io::ModelShape::tiny_01b()),
        gemms_(rwkv::bench::model_gemms(shape_)),
        start_(Clock::now()) {
    std::printf("building random 0.1B-shape checkpoints (L=%d C=%d F=%d)...\n", shape_.layers,
                shape_.channels, shape_.ffn);
    std::fflush(stdout);
    model_ = rwkv::io::make_random_embedding_checkpoint(shape_, 1);
    reranker_ = rwkv::io::make_random_reranker_checkpoint(shape_, 2);
    const auto probe = rwkv::kernels::make_cuda_backend(o.device);
    std::printf("device: %s\nmatrix FLOPs per token: %.1f M; budget %.0f s; max step %d tokens\n\n",
                probe->name().c_str(), gemm_flops(gemms_, 1) / 1e6, o.budget, o.max_step);
  }

  bool wants(const char* section) const { return o_.only.empty() || o_.only == section; }

  void embeddings() {
    std::printf(
        "== embeddings: tokens/s; model TF/s = matrix FLOPs / forward time; bare = cuBLASLt "
        "GEMMs of the same shapes at M = tokens per step\n");
    std::printf("%-8s %6s %4s %9s %12s %11s %10s %7s\n", "dtype", "T", "B", "tokens", "tokens/s",
                "model TF/s", "bare TF/s", "ratio");
    const std::vector<int> lengths = o_.quick
                                         ? std::vector<int>{512, 4096}
                                         : std::vector<int>{512, 1024, 2048, 4096, 8192, 16384};
    const std::vector<int> batches = o_.quick ? std::vector<int>{1, 8} : std::vector<int>{1, 8, 64};
    std::mt19937 rng(3);
    for (MatmulDtype dtype : kDtypes) {
      for (int B : batches) {
        // Every sequence advances in each step: chunk = max_step / B tokens.
        EngineOptions opt;
        opt.max_slots = B;
        opt.max_step_tokens = o_.max_step;
        opt.chunk_tokens = std::max(1, o_.max_step / B);
        std::unique_ptr<Engine> engine;
        for (int T : lengths) {
          const double tokens = double(T) * B;
          if (!fits(tokens, dtype)) {
            std::printf("%-8s %6d %4d %9.0f  skipped: time budget\n", name(dtype), T, B, tokens);
            continue;
          }
          if (!engine) {
            engine = make_engine(dtype, opt, false);
            warm_up(*engine, B);
          }
          std::vector<std::vector<int32_t> > inputs;
          for (int b = 0; b < B; ++b) inputs.push_back(random_ids(rng, T, true));
          std::vector<Engine::Sequence> seqs(inputs.begin(), inputs.end());
          const auto t0 = Clock::now();
          engine->run(seqs, {rwkv::model::Output::kRetrievalEmbedding});
          const double secs = seconds_since(t0);
          observe(tokens, secs, dtype);

          const int M = int(std::min<double>(tokens, o_.max_step));
          const double model_tf = gemm_flops(gemms_, tokens) / secs / 1e12;
          const double bare_tf = gemm_flops(gemms_, M) / bare_seconds(dtype, M) / 1e12;
          std::printf("%-8s %6d %4d %9.0f %12.0f %11.1f %10.1f %6.1f%%\n", name(dtype), T, B,
                      tokens, tokens / secs, model_tf, bare_tf, 100 * model_tf / bare_tf);
          std::fflush(stdout);
        }
      }
    }
    std::printf("\n");
  }

  void gemm_shapes() {
    std::printf(
        "== gemm: TF/s per matrix shape of the model (best of 3): bare cuBLASLt / the backend's "
        "matmul (input conversion + one algorithm per matrix for every M)\n");
    struct Shape {
      const char* what;
      int n, k;
    };
    const int C = shape_.channels;
    const Shape shapes[] = {{"r/k/v/output [C x C]", C, C},
                            {"ffn key [F x C]", shape_.ffn, C},
                            {"ffn value [C x F]", C, shape_.ffn},
                            {"LoRA down [64 x C]", shape_.lora_w, C},
                            {"LoRA up [C x 64]", C, shape_.lora_w}};
    std::printf("%-8s %-22s %17s %17s %17s\n", "dtype", "shape (M = rows)", "M=4096", "M=16384",
                "M=65536");
    for (MatmulDtype dtype : kDtypes) {
      auto be = rwkv::kernels::make_cuda_backend(o_.device, {dtype});
      be->reserve_matmul(o_.max_step, shape_.ffn);
      const size_t elements = size_t(o_.max_step) * shape_.ffn;
      rwkv::model::DeviceArray x(*be, std::vector<float>(elements, 0.01f)), y(*be, elements);
      for (const Shape& s : shapes) {
        // The FFN value product's input is relu²: bfloat16 in float16 mode.
        const auto input = s.k == shape_.ffn ? rwkv::kernels::MatrixInput::kUnbounded
                                             : rwkv::kernels::MatrixInput::kActivations;
        const rwkv::model::DeviceMatrix w(*be, std::vector<float>(size_t(s.n) * s.k, 0.01f), s.n,
                                          s.k, input);
        std::printf("%-8s %-22s", name(dtype), s.what);
        for (int M : {4096, 16384, 65536}) {
          if (M > o_.max_step) {
            std::printf(" %17s", "-");
            continue;
          }
          const std::vector<Gemm> one(8, Gemm{s.n, s.k});
          const double bare = gemm_flops(one, M) / bare_gemm().seconds(w.view().dtype, one, M, 3);
          double best = 1e30;
          for (int r = 0; r < 4; ++r) {
            be->synchronize();
            const auto t0 = Clock::now();
            for (int i = 0; i < 8; ++i) be->matmul(M, x.get(), w.view(), y.get(), false);
            be->synchronize();
            if (r > 0) best = std::min(best, seconds_since(t0));
          }
          std::printf("     %5.1f / %5.1f", bare / 1e12, gemm_flops(one, M) / best / 1e12);
        }
        std::printf("\n");
        std::fflush(stdout);
      }
    }
    std::printf("\n");
  }

  void rerank() {
    std::printf(
        "== rerank: pairs/s, 100 pairs, 64-token query (offline: states cached on the host first "
        "and uploaded per pair, as the server does); paper = EmbeddingRWKV-0.1B\n");
    std::printf("%-8s %8s %14s %8s %16s %15s %8s\n", "dtype", "doc len", "online pairs/s", "/paper",
                "cache docs (s)", "offline pairs/s", "/paper");
    const int pairs = o_.quick ? 20 : 100, query_len = 64;
    std::mt19937 rng(5);
    for (MatmulDtype dtype : kDtypes) {
      EngineOptions opt;
      opt.max_slots = pairs;
      opt.chunk_tokens = 4096 + query_len + 1;
      opt.max_step_tokens = std::max(o_.max_step, opt.chunk_tokens);
      auto engine = make_engine(dtype, opt, false);
      const auto query = random_ids(rng, query_len, false);
      for (size_t i = 0; i < std::size(kPaperDocLengths); ++i) {
        const int doc_len = kPaperDocLengths[i];
        const double online_tokens = double(pairs) * (doc_len + query_len + 1);
        if (!fits(online_tokens + double(pairs) * doc_len, dtype)) {
          std::printf("%-8s %8d  skipped: time budget\n", name(dtype), doc_len);
          continue;
        }
        std::vector<std::vector<int32_t> > docs, online;
        for (int p = 0; p < pairs; ++p) {
          docs.push_back(random_ids(rng, doc_len, false));
          online.push_back(docs.back());
          online.back().insert(online.back().end(), query.begin(), query.end());
          online.back().push_back(rwkv::text::Tokenizer::kEos);
        }
        std::vector<Engine::Sequence> seqs(online.begin(), online.end());
        engine->run(std::span(seqs).first(std::min(pairs, 4)), nothing_but(true, false));
        auto t0 = Clock::now();
        engine->run(seqs, nothing_but(true, false));
        const double online_secs = seconds_since(t0);
        observe(online_tokens, online_secs, dtype);

        std::vector<Engine::Sequence> doc_seqs(docs.begin(), docs.end());
        t0 = Clock::now();
        const auto cached = engine->run(doc_seqs, nothing_but(false, true));
        const double cache_secs = seconds_since(t0);
        const double offline_secs = offline_query_seconds(*engine, cached, query, 2);
        std::printf("%-8s %8d %14.1f %7.2fx %16.3f %15.1f %7.2fx\n", name(dtype), doc_len,
                    pairs / online_secs, pairs / online_secs / kPaperOnline[i], cache_secs,
                    pairs / offline_secs, pairs / offline_secs / kPaperOffline);
        std::fflush(stdout);
      }
    }
    std::printf("\n");
  }

  void graphs() {
    std::printf(
        "== graphs: CUDA graphs off vs on (float16) where steps repeat their shape: offline "
        "rerank queries (100 x 65 tokens + the reranker) and small embedding batches\n");
    std::printf("%-40s %14s %14s %8s\n", "case", "off", "on", "on/off");
    std::mt19937 rng(7);
    const auto query = random_ids(rng, 64, false);
    double rate[2][2] = {};  // [case][graphs]
    for (bool graphs : {false, true}) {
      EngineOptions opt;
      opt.max_slots = 100;
      opt.max_step_tokens = o_.max_step;
      auto engine = make_engine(MatmulDtype::kFloat16, opt, graphs);
      std::vector<std::vector<int32_t> > docs;
      for (int p = 0; p < 100; ++p) docs.push_back(random_ids(rng, 512, false));
      std::vector<Engine::Sequence> doc_seqs(docs.begin(), docs.end());
      const auto cached = engine->run(doc_seqs, nothing_but(false, true));
      rate[0][graphs] = 100 / offline_query_seconds(*engine, cached, query, 5);

      // 16 texts of 64 tokens per request, one step each.
      std::vector<std::vector<int32_t> > texts;
      for (int b = 0; b < 16; ++b) texts.push_back(random_ids(rng, 64, true));
      std::vector<Engine::Sequence> seqs(texts.begin(), texts.end());
      for (int r = 0; r < 3; ++r)
        engine->run(seqs, {rwkv::model::Output::kRetrievalEmbedding});  // seen, recorded, replayed
      const int reps = 20;
      const auto t0 = Clock::now();
      for (int r = 0; r < reps; ++r) engine->run(seqs, {rwkv::model::Output::kRetrievalEmbedding});
      rate[1][graphs] = reps * 16 * 64 / seconds_since(t0);
      if (graphs)
        std::printf("(replays: %lld)\n",
                    static_cast<long long>(rwkv::kernels::cuda_graph_replays(engine->backend())));
    }
    std::printf("%-40s %14.1f %14.1f %7.2fx\n", "offline rerank, 512-token docs (pairs/s)",
                rate[0][0], rate[0][1], rate[0][1] / rate[0][0]);
    std::printf("%-40s %14.0f %14.0f %7.2fx\n\n", "embeddings, 16 x 64 tokens (tokens/s)",
                rate[1][0], rate[1][1], rate[1][1] / rate[1][0]);
    std::fflush(stdout);
  }

  void wkv() {
    std::printf(
        "== wkv: the WKV-7 op alone (H=12, float32 state), sequential vs chunked (16-token "
        "chunks): microseconds per call, best of 5\n");
    std::printf("%6s %7s %12s %12s %9s\n", "seqs", "length", "sequential", "chunked", "speedup");
    const int H = shape_.channels / 64, C = shape_.channels;
    const int max_tokens = o_.quick ? 16384 : 262144;
    auto sequential = rwkv::kernels::make_cuda_backend(o_.device);
    CudaOptions chunked_options;
    chunked_options.wkv_chunked_min_tokens = 1;
    auto chunked = rwkv::kernels::make_cuda_backend(o_.device, chunked_options);
    // Inputs for the largest case, shared by both backends (one device):
    // decay 0.9, small values elsewhere, stable and the same work as real data.
    const size_t elements = size_t(max_tokens) * C;
    WkvBuffers buf{rwkv::model::DeviceArray(*sequential, std::vector<float>(elements, 0.01f)),
                   rwkv::model::DeviceArray(*sequential, std::vector<float>(elements, 0.9f)),
                   rwkv::model::DeviceArray(*sequential, elements),
                   rwkv::model::DeviceArray(*sequential, size_t(64) * H * 64 * 64),
                   rwkv::model::DeviceInts(*sequential, size_t(max_tokens))};
    for (int seqs : {1, 4, 16, 64}) {
      int crossover = 0;
      for (int len : {64, 256, 1024, 4096, 16384}) {
        if (seqs * len > max_tokens) continue;
        const double t_seq = wkv_seconds(*sequential, buf, seqs, len, H);
        const double t_chunk = wkv_seconds(*chunked, buf, seqs, len, H);
        if (crossover == 0 && t_chunk < t_seq) crossover = len;
        std::printf("%6d %7d %12.1f %12.1f %8.2fx\n", seqs, len, t_seq * 1e6, t_chunk * 1e6,
                    t_seq / t_chunk);
        std::fflush(stdout);
      }
      if (crossover)
        std::printf("  %d sequence(s): chunked faster from %d tokens\n", seqs, crossover);
      else
        std::printf("  %d sequence(s): chunked never faster here\n", seqs);
    }
    // End to end: one long document, float16.
    const int T = 16384;
    std::printf("end to end, 1 x %d tokens, float16 (tokens/s):", T);
    std::mt19937 rng(9);
    const auto doc = random_ids(rng, T, true);
    for (int threshold : {0, 1024}) {
      if (!fits(T, MatmulDtype::kFloat16)) break;
      EngineOptions opt;
      opt.max_slots = 1;
      opt.max_step_tokens = opt.chunk_tokens = T;
      CudaOptions co;
      co.dtype = MatmulDtype::kFloat16;
      co.wkv_chunked_min_tokens = threshold;
      Engine engine(rwkv::kernels::make_cuda_backend(o_.device, co), model_, nullptr, opt);
      const Engine::Sequence seq{doc};
      engine.run(std::span(&seq, 1), {rwkv::model::Output::kRetrievalEmbedding});
      const auto t0 = Clock::now();
      engine.run(std::span(&seq, 1), {rwkv::model::Output::kRetrievalEmbedding});
      std::printf("  %s %.0f", threshold ? "chunked" : "sequential", T / seconds_since(t0));
    }
    std::printf("\n\n");
  }

  void footer() { std::printf("total bench time: %.1f s\n", seconds_since(start_)); }

 private:
  std::unique_ptr<Engine> make_engine(MatmulDtype dtype, const EngineOptions& opt, bool graphs) {
    CudaOptions co;
    co.dtype = dtype;
    co.graphs = graphs;
    return std::make_unique<Engine>(rwkv::kernels::make_cuda_backend(o_.device, co), model_,
                                    &reranker_, opt);
  }

  // A short run: cuBLASLt plans, kernel loading.
  void warm_up(Engine& engine, int B) {
    std::mt19937 rng(1);
    std::vector<std::vector<int32_t> > inputs;
    for (int b = 0; b < B; ++b) inputs.push_back(random_ids(rng, 64, true));
    std::vector<Engine::Sequence> seqs(inputs.begin(), inputs.end());
    engine.run(seqs, {rwkv::model::Output::kRetrievalEmbedding});
  }

  // Best of `reps` runs of the query on a copy of each cached state.
  double offline_query_seconds(Engine& engine, const std::vector<Engine::Result>& cached,
                               const std::vector<int32_t>& query, int reps) {
    std::vector<int32_t> query_eos = query;
    query_eos.push_back(rwkv::text::Tokenizer::kEos);
    std::vector<Engine::Sequence> queries;
    for (const auto& c : cached) queries.push_back({query_eos, &c.state});
    engine.run(std::span(queries).first(std::min<size_t>(queries.size(), 4)),
               nothing_but(true, false));
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      engine.run(queries, nothing_but(true, false));
      best = std::min(best, seconds_since(t0));
    }
    return best;
  }

  struct WkvBuffers {
    rwkv::model::DeviceArray inputs, decay, y, state;
    rwkv::model::DeviceInts tokens;
  };

  // The WKV op alone over `seqs` sequences of `len` tokens, best of 5.
  double wkv_seconds(rwkv::kernels::Backend& be, WkvBuffers& buf, int seqs, int len, int H) {
    std::vector<int32_t> starts(seqs + 1), slots(seqs);
    for (int s = 0; s <= seqs; ++s) starts[s] = s * len;
    for (int s = 0; s < seqs; ++s) slots[s] = s;
    const rwkv::model::DeviceInts d_starts(be, starts), d_slots(be, slots);
    be.zero(buf.state.get(), buf.state.size() * sizeof(float));
    const rwkv::kernels::PackedBatch batch{seqs * len, seqs, buf.tokens.get(), d_starts.get(),
                                           d_slots.get()};
    const float* in = buf.inputs.get();
    double best = 1e30;
    for (int rep = 0; rep < 6; ++rep) {
      be.synchronize();
      const auto t0 = Clock::now();
      be.wkv7(batch, H, in, buf.decay.get(), in, in, in, in,
              {buf.state.get(), int64_t(H) * 64 * 64}, buf.y.get());
      be.synchronize();
      if (rep > 0) best = std::min(best, seconds_since(t0));
    }
    return best;
  }

  // Whether `tokens` more tokens fit in the budget at this dtype's slowest rate.
  bool fits(double tokens, MatmulDtype dtype) const {
    const auto it = slowest_rate_.find(dtype);
    const double predicted = it != slowest_rate_.end() ? tokens / it->second : 0;
    return seconds_since(start_) + predicted <= o_.budget;
  }
  void observe(double tokens, double secs, MatmulDtype dtype) {
    const double rate = tokens / secs;
    auto [it, fresh] = slowest_rate_.emplace(dtype, rate);
    if (!fresh) it->second = std::min(it->second, rate);
  }
  rwkv::bench::BareGemm& bare_gemm() {
    if (!bare_) {
      const size_t rows = size_t(o_.max_step), width = size_t(shape_.ffn);
      bare_ = std::make_unique<rwkv::bench::BareGemm>(o_.device, rows * width, width * width,
                                                      rows * width);
    }
    return *bare_;
  }
  double bare_seconds(MatmulDtype dtype, int M) {
    const auto key = std::pair{dtype, M};
    auto it = bare_times_.find(key);
    if (it == bare_times_.end())
      it = bare_times_.emplace(key, bare_gemm().seconds(dtype, gemms_, M, 3)).first;
    return it->second;
  }

  Options o_;
  rwkv::io::ModelShape shape_;
  std::vector<Gemm> gemms_;
  Clock::time_point start_;
  rwkv::io::Checkpoint model_, reranker_;
  std::unique_ptr<rwkv::bench::BareGemm> bare_;
  std::map<std::pair<MatmulDtype, int>, double> bare_times_;
  std::map<MatmulDtype, double> slowest_rate_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--quick"))
      o.quick = true;
    else if (!std::strcmp(argv[i], "--device") && has_value)
      o.device = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--budget") && has_value)
      o.budget = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--max-step") && has_value)
      o.max_step = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--only") && has_value)
      o.only = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: gpu_bench [--device N] [--budget SECONDS] [--max-step TOKENS] "
                   "[--quick] [--only embeddings|gemm|rerank|graphs|wkv]\n");
      return 2;
    }
  }
  if (rwkv::kernels::cuda_device_count() == 0) {
    std::puts("gpu_bench: no CUDA device (no NVIDIA driver or no GPU); nothing measured");
    return 1;
  }
  try {
    Bench bench(o);
    if (bench.wants("embeddings")) bench.embeddings();
    if (bench.wants("gemm")) bench.gemm_shapes();
    if (bench.wants("rerank")) bench.rerank();
    if (bench.wants("graphs")) bench.graphs();
    if (bench.wants("wkv")) bench.wkv();
    bench.footer();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

#endif
