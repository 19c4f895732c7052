// CPU backend: the matrix products of kernels/cpu/gemm (one fixed chain of
// fused multiply-adds per output), OpenMP threads for the rest. Every op
// computes each sequence (and each token) on its own, in a fixed order, so
// results do not depend on what else is in the batch or on the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

#include "engine/common/head_size.h"
#include "kernels/backend.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_int8.h"
#include "kernels/cpu/wkv7.h"

namespace rwkv::kernels {
namespace {

using common::kHeadSize;

// Mean and 1/sqrt(var + eps) of n floats, accumulated in double so long rows
// and large offsets keep float32 accuracy.
inline void moments(const float* x, int n, float eps, float& mean, float& rstd) {
  double sum = 0, sq = 0;
  for (int i = 0; i < n; ++i) sum += x[i];
  const double m = sum / n;
  for (int i = 0; i < n; ++i) {
    const double d = x[i] - m;
    sq += d * d;
  }
  mean = static_cast<float>(m);
  rstd = static_cast<float>(1.0 / std::sqrt(sq / n + eps));
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int threads, MatmulDtype dtype) : dtype_(dtype) {
    if (threads > 0) omp_set_num_threads(threads);
  }

  std::string name() const override {
    const std::string kernel = dtype_ == MatmulDtype::kBFloat16 ? "AVX512-BF16 bfloat16"
                               : dtype_ == MatmulDtype::kInt8
                                   ? std::string(cpu::int8_isa_name(cpu::best_int8_isa())) + " int8"
                                   : cpu::isa_name(cpu::best_isa());
    return "cpu (" + kernel + ", " + std::to_string(omp_get_max_threads()) + " threads)";
  }

  void release(void* ptr) override { ::operator delete (ptr, std::align_val_t{64}); }
  void to_device(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void zero(void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }
  void synchronize() override {}

  // In bfloat16 and int8 modes every matrix but the small float32 ones off
  // the hot path (the task heads) takes that dtype (bfloat16's range is
  // float32's, so relu² inputs fit; int8 scales each row of them). int8
  // keeps the LoRA factors out of int8: 6% of the FLOPs, and in int8 they
  // cost the 0.1B shape most of its accuracy (bench/README.md). They take
  // bfloat16 where the CPU has it (twice float32's rate), else float32.
  MatmulDtype matrix_dtype(int, int, MatrixInput input) const override {
    if (input == MatrixInput::kFloat32) return MatmulDtype::kFloat32;
    if (input == MatrixInput::kLowRank && dtype_ == MatmulDtype::kInt8)
      return cpu::has_bf16() ? MatmulDtype::kBFloat16 : MatmulDtype::kFloat32;
    return dtype_;
  }
  // Matrices are stored in the packed layouts of the product kernels.
  size_t matrix_bytes(int rows, int cols, MatmulDtype dtype) const override {
    switch (dtype) {
      case MatmulDtype::kBFloat16:
        return sizeof(uint16_t) * cpu::packed_bf16_size(rows, cols);
      case MatmulDtype::kInt8:
        return cpu::packed_int8_bytes(rows, cols);
      default:
        return sizeof(float) * cpu::packed_size(rows, cols);
    }
  }
  void upload_matrix(void* dst, const void* host_src, int rows, int cols,
                     MatmulDtype dtype) override {
    if (dtype == MatmulDtype::kBFloat16)
      cpu::pack_weights_bf16(static_cast<const uint16_t*>(host_src), rows, cols,
                             static_cast<uint16_t*>(dst));
    else if (dtype == MatmulDtype::kInt8)
      cpu::pack_weights_int8(static_cast<const float*>(host_src), rows, cols, dst);
    else
      cpu::pack_weights(static_cast<const float*>(host_src), rows, cols, static_cast<float*>(dst));
  }
  // bfloat16 and int8 products convert their input rows into this scratch first.
  void reserve_matmul(int max_rows, int max_width) override { reserve_inputs(max_rows, max_width); }

  void matmul(int M, const float* x, const Matrix& matrix, float* y, bool accumulate) override {
    const int N = matrix.rows, K = matrix.cols;
    if (matrix.dtype == MatmulDtype::kFloat32) {
      cpu::gemm(M, N, K, x, static_cast<const float*>(matrix.data), y, accumulate);
      return;
    }
    reserve_inputs(M, K);  // a no-op within the reserved sizes
    if (matrix.dtype == MatmulDtype::kInt8) {
      auto* q = reinterpret_cast<uint8_t*>(inputs_.data());
      cpu::quantize_rows(M, K, x, q, row_quant_.data());
      cpu::gemm_int8(M, N, K, q, row_quant_.data(), matrix.data, y, accumulate);
      return;
    }
    cpu::round_to_bf16(M, K, x, inputs_.data());
    cpu::gemm_bf16(M, N, K, inputs_.data(), static_cast<const uint16_t*>(matrix.data), y,
                   accumulate);
  }

  void gather_rows(const int32_t* tokens, int T, const float* table, int C, float* out) override {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; ++t)
      std::memcpy(out + int64_t(t) * C, table + int64_t(tokens[t]) * C, sizeof(float) * C);
  }

