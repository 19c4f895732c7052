// GPU throughput of the engine on random models of the 0.1B shape (float32):
//   1. embeddings: tokens/s for sequence lengths 512..16384 at batch 1/8/64;
//      the model's achieved matrix-product TFLOP/s next to bare cuBLAS SGEMM
//      (the backend's matmul, nothing else) on the same shapes, in this run;
//   2. bare SGEMM TFLOP/s per matrix shape of the model;
//   3. rerank pairs/s: online (one sequence per pair: document + 64-token
//      query + EOS) and offline (document states cached first, then 64 query
//      tokens + EOS on a copy of each), 100 pairs, documents of 512..4096 tokens.
// Cases that would overrun the time budget are skipped and said so.
//
//   gpu_bench [--device N] [--budget SECONDS] [--max-step TOKENS] [--quick]
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
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "bench/model_gemms.h"
#include "engine/engine.h"
#include "engine/random_model.h"
#include "engine/tokenizer.h"
#include "kernels/cuda/cuda_backend.h"

namespace {

using Clock = std::chrono::steady_clock;
using rwkv::Engine;
using rwkv::EngineOptions;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Options {
  int device = 0;
  double budget = 240;   // seconds for the whole run (rough: checked between cases)
  int max_step = 65536;  // tokens per engine step
  bool quick = false;
};

using rwkv::bench::Gemm;
using rwkv::bench::gemm_flops;
using rwkv::bench::model_gemms;

// Bare SGEMMs through the backend's matmul (one cublasSgemm each), best of reps.
class GemmTimer {
 public:
  GemmTimer(rwkv::kernels::Backend& be, int max_m, int max_n, int max_k)
      : be_(be),
        x_(be, size_t(max_m) * max_k),
        w_(be, size_t(max_n) * max_k),
        y_(be, size_t(max_m) * max_n) {
    // Small nonzero values: the same work as real data, no denormals.
    std::vector<float> ones(std::max(x_.size(), w_.size()), 0.01f);
    be.to_device(x_.get(), ones.data(), x_.size() * sizeof(float));
    be.to_device(w_.get(), ones.data(), w_.size() * sizeof(float));
  }
  double seconds(const std::vector<Gemm>& gemms, int M, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      be_.synchronize();
      const auto t0 = Clock::now();
      for (const Gemm& g : gemms) be_.matmul(M, g.n, g.k, x_.get(), w_.get(), y_.get(), false);
      be_.synchronize();
      best = std::min(best, seconds_since(t0));
    }
    return best;
  }

 private:
  rwkv::kernels::Backend& be_;
  rwkv::DeviceArray x_, w_, y_;
};

std::vector<int32_t> random_ids(std::mt19937& rng, int n) {
  std::uniform_int_distribution<int32_t> id(1, 65529);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = id(rng);
  return t;
}

class Bench {
 public:
  explicit Bench(const Options& o)
      : o_(o),
        shape_(rwkv::ModelShape::tiny_01b()),
        gemms_(model_gemms(shape_)),
        start_(Clock::now()) {
    std::printf("building random 0.1B-shape checkpoints (L=%d C=%d F=%d)...\n", shape_.layers,
                shape_.channels, shape_.ffn);
    std::fflush(stdout);
    model_ = rwkv::make_random_embedding_checkpoint(shape_, 1);
    reranker_ = rwkv::make_random_reranker_checkpoint(shape_, 2);
    gemm_backend_ = rwkv::kernels::make_cuda_backend(o.device);
    std::printf("device: %s; matrix FLOPs per token: %.1f M; budget %.0f s\n\n",
                gemm_backend_->name().c_str(), gemm_flops(gemms_, 1) / 1e6, o.budget);
  }

