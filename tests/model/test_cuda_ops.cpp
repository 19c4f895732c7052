// The CUDA backend's ops against the CPU backend's, op by op: every kernel on
// float32, the matrix products per dtype within the bound that rounding their
// inputs implies, and the chunked WKV form against the sequential one. Every
// test skips with "no CUDA device" where there is none; builds without CUDA
// have one skipped placeholder.
#include <gtest/gtest.h>

#ifdef RWKV_EMB_WITH_CUDA

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

#include "engine/model/device_matrix.h"
#include "kernels/cuda/cuda_backend.h"
#include "tests/support/fixture_data.h"

namespace rwkv {
namespace {

using kernels::Backend;
using kernels::MatmulDtype;
using kernels::MatrixInput;
using test::expect_close;

#define RWKV_REQUIRE_CUDA()                                                  \
  do {                                                                       \
    if (kernels::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// One host array mirrored into both backends.
template <typename T>
struct Mirror {
  model::DeviceBuffer<T> cpu, gpu;
  Mirror(Backend& c, Backend& g, const std::vector<T>& host) : cpu(c, host), gpu(g, host) {}
  T* on(bool gpu_side) const { return gpu_side ? gpu.get() : cpu.get(); }
};

// A packed batch of sequences of the given lengths (one empty), in shuffled
// slots, with random token ids below `vocab`.
struct HostBatch {
  std::vector<int32_t> tokens, seq_start{0}, slots;
};
HostBatch make_batch(std::mt19937& rng, int vocab, const std::vector<int>& lengths) {
  HostBatch b;
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  for (int n : lengths) {
    for (int i = 0; i < n; ++i) b.tokens.push_back(id(rng));
    b.seq_start.push_back(int32_t(b.tokens.size()));
    b.slots.push_back(int32_t(b.slots.size()));
  }
  std::shuffle(b.slots.begin(), b.slots.end(), rng);
  return b;
}

// The batch's index arrays mirrored, and a PackedBatch over either copy.
struct MirroredBatch {
  int num_tokens, num_seqs;
  Mirror<int32_t> tokens, seq_start, slots;
  MirroredBatch(Backend& c, Backend& g, const HostBatch& b)
      : num_tokens(int(b.tokens.size())),
        num_seqs(int(b.slots.size())),
        tokens(c, g, b.tokens),
        seq_start(c, g, b.seq_start),
        slots(c, g, b.slots) {}
  kernels::PackedBatch on(bool gpu) const {
    return {num_tokens, num_seqs, tokens.on(gpu), seq_start.on(gpu), slots.on(gpu)};
  }
};

// Realistic WKV inputs for T tokens of C channels: decay in (0.55, 1),
// alpha = -kk and beta = kk * rate with kk unit-norm per head, so the state
// stays bounded over long sequences.
struct WkvInputs {
  std::vector<float> r, decay, k, v, alpha, beta;
};
WkvInputs make_wkv_inputs(std::mt19937& rng, int T, int C) {
  const size_t n = size_t(T) * C;
  WkvInputs in{random_floats(rng, n, -1, 1),
               random_floats(rng, n, 0.55f, 1.0f),
               random_floats(rng, n, -0.3f, 0.3f),
               random_floats(rng, n, -1, 1),
               std::vector<float>(n),
               std::vector<float>(n)};
  const std::vector<float> kk = random_floats(rng, n, -1, 1), rate = random_floats(rng, n, 0, 1);
  for (size_t h0 = 0; h0 < n; h0 += 64) {
    double sq = 0;
    for (int j = 0; j < 64; ++j) sq += kk[h0 + j] * kk[h0 + j];
    for (int j = 0; j < 64; ++j) {
      const float unit = float(kk[h0 + j] / std::sqrt(sq));
      in.alpha[h0 + j] = -unit;
      in.beta[h0 + j] = unit * rate[h0 + j];
    }
  }
  return in;
}

TEST(CudaBackend, MissingDeviceIsAnError) {
  const int count = kernels::cuda_device_count();
  EXPECT_GE(count, 0);
  EXPECT_THROW(kernels::make_cuda_backend(count), std::runtime_error);
  EXPECT_THROW(kernels::make_cuda_backend(-1), std::runtime_error);
}

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    RWKV_REQUIRE_CUDA();
    cpu_ = kernels::make_cpu_backend();
    gpu_ = kernels::make_cuda_backend(0);
  }

  template <typename T>
  Mirror<T> mirror(const std::vector<T>& host) {
    return Mirror<T>(*cpu_, *gpu_, host);
  }
  Mirror<float> mirror_random(size_t n, float lo = -1, float hi = 1) {
    return mirror(random_floats(rng_, n, lo, hi));
  }
  // Runs op(backend, gpu_side) on both backends.
  template <typename Op>
  void both(Op op) {
    op(*cpu_, false);
    op(*gpu_, true);
    gpu_->synchronize();
  }
  void expect_same(const Mirror<float>& m, double abs_tol, double rel_tol,
                   const std::string& what) {
    expect_close(m.gpu.to_host(), m.cpu.to_host(), abs_tol, rel_tol, what);
  }

  // Sequence lengths of the op tests' batches (one empty).
  const std::vector<int> kLengths{3, 0, 1, 70, 5, 300};
  std::unique_ptr<Backend> cpu_, gpu_;
  std::mt19937 rng_{11};
};

// Rounding x and w to a type of unit roundoff u changes each product x·w by
// at most (2u + u²)|x||w|; float32 sums of K terms (in any order, on either
// side) add at most K·2^-24 Σ|x||w| each. So per element
//   |gpu - cpu| <= ((2u + u²) + 2K·2^-24) Σ_k |x_k||w_k| + 1e-6.
void expect_within_rounding(const std::vector<float>& got, const std::vector<float>& want,
                            const std::vector<float>& magnitude, double unit, int K,
                            const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  const double factor = unit * (2 + unit) + 2.0 * K * std::ldexp(1.0, -24);
  double worst = 0;  // largest |error| / bound
  for (size_t i = 0; i < got.size(); ++i) {
    const double ratio = std::abs(double(got[i]) - want[i]) / (factor * magnitude[i] + 1e-6);
    worst = std::isnan(ratio) ? INFINITY : std::max(worst, ratio);
  }
  std::printf("  %-40s worst error / bound %.3f\n", what.c_str(), worst);
  EXPECT_LE(worst, 1.0) << what;
}

TEST_F(CudaOps, MatmulPerDtype) {
  struct Shape {
    int M, N, K;
  };
  // The same matrix shape at several row counts exercises one algorithm
  // chosen for another row count; 1x1 stays float32 (too narrow for tensor cores).
  const Shape shapes[] = {{1, 1, 1},     {16, 96, 128},  {37, 768, 64},   {300, 128, 512},
                          {1, 128, 128}, {37, 128, 128}, {4100, 128, 128}};
  for (MatmulDtype dtype : {MatmulDtype::kFloat32, MatmulDtype::kFloat16, MatmulDtype::kBFloat16}) {
    auto gpu = kernels::make_cuda_backend(0, {dtype});
    for (const auto [M, N, K] : shapes) {
      const auto w = random_floats(rng_, size_t(N) * K, -1, 1);
      const auto x = random_floats(rng_, size_t(M) * K, -1, 1);
      const auto y0 = random_floats(rng_, size_t(M) * N, -1, 1);
      const model::DeviceMatrix w_cpu(*cpu_, w, N, K, MatrixInput::kActivations);
      const model::DeviceMatrix w_gpu(*gpu, w, N, K, MatrixInput::kActivations);
      const double unit = w_gpu.view().dtype == MatmulDtype::kFloat16    ? std::ldexp(1.0, -11)
                          : w_gpu.view().dtype == MatmulDtype::kBFloat16 ? std::ldexp(1.0, -8)
                                                                         : 0.0;
      EXPECT_EQ(w_gpu.view().dtype, N % 8 == 0 && K % 8 == 0 ? dtype : MatmulDtype::kFloat32);

      // Σ_k |x||w| per element, for the bound.
      std::vector<float> abs_x(x), abs_w(w);
      for (float& v : abs_x) v = std::abs(v);
      for (float& v : abs_w) v = std::abs(v);
      const model::DeviceMatrix abs_w_cpu(*cpu_, abs_w, N, K, MatrixInput::kActivations);
      model::DeviceArray abs_x_cpu(*cpu_, abs_x), magnitude(*cpu_, size_t(M) * N);
      cpu_->matmul(M, abs_x_cpu.get(), abs_w_cpu.view(), magnitude.get(), false);

      for (bool acc : {true, false}) {
        model::DeviceArray xc(*cpu_, x), yc(*cpu_, y0), xg(*gpu, x), yg(*gpu, y0);
        cpu_->matmul(M, xc.get(), w_cpu.view(), yc.get(), acc);
        gpu->matmul(M, xg.get(), w_gpu.view(), yg.get(), acc);
        gpu->synchronize();
        expect_within_rounding(yg.to_host(), yc.to_host(), magnitude.to_host(), unit, K,
                               std::string(kernels::matmul_dtype_name(dtype)) + " " +
                                   std::to_string(M) + "x" + std::to_string(N) + "x" +
                                   std::to_string(K) + (acc ? " +=" : ""));
      }
    }
  }
}

// relu² activations can exceed float16's range: a float16 backend stores the
// matrices they multiply as bfloat16, whose range is float32's.
TEST_F(CudaOps, UnboundedInputsTakeBfloat16) {
  auto gpu = kernels::make_cuda_backend(0, {MatmulDtype::kFloat16});
  const int M = 64, N = 128, K = 256;
  const auto w = random_floats(rng_, size_t(N) * K, -1, 1);
  const auto x = random_floats(rng_, size_t(M) * K, 0, 1e5f);
  const model::DeviceMatrix w_cpu(*cpu_, w, N, K, MatrixInput::kUnbounded);
  const model::DeviceMatrix w_gpu(*gpu, w, N, K, MatrixInput::kUnbounded);
  ASSERT_EQ(w_gpu.view().dtype, MatmulDtype::kBFloat16);
  EXPECT_EQ(model::DeviceMatrix(*gpu, w, N, K, MatrixInput::kFloat32).view().dtype,
            MatmulDtype::kFloat32);

  std::vector<float> abs_w(w);
  for (float& v : abs_w) v = std::abs(v);
  const model::DeviceMatrix abs_w_cpu(*cpu_, abs_w, N, K, MatrixInput::kActivations);
  model::DeviceArray xc(*cpu_, x), yc(*cpu_, size_t(M) * N), xg(*gpu, x), yg(*gpu, size_t(M) * N),
      magnitude(*cpu_, size_t(M) * N);
  cpu_->matmul(M, xc.get(), abs_w_cpu.view(), magnitude.get(), false);  // x >= 0
  cpu_->matmul(M, xc.get(), w_cpu.view(), yc.get(), false);
  gpu->matmul(M, xg.get(), w_gpu.view(), yg.get(), false);
  gpu->synchronize();
  expect_within_rounding(yg.to_host(), yc.to_host(), magnitude.to_host(), std::ldexp(1.0, -8), K,
                         "inputs up to 1e5 (bfloat16)");
}

TEST_F(CudaOps, RowCopiesAndPointwise) {
  const int C = 100, T = 37, vocab = 50;
  auto table = mirror_random(size_t(vocab) * C);
  std::vector<int32_t> ids(T);
  for (int t = 0; t < T; ++t) ids[t] = (t * 7) % vocab;
  auto tokens = mirror(ids);
  auto out = mirror_random(size_t(T) * C);
  both([&](Backend& be, bool g) { be.gather_rows(tokens.on(g), T, table.on(g), C, out.on(g)); });
  expect_same(out, 0, 0, "gather_rows");
  both([&](Backend& be, bool g) { be.broadcast_row(table.on(g) + 3 * C, T, C, out.on(g)); });
  expect_same(out, 0, 0, "broadcast_row");

  using kernels::Activation;
  for (Activation act :
       {Activation::kTanh, Activation::kSigmoid, Activation::kRelu, Activation::kReluSquared}) {
    auto x = mirror_random(size_t(T) * C, -6, 6);
    both([&](Backend& be, bool g) { be.activate(act, size_t(T) * C, x.on(g)); });
    expect_same(x, 1e-6, 1e-6, "activate " + std::to_string(int(act)));
  }
  auto bias = mirror_random(C);
  both([&](Backend& be, bool g) { be.add_bias(T, C, bias.on(g), out.on(g)); });
  expect_same(out, 0, 0, "add_bias");
  auto x = mirror_random(size_t(T) * C);
  both([&](Backend& be, bool g) { be.add(size_t(T) * C, x.on(g), out.on(g)); });
  expect_same(out, 0, 0, "add");
}

TEST_F(CudaOps, LayerNorm) {
  for (const auto [rows, C] :
       {std::array{1, 32}, std::array{37, 100}, std::array{20, 768}, std::array{3, 2048}}) {
    auto x = mirror_random(size_t(rows) * C, -3, 5), w = mirror_random(C, 0.5, 1.5),
         b = mirror_random(C), y = mirror_random(size_t(rows) * C);
    both([&](Backend& be, bool g) {
      be.layer_norm(rows, C, x.on(g), w.on(g), b.on(g), 1e-5f, y.on(g));
    });
    expect_same(y, 1e-5, 1e-5, "layer_norm C=" + std::to_string(C));
  }
}

TEST_F(CudaOps, TokenShiftMix) {
  const int C = 128;
  const HostBatch host = make_batch(rng_, 100, kLengths);
  const int T = int(host.tokens.size()), S = int(host.slots.size());
  MirroredBatch batch(*cpu_, *gpu_, host);
  auto u = mirror_random(size_t(T) * C);
  // Slot stride 3C with the state at offset C, as a layer inside a slot's state.
  auto shift = mirror_random(size_t(S) * 3 * C);
  std::vector<Mirror<float>> mix, out;
  for (int m = 0; m < 6; ++m) {
    mix.push_back(mirror_random(C, 0, 1));
    out.push_back(mirror_random(size_t(T) * C));
  }
  both([&](Backend& be, bool g) {
    const float* mp[6];
    float* op[6];
    for (int m = 0; m < 6; ++m) {
      mp[m] = mix[m].on(g);
      op[m] = out[m].on(g);
    }
    be.token_shift_mix(batch.on(g), C, u.on(g), {shift.on(g) + C, 3 * C}, 6, mp, op);
  });
  for (int m = 0; m < 6; ++m)
    expect_same(out[m], 1e-6, 1e-6, "token_shift_mix out " + std::to_string(m));
  expect_same(shift, 0, 0, "token_shift_mix shift state");
}

TEST_F(CudaOps, WkvPrepare) {
  const int C = 256, T = 45;
  for (bool first_layer : {true, false}) {
    auto w = mirror_random(size_t(T) * C, -2, 2), k = mirror_random(size_t(T) * C),
         v = mirror_random(size_t(T) * C), a = mirror_random(size_t(T) * C),
         b = mirror_random(size_t(T) * C), gate = mirror_random(size_t(T) * C),
         v_first = mirror_random(size_t(T) * C);
    auto w0 = mirror_random(C), a0 = mirror_random(C), k_k = mirror_random(C, 0.7, 1),
         k_a = mirror_random(C, 0.9, 1.1), v0 = mirror_random(C);
    both([&](Backend& be, bool g) {
      kernels::WkvPrepareArgs p;
      p.num_tokens = T;
      p.channels = C;
      p.w = w.on(g), p.k = k.on(g), p.v = v.on(g), p.a = a.on(g), p.b = b.on(g);
      p.w0 = w0.on(g), p.a0 = a0.on(g), p.k_k = k_k.on(g), p.k_a = k_a.on(g);
      p.v0 = first_layer ? nullptr : v0.on(g);
      p.v_gate = first_layer ? nullptr : gate.on(g);
      p.v_first = v_first.on(g);
      be.wkv_prepare(p);
    });
    const std::string layer = first_layer ? " (layer 0)" : " (layer > 0)";
    const std::pair<const Mirror<float>*, const char*> outputs[] = {
        {&w, "decay"}, {&k, "k"}, {&v, "v"}, {&a, "alpha"}, {&b, "beta"}, {&v_first, "v_first"}};
    for (const auto& [m, name] : outputs)
      expect_same(*m, 1e-6, 1e-5, std::string("wkv_prepare ") + name + layer);
  }
}

TEST_F(CudaOps, Wkv7) {
  const int H = 3, C = H * 64;
  const HostBatch host = make_batch(rng_, 100, kLengths);
  const int T = int(host.tokens.size()), S = int(host.slots.size());
  MirroredBatch batch(*cpu_, *gpu_, host);
  const WkvInputs in = make_wkv_inputs(rng_, T, C);
  auto r = mirror(in.r), decay = mirror(in.decay), k = mirror(in.k), v = mirror(in.v),
       alpha = mirror(in.alpha), beta = mirror(in.beta), y = mirror_random(size_t(T) * C);
  const int64_t stride = int64_t(H) * 64 * 64 + 64;  // padded, as another layer would be
  auto state = mirror_random(size_t(S) * stride, -0.5, 0.5);
  both([&](Backend& be, bool g) {
    be.wkv7(batch.on(g), H, r.on(g), decay.on(g), k.on(g), v.on(g), alpha.on(g), beta.on(g),
            {state.on(g), stride}, y.on(g));
  });
  expect_same(y, 1e-4, 1e-4, "wkv7 y");
  expect_same(state, 1e-4, 1e-4, "wkv7 state");
}

// The chunked form (16-token chunks) against the sequential one on the GPU:
// lengths around and between chunk multiples, random initial states; with
// threshold 1 every sequence is chunked, with 20 the short ones stay
// sequential in the same launch. Both compute in float32; they differ only in
// summation order (emulated in float32: ~6e-7 on y, ~1e-7 on the state), so
// 5e-5 + 5e-5·|x| is a wide margin that still catches any wrong term.
TEST(CudaWkvChunked, MatchesSequential) {
  RWKV_REQUIRE_CUDA();
  std::mt19937 rng(21);
  const int H = 2, C = H * 64;
  const HostBatch host = make_batch(rng, 100, {1, 15, 16, 17, 0, 40, 333, 1000, 2});
  const int T = int(host.tokens.size()), S = int(host.slots.size());
  const WkvInputs in = make_wkv_inputs(rng, T, C);
  const int64_t stride = int64_t(H) * 64 * 64;
  const std::vector<float> initial = random_floats(rng, size_t(S) * stride, -0.5, 0.5);

  auto run = [&](int chunked_min_tokens, std::vector<float>& state_out) {
    kernels::CudaOptions o;
    o.wkv_chunked_min_tokens = chunked_min_tokens;
    auto be = kernels::make_cuda_backend(0, o);
    model::DeviceInts seq_start(*be, host.seq_start), slots(*be, host.slots),
        tokens(*be, host.tokens);
    model::DeviceArray r(*be, in.r), decay(*be, in.decay), k(*be, in.k), v(*be, in.v),
        alpha(*be, in.alpha), beta(*be, in.beta), y(*be, size_t(T) * C), state(*be, initial);
    const kernels::PackedBatch batch{T, S, tokens.get(), seq_start.get(), slots.get()};
    be->wkv7(batch, H, r.get(), decay.get(), k.get(), v.get(), alpha.get(), beta.get(),
             {state.get(), stride}, y.get());
    state_out = state.to_host();
    return y.to_host();
  };
  std::vector<float> want_state, got_state;
  const std::vector<float> want_y = run(0, want_state);
  for (int threshold : {1, 20}) {
    const std::vector<float> got_y = run(threshold, got_state);
    const std::string what = "chunked from " + std::to_string(threshold) + " tokens";
    expect_close(got_y, want_y, 5e-5, 5e-5, what + ": y");
    expect_close(got_state, want_state, 5e-5, 5e-5, what + ": state");
  }
}

TEST_F(CudaOps, WkvOutput) {
  const int H = 4, C = H * 64, T = 29;
  auto r = mirror_random(size_t(T) * C), k = mirror_random(size_t(T) * C),
       v = mirror_random(size_t(T) * C), g = mirror_random(size_t(T) * C),
       y = mirror_random(size_t(T) * C, -4, 4), r_k = mirror_random(C),
       w = mirror_random(C, 0.5, 1.5), b = mirror_random(C);
  both([&](Backend& be, bool gs) {
    be.wkv_output(T, H, r.on(gs), k.on(gs), v.on(gs), r_k.on(gs), w.on(gs), b.on(gs), 64e-5f,
                  g.on(gs), y.on(gs));
  });
  expect_same(y, 1e-5, 1e-5, "wkv_output");
}

TEST_F(CudaOps, PoolTokenLayerNorm) {
  const int C = 200;
  const int32_t pool_token = 7;
  const HostBatch host = make_batch(rng_, 10, kLengths);  // ~10% of the tokens are pooled
  const int T = int(host.tokens.size()), S = int(host.slots.size());
  MirroredBatch batch(*cpu_, *gpu_, host);
  auto x = mirror_random(size_t(T) * C, -2, 3), w = mirror_random(C, 0.5, 1.5),
       b = mirror_random(C);
  std::vector<float> sums = random_floats(rng_, size_t(S) * (C + 1), -1, 1);
  for (int s = 0; s < S; ++s) sums[size_t(s) * (C + 1) + C] = float(s);  // prior counts
  auto pool = mirror(sums);
  both([&](Backend& be, bool g) {
    be.pool_token_layer_norm(batch.on(g), C, x.on(g), w.on(g), b.on(g), 1e-5f, pool_token,
                             {pool.on(g), C + 1});
  });
  expect_same(pool, 1e-5, 1e-5, "pool_token_layer_norm");
}

}  // namespace
}  // namespace rwkv

#else  // !RWKV_EMB_WITH_CUDA

TEST(CudaOps, NotBuilt) { GTEST_SKIP() << "built without CUDA (-DRWKV_EMB_CUDA=OFF)"; }

#endif