  void broadcast_row(const float* row, int rows, int C, float* out) override {
    for (int r = 0; r < rows; ++r) std::memcpy(out + int64_t(r) * C, row, sizeof(float) * C);
  }

  void layer_norm(int rows, int C, const float* x, const float* weight, const float* bias,
                  float eps, float* y) override {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r)
      normalize_row(x + int64_t(r) * C, C, weight, bias, eps, y + int64_t(r) * C);
  }

  void token_shift_mix(const PackedBatch& batch, int C, const float* u, SlotArray shift,
                       int num_mix, const float* const* mix, float* const* out) override {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < batch.num_tokens; ++t) {
      const float* prev = previous_row(batch, t, C, u, shift);
      const float* cur = u + int64_t(t) * C;
      for (int m = 0; m < num_mix; ++m) {
        float* o = out[m] + int64_t(t) * C;
        const float* mu = mix[m];
#pragma omp simd
        for (int c = 0; c < C; ++c) o[c] = cur[c] + (prev[c] - cur[c]) * mu[c];
      }
    }
    // Only after every token has read its predecessor: remember the last one.
    for (int s = 0; s < batch.num_seqs; ++s) {
      const int last = batch.seq_start[s + 1] - 1;
      if (last < batch.seq_start[s]) continue;
      std::memcpy(shift.base + batch.slot[s] * shift.slot_stride, u + int64_t(last) * C,
                  sizeof(float) * C);
    }
  }

  void activate(Activation act, size_t n, float* x) override {
    // Blocks of 64 KiB: whole vectors, a block per thread at a time.
    constexpr size_t kBlock = 16384;
    const int64_t blocks = int64_t((n + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      float* block = x + size_t(b) * kBlock;
      const size_t count = std::min(kBlock, n - size_t(b) * kBlock);
      switch (act) {
        case Activation::kRelu:
          cpu::relu(block, count);
          break;
        case Activation::kReluSquared:
          cpu::relu_squared(block, count);
          break;
        case Activation::kTanh:
          cpu::tanh(block, count);
          break;
        case Activation::kSigmoid:
          cpu::sigmoid(block, count);
          break;
      }
    }
  }

  void add_bias(int rows, int C, const float* bias, float* x) override {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
      float* row = x + int64_t(r) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) row[c] += bias[c];
    }
  }

  void add(size_t n, const float* x, float* y) override {
    const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; ++i) y[i] += x[i];
  }

  void wkv_prepare(const WkvPrepareArgs& p) override {
    const int C = p.channels;
    const float decay_scale = std::exp(-0.5f);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < p.num_tokens; ++t) {
      const int64_t row = int64_t(t) * C;
      float* w = p.w + row;
      float* k = p.k + row;
      float* v = p.v + row;
      float* a = p.a + row;
      float* b = p.b + row;
      // Each formula in passes over the row: the transcendental ones vectorized.
      for (int c = 0; c < C; ++c) w[c] += p.w0[c];
      cpu::sigmoid(w, C);
      for (int c = 0; c < C; ++c) w[c] *= -decay_scale;
      cpu::exp(w, C);  // w = exp(-e^-0.5 · sigmoid(w0 + w))
      for (int c = 0; c < C; ++c) a[c] += p.a0[c];
      cpu::sigmoid(a, C);  // a = sigmoid(a0 + a)
      if (p.v0 == nullptr) {
        std::memcpy(p.v_first + row, v, sizeof(float) * C);
      } else {
        // b holds the value gate until it holds kk below.
        const float* gate = p.v_gate + row;
        const float* first = p.v_first + row;
        for (int c = 0; c < C; ++c) b[c] = p.v0[c] + gate[c];
        cpu::sigmoid(b, C);
        for (int c = 0; c < C; ++c) v[c] += (first[c] - v[c]) * b[c];
      }
      // kk = per-head L2-normalized k * k_k; b holds kk until the end.
      for (int h = 0; h < C; h += kHeadSize) {
        float sq = 0;
        for (int c = h; c < h + kHeadSize; ++c) {
          b[c] = k[c] * p.k_k[c];
          sq += b[c] * b[c];
        }
        const float inv = 1.0f / std::max(std::sqrt(sq), 1e-12f);
        for (int c = h; c < h + kHeadSize; ++c) b[c] *= inv;
      }
      for (int c = 0; c < C; ++c) {
        const float kk = b[c], rate = a[c];
        k[c] *= 1.0f + (rate - 1.0f) * p.k_a[c];
        a[c] = -kk;
        b[c] = kk * rate;
      }
    }
  }

  void wkv7(const PackedBatch& batch, int heads, const float* r, const float* decay, const float* k,
            const float* v, const float* alpha, const float* beta, SlotArray state,
            float* y) override {
    const int C = heads * kHeadSize;
    const int pairs = batch.num_seqs * heads;
#pragma omp parallel for schedule(dynamic, 1)
    for (int pair = 0; pair < pairs; ++pair) {
      const int s = pair / heads, h = pair % heads;
      float* S =
          state.base + batch.slot[s] * state.slot_stride + int64_t(h) * kHeadSize * kHeadSize;
      const int64_t off = int64_t(batch.seq_start[s]) * C + h * kHeadSize;
      cpu::wkv7_head(S, batch.seq_start[s + 1] - batch.seq_start[s], C, r + off, decay + off,
                     k + off, v + off, alpha + off, beta + off, y + off);
    }
  }

  void wkv_output(int num_tokens, int heads, const float* r, const float* k, const float* v,
                  const float* r_k, const float* gn_weight, const float* gn_bias, float eps,
                  const float* g, float* y) override {
    const int C = heads * kHeadSize;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < num_tokens; ++t) {
      for (int h = 0; h < heads; ++h) {
        const int64_t off = int64_t(t) * C + h * kHeadSize;
        const int c0 = h * kHeadSize;
        float mean, rstd;
        moments(y + off, kHeadSize, eps, mean, rstd);
        float bonus = 0;
        for (int i = 0; i < kHeadSize; ++i) bonus += r[off + i] * k[off + i] * r_k[c0 + i];
        for (int i = 0; i < kHeadSize; ++i) {
          const float norm = (y[off + i] - mean) * rstd * gn_weight[c0 + i] + gn_bias[c0 + i];
          y[off + i] = (norm + bonus * v[off + i]) * g[off + i];
        }
      }
    }
  }

  void pool_token_layer_norm(const PackedBatch& batch, int C, const float* x, const float* weight,
                             const float* bias, float eps, int32_t pool_token,
                             SlotArray pool) override {
#pragma omp parallel for schedule(static)
    for (int s = 0; s < batch.num_seqs; ++s) {
      float* sum = pool.base + batch.slot[s] * pool.slot_stride;
      std::vector<float> h(C);
      for (int t = batch.seq_start[s]; t < batch.seq_start[s + 1]; ++t) {
        if (batch.tokens[t] != pool_token) continue;
        normalize_row(x + int64_t(t) * C, C, weight, bias, eps, h.data());
        for (int c = 0; c < C; ++c) sum[c] += h[c];
        sum[C] += 1.0f;
      }
    }
  }

 protected:
  void* allocate_bytes(size_t bytes) override {
    // 64-byte alignment for AVX-512 loads; never a null pointer for 0 bytes.
    return ::operator new (std::max<size_t>(bytes, 64), std::align_val_t{64});
  }

 private:
  const MatmulDtype dtype_;
  // The input rows of a product: bfloat16, or int8 bytes and their scales.
  std::vector<uint16_t> inputs_;
  std::vector<cpu::RowQuant> row_quant_;

  void reserve_inputs(int rows, int width) {
    if (dtype_ == MatmulDtype::kFloat32) return;
    const size_t need = size_t(rows) * (width + 3);  // bfloat16 pads to 2, int8 bytes to 4
    if (inputs_.size() < need) inputs_.resize(need);
    if (dtype_ == MatmulDtype::kInt8 && row_quant_.size() < size_t(rows)) row_quant_.resize(rows);
  }

  static void normalize_row(const float* x, int C, const float* weight, const float* bias,
                            float eps, float* y) {
    float mean, rstd;
    moments(x, C, eps, mean, rstd);
#pragma omp simd
    for (int c = 0; c < C; ++c) y[c] = (x[c] - mean) * rstd * weight[c] + bias[c];
  }

  // The row a token's shift reads: its predecessor in the sequence, or the
  // slot's stored shift state for the sequence's first token.
  static const float* previous_row(const PackedBatch& batch, int t, int C, const float* u,
                                   SlotArray shift) {
    // Sequences are few and sorted by offset: a binary search finds t's sequence.
    const int* end = batch.seq_start + batch.num_seqs + 1;
    const int s = int(std::upper_bound(batch.seq_start, end, t) - batch.seq_start) - 1;
    if (t == batch.seq_start[s]) return shift.base + batch.slot[s] * shift.slot_stride;
    return u + int64_t(t - 1) * C;
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads, MatmulDtype dtype) {
  if (dtype == MatmulDtype::kFloat16)
    throw std::invalid_argument(
        "float16 products are not available on the CPU (float32, bfloat16 or int8)");
  if (dtype == MatmulDtype::kBFloat16 && !cpu::has_bf16())
    throw std::invalid_argument(
        "bfloat16 products need a CPU with AVX512-BF16, which this one lacks (emulated they "
        "would be slower than float32): use float32");
  if (dtype == MatmulDtype::kInt8 && !cpu::has_vnni())
    throw std::invalid_argument(
        "int8 products need a CPU with AVX512-VNNI or AVX-VNNI, which this one lacks (without "
        "them they would be slower than float32): use float32");
  return std::make_unique<CpuBackend>(threads, dtype);
}

}  // namespace rwkv::kernels