  void embeddings() {
    std::printf(
        "== 1. Embedding throughput (float32; model TFLOP/s = matrix FLOPs / forward time; "
        "bare = cuBLAS SGEMM on the same shapes, M = tokens per step)\n");
    std::printf("%6s %4s %9s %6s %12s %12s %12s %7s\n", "T", "B", "tokens", "steps", "tokens/s",
                "model TF/s", "bare TF/s", "ratio");
    const std::vector<int> lengths = o_.quick
                                         ? std::vector<int>{512, 4096}
                                         : std::vector<int>{512, 1024, 2048, 4096, 8192, 16384};
    const std::vector<int> batches = o_.quick ? std::vector<int>{1, 8} : std::vector<int>{1, 8, 64};
    std::mt19937 rng(3);
    for (int T : lengths) {
      for (int B : batches) {
        const double tokens = double(T) * B;
        if (!fits(tokens)) {
          std::printf("%6d %4d %9.0f  skipped: time budget\n", T, B, tokens);
          continue;
        }
        EngineOptions opt;
        opt.max_slots = B;
        opt.chunk_tokens = std::min(T, o_.max_step);
        opt.max_step_tokens =
            std::clamp(B * T, opt.chunk_tokens, std::max(o_.max_step, opt.chunk_tokens));
        Engine engine(rwkv::kernels::make_cuda_backend(o_.device), model_, nullptr, opt);
        std::vector<std::vector<int32_t> > inputs;
        for (int b = 0; b < B; ++b) {
          inputs.push_back(random_ids(rng, T));
          inputs.back().back() = rwkv::Tokenizer::kEos;
        }
        // Warm-up: one step's worth (workspace allocation, cuBLAS initialization).
        const int warm = std::min(B, std::max(1, opt.max_step_tokens / T));
        std::vector<Engine::Sequence> seqs(inputs.begin(), inputs.end());
        engine.run(std::span(seqs).first(warm), {});
        const auto t0 = Clock::now();
        engine.run(seqs, {});
        const double secs = seconds_since(t0);
        observe(tokens, secs);

        const int M = std::min(B * T, opt.max_step_tokens);
        const double steps = std::ceil(tokens / opt.max_step_tokens);
        const double bare = bare_seconds(M);
        const double model_tf = gemm_flops(gemms_, tokens) / secs / 1e12;
        const double bare_tf = gemm_flops(gemms_, M) / bare / 1e12;
        std::printf("%6d %4d %9.0f %6.0f %12.0f %12.2f %12.2f %6.1f%%\n", T, B, tokens, steps,
                    tokens / secs, model_tf, bare_tf, 100 * model_tf / bare_tf);
        std::fflush(stdout);
      }
    }
    std::printf("\n");
  }

  void gemm_shapes() {
    std::printf("== 2. Bare cuBLAS SGEMM per shape of the model (TFLOP/s, best of 3)\n");
    struct Shape {
      const char* what;
      int n, k;
    };
    const int C = shape_.channels;
    const Shape shapes[] = {{"r/k/v/output [C x C]", C, C},
                            {"ffn key [F x C]", shape_.ffn, C},
                            {"ffn value [C x F]", C, shape_.ffn},
                            {"LoRA down [D=64 x C]", shape_.lora_w, C},
                            {"LoRA up [C x D=64]", C, shape_.lora_w}};
    std::printf("%-24s %10s %10s %10s\n", "shape (M = rows)", "M=4096", "M=16384", "M=65536");
    for (const Shape& s : shapes) {
      std::printf("%-24s", s.what);
      for (int M : {4096, 16384, 65536}) {
        if (M > o_.max_step) {
          std::printf(" %10s", "-");
          continue;
        }
        const std::vector<Gemm> one(8, Gemm{s.n, s.k});
        const double secs = timer().seconds(one, M, 3);
        std::printf(" %10.2f", gemm_flops(one, M) / secs / 1e12);
      }
      std::printf("\n");
    }
    std::printf("\n");
    std::fflush(stdout);
  }

