// Forward-pass throughput of the CPU engine on a random model of the 0.1B
// shape, per product dtype (float32; bfloat16 where the CPU has AVX512-BF16;
// int8 where it has VNNI), compared with bare OpenBLAS sgemm on the same
// matrix shapes in the same run. Prints the CPU's model and features, then
// tokens/s and the ratio of achieved model FLOP/s (matrix products only, LoRA
// included) to sgemm FLOP/s; then our product kernels alone on the model's
// shapes, per dtype (input conversion included), in GFLOP/s.
//
//   forward_bench [--quick] [--threads N] [--dtype NAME] [--case TxB] [--reps N]
//
// --dtype and --case narrow the run to one dtype and one shape (for perf);
// --reps sets the timed repetitions (best of them is printed).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench/cpu_description.h"
#include "bench/model_gemms.h"
#include "engine/io/random_model.h"
#include "engine/model/device_matrix.h"
#include "engine/model/engine.h"
#include "engine/text/tokenizer.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_int8.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using rwkv::bench::Gemm;
using rwkv::bench::gemm_flops;
using rwkv::bench::model_gemms;

// Seconds for bare sgemm over the same shapes (best of `reps`).
double time_bare_sgemm(const std::vector<Gemm>& gemms, int M, int reps) {
  int max_n = 1, max_k = 1;
  for (const Gemm& g : gemms) {
    max_n = std::max(max_n, g.n);
    max_k = std::max(max_k, g.k);
  }
  std::vector<float> x(size_t(M) * max_k, 0.01f), w(size_t(max_n) * max_k, 0.02f),
      y(size_t(M) * max_n);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    for (const Gemm& g : gemms)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, g.n, g.k, 1.0f, x.data(), g.k,
                  w.data(), g.k, 0.0f, y.data(), g.n);
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// Seconds for our products of `dtype` over the same shapes, through the
// backend as the model calls it (best of `reps`).
double time_kernels(rwkv::kernels::MatmulDtype dtype, int threads, const std::vector<Gemm>& gemms,
                    int M, int reps) {
  auto backend = rwkv::kernels::make_cpu_backend(threads, dtype);
  std::map<std::pair<int, int>, rwkv::model::DeviceMatrix> weights;  // one per distinct shape
  int max_n = 1, max_k = 1;
  for (const Gemm& g : gemms) {
    if (!weights.count({g.n, g.k}))
      weights.emplace(
          std::pair(g.n, g.k),
          rwkv::model::DeviceMatrix(*backend, std::vector<float>(size_t(g.n) * g.k, 0.02f), g.n,
                                    g.k, rwkv::kernels::MatrixInput::kActivations));
    max_n = std::max(max_n, g.n);
    max_k = std::max(max_k, g.k);
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  std::vector<float> x(size_t(M) * max_k), y(size_t(M) * max_n);
  for (float& v : x) v = d(rng);
  backend->reserve_matmul(M, std::max(max_n, max_k));
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    for (const Gemm& g : gemms)
      backend->matmul(M, x.data(), weights.at({g.n, g.k}).view(), y.data(), false);
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int threads = 0, reps_option = 0, case_t = 0, case_b = 0;
  const char* only_dtype = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--dtype") && i + 1 < argc)
      only_dtype = argv[++i];
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc)
      reps_option = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--case") && i + 1 < argc &&
             std::sscanf(argv[++i], "%dx%d", &case_t, &case_b) == 2 && case_t > 0 && case_b > 0)
      continue;
    else {
      std::fprintf(stderr,
                   "usage: forward_bench [--quick] [--threads N] [--dtype NAME] [--case TxB] "
                   "[--reps N]\n");
      return 2;
    }
  }
  const rwkv::io::ModelShape shape = rwkv::io::ModelShape::tiny_01b();
  const rwkv::io::Checkpoint ckpt = rwkv::io::make_random_embedding_checkpoint(shape, 1);
  const auto gemms = model_gemms(shape);
  const int reps = reps_option > 0 ? reps_option : quick ? 1 : 2;

  struct Case {
    int T, B;
  };
  const std::vector<Case> cases = case_t > 0 ? std::vector<Case>{{case_t, case_b}}
                                  : quick
                                      ? std::vector<Case>{{128, 4}, {512, 2}}
                                      : std::vector<Case>{{128, 1}, {128, 8},  {128, 32}, {512, 1},
                                                          {512, 8}, {2048, 1}, {2048, 4}};
  std::vector<rwkv::kernels::MatmulDtype> dtypes = {rwkv::kernels::MatmulDtype::kFloat32};
  if (rwkv::kernels::cpu::has_bf16()) dtypes.push_back(rwkv::kernels::MatmulDtype::kBFloat16);
  if (rwkv::kernels::cpu::has_vnni()) dtypes.push_back(rwkv::kernels::MatmulDtype::kInt8);
  if (only_dtype) {
    std::erase_if(dtypes, [&](auto d) {
      return rwkv::kernels::matmul_dtype_name(d) != std::string(only_dtype);
    });
    if (dtypes.empty()) {
      std::fprintf(stderr, "forward_bench: dtype %s is not available on this CPU\n", only_dtype);
      return 2;
    }
  }
  std::printf("cpu: %s; product kernel %s\n", rwkv::bench::cpu_description().c_str(),
              rwkv::kernels::cpu::isa_name(rwkv::kernels::cpu::best_isa()));
  std::printf("model: random, L=%d C=%d H=%d F=%d; matrix FLOPs/token = %.1f M\n", shape.layers,
              shape.channels, shape.channels / 64, shape.ffn, gemm_flops(gemms, 1) / 1e6);
  std::printf("%-9s %6s %4s %8s %12s %14s %14s %8s\n", "dtype", "T", "B", "tokens", "tokens/s",
              "model GFLOP/s", "sgemm GFLOP/s", "ratio");
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> id(1, 65529);
  for (const Case& c : cases) {
    std::vector<std::vector<int32_t>> inputs(c.B, std::vector<int32_t>(c.T));
    for (auto& in : inputs) {
      for (auto& t : in) t = id(rng);
      in.back() = rwkv::text::Tokenizer::kEos;
    }
    std::vector<rwkv::model::Engine::Sequence> seqs(inputs.begin(), inputs.end());
    const int M = c.T * c.B;
    const double flops = gemm_flops(gemms, M);
    const double bare = time_bare_sgemm(gemms, M, reps + 1);
    for (const auto dtype : dtypes) {
      rwkv::model::EngineOptions opt;
      opt.max_slots = c.B;
      opt.chunk_tokens = c.T;
      opt.max_step_tokens = c.T * c.B;
      rwkv::model::Engine engine(rwkv::kernels::make_cpu_backend(threads, dtype), ckpt, nullptr,
                                 opt);
      engine.run(seqs, {rwkv::model::Output::kRetrievalEmbedding});  // warm-up: workspace
                                                                     // allocation, thread start
      double best = 1e30;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        engine.run(seqs, {rwkv::model::Output::kRetrievalEmbedding});
        best = std::min(best, seconds_since(t0));
      }
      std::printf("%-9s %6d %4d %8d %12.0f %14.1f %14.1f %7.1f%%\n",
                  rwkv::kernels::matmul_dtype_name(dtype), c.T, c.B, M, M / best,
                  flops / best / 1e9, flops / bare / 1e9, 100.0 * bare / best);
      std::fflush(stdout);
    }
  }
  std::printf("\nproduct kernels alone on the model's shapes (GFLOP/s, ratio to float32):\n");
  std::printf("%8s %10s", "M", "sgemm");
  for (const auto dtype : dtypes) std::printf(" %18s", rwkv::kernels::matmul_dtype_name(dtype));
  std::printf("\n");
  const std::vector<int> kernel_rows = case_t > 0 ? std::vector<int>{case_t * case_b}
                                       : quick    ? std::vector<int>{512}
                                                  : std::vector<int>{16, 128, 1024, 4096};
  for (const int M : kernel_rows) {
    const double flops = gemm_flops(gemms, M);
    std::printf("%8d %10.1f", M, flops / time_bare_sgemm(gemms, M, reps + 1) / 1e9);
    double f32 = 0;
    for (const auto dtype : dtypes) {
      const double rate = flops / time_kernels(dtype, threads, gemms, M, reps + 1) / 1e9;
      if (dtype == rwkv::kernels::MatmulDtype::kFloat32) f32 = rate;
      if (f32 > 0)
        std::printf(" %9.1f (%5.2fx)", rate, rate / f32);
      else
        std::printf(" %18.1f", rate);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