  void rerank() {
    std::printf("== 3. Rerank, 100 pairs per row (random documents, 64-token queries)\n");
    std::printf("%8s %14s %14s %16s %14s\n", "doc len", "online pairs/s", "online tok/s",
                "cache docs (s)", "offline pairs/s");
    const int pairs = o_.quick ? 20 : 100, query_len = 64;
    std::mt19937 rng(5);
    for (int doc_len : {512, 1024, 2048, 4096}) {
      const double tokens = double(pairs) * (doc_len + query_len + 1);
      if (!fits(2 * tokens)) {
        std::printf("%8d  skipped: time budget\n", doc_len);
        continue;
      }
      EngineOptions opt;
      opt.max_slots = pairs;
      opt.chunk_tokens = doc_len + query_len + 1;
      opt.max_step_tokens = std::max(o_.max_step, opt.chunk_tokens);
      Engine engine(rwkv::kernels::make_cuda_backend(o_.device), model_, &reranker_, opt);
      const auto query = random_ids(rng, query_len);
      std::vector<std::vector<int32_t> > docs, online;
      for (int i = 0; i < pairs; ++i) {
        docs.push_back(random_ids(rng, doc_len));
        online.push_back(docs.back());
        online.back().insert(online.back().end(), query.begin(), query.end());
        online.back().push_back(rwkv::Tokenizer::kEos);
      }
      Engine::Wanted rerank_only;
      rerank_only.heads = {false, false, false};
      rerank_only.rerank = true;

      std::vector<Engine::Sequence> seqs(online.begin(), online.end());
      engine.run(std::span(seqs).first(std::min(pairs, 4)), rerank_only);  // warm-up
      auto t0 = Clock::now();
      engine.run(seqs, rerank_only);
      const double online_secs = seconds_since(t0);
      observe(tokens, online_secs);

      // Offline: cache each document's state (read back to the host, as the
      // server's state store does), then run only the query on a copy.
      Engine::Wanted state_only;
      state_only.heads = {false, false, false};
      state_only.state = true;
      std::vector<Engine::Sequence> doc_seqs(docs.begin(), docs.end());
      t0 = Clock::now();
      const auto cached = engine.run(doc_seqs, state_only);
      const double cache_secs = seconds_since(t0);
      std::vector<int32_t> query_eos = query;
      query_eos.push_back(rwkv::Tokenizer::kEos);
      std::vector<Engine::Sequence> queries;
      for (const auto& c : cached) queries.push_back({query_eos, &c.state});
      t0 = Clock::now();
      engine.run(queries, rerank_only);
      const double offline_secs = seconds_since(t0);

      std::printf("%8d %14.1f %14.0f %16.3f %14.1f\n", doc_len, pairs / online_secs,
                  tokens / online_secs, cache_secs, pairs / offline_secs);
      std::fflush(stdout);
    }
    std::printf(
        "(offline pairs/s includes uploading each cached state, %.1f MB, to the device)\n\n",
        double(shape_.layers) * (shape_.channels / 64) * 64 * 64 * 4 / 1e6);
  }

  void footer() { std::printf("total bench time: %.1f s\n", seconds_since(start_)); }

 private:
  // Whether `tokens` more tokens fit in the budget at the slowest rate seen so far.
  bool fits(double tokens) const {
    const double predicted = slowest_rate_ > 0 ? tokens / slowest_rate_ : 0;
    return seconds_since(start_) + predicted <= o_.budget;
  }
  void observe(double tokens, double secs) {
    const double rate = tokens / secs;
    slowest_rate_ = slowest_rate_ > 0 ? std::min(slowest_rate_, rate) : rate;
  }
  GemmTimer& timer() {
    if (!timer_)
      timer_ = std::make_unique<GemmTimer>(*gemm_backend_, o_.max_step, shape_.ffn, shape_.ffn);
    return *timer_;
  }
  double bare_seconds(int M) {
    auto it = bare_.find(M);
    if (it == bare_.end()) it = bare_.emplace(M, timer().seconds(gemms_, M, 3)).first;
    return it->second;
  }

  Options o_;
  rwkv::ModelShape shape_;
  std::vector<Gemm> gemms_;
  Clock::time_point start_;
  rwkv::Checkpoint model_, reranker_;
  std::unique_ptr<rwkv::kernels::Backend> gemm_backend_;
  std::unique_ptr<GemmTimer> timer_;
  std::map<int, double> bare_;
  double slowest_rate_ = 0;
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
    else {
      std::fprintf(
          stderr,
          "usage: gpu_bench [--device N] [--budget SECONDS] [--max-step TOKENS] [--quick]\n");
      return 2;
    }
  }
  if (rwkv::kernels::cuda_device_count() == 0) {
    std::puts("gpu_bench: no CUDA device (no NVIDIA driver or no GPU); nothing measured");
    return 1;
  }
  try {
    Bench bench(o);
    bench.embeddings();
    bench.gemm_shapes();
    bench.rerank();
    bench.footer();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

#endif
