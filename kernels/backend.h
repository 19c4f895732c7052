// The compute interface the model is written against. Each backend (kernels/cpu,
// kernels/cuda) implements these ops over its own memory; the forward pass in
// engine/model/model.cpp calls only these, so the model math exists once.
//
// Conventions: activations are float32 row-major [tokens, channels]; matrices are
// stored [out, in] (torch Linear layout) so every product is y = x · Wᵀ; all
// pointers are backend memory unless named host_*.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace rwkv::kernels {

// A batch of sequences packed back to back, without padding (backend memory).
struct PackedBatch {
  int num_tokens = 0;
  int num_seqs = 0;
  const int32_t* tokens = nullptr;     // [num_tokens]
  const int32_t* seq_start = nullptr;  // [num_seqs + 1], offsets into tokens
  const int32_t* slot = nullptr;       // [num_seqs], state slot of each sequence
};

// Per-slot recurrent state of one stack of RWKV-7 blocks, for one layer.
// Slot s's data starts at base + s * slot_stride.
struct SlotArray {
  float* base = nullptr;
  int64_t slot_stride = 0;
};

// Inputs and outputs of the fused op that turns projections into WKV inputs.
struct WkvPrepareArgs {
  int num_tokens = 0, channels = 0;
  float* w = nullptr;             // in: decay LoRA output; out: decay in (0,1)
  float* k = nullptr;             // in: key; out: key scaled by the in-context rate
  float* v = nullptr;             // in: value; out: value after the v_first residual
  float* a = nullptr;             // in: in-context-rate LoRA output; out: alpha = -kk
  float* b = nullptr;             // out: beta = kk * a
  const float* w0 = nullptr;      // [C] decay bias
  const float* a0 = nullptr;      // [C]
  const float* k_k = nullptr;     // [C]
  const float* k_a = nullptr;     // [C]
  const float* v0 = nullptr;      // [C], null in layer 0
  const float* v_gate = nullptr;  // v LoRA output [T, C], null in layer 0
  float* v_first = nullptr;       // [T, C]: written in layer 0, read in later layers
};

enum class Activation { kTanh, kSigmoid, kRelu, kReluSquared };

// Element type of a weight matrix and of the inputs of its products (the
// products accumulate and write float32 whatever the type). int8 (CPU only)
// is quantized by the backend itself: its upload_matrix takes float32.
enum class MatmulDtype { kFloat32, kFloat16, kBFloat16, kInt8 };
constexpr const char* matmul_dtype_name(MatmulDtype dtype) {
  return dtype == MatmulDtype::kFloat32    ? "float32"
         : dtype == MatmulDtype::kFloat16  ? "float16"
         : dtype == MatmulDtype::kBFloat16 ? "bfloat16"
                                           : "int8";
}
constexpr size_t matmul_dtype_size(MatmulDtype dtype) {
  return dtype == MatmulDtype::kFloat32 ? 4 : dtype == MatmulDtype::kInt8 ? 1 : 2;
}

// What a weight matrix multiplies, which limits the dtype a backend may store
// it in.
enum class MatrixInput {
  kActivations,  // normalized or gated activations: any dtype
  kLowRank,      // a LoRA factor (as kActivations, but small, and its errors feed exp and sigmoid)
  kUnbounded,    // relu² activations, which can exceed float16's range (65504)
  kFloat32,      // kept float32: small products off the hot path (the task heads)
};

// A weight matrix [rows, cols] (torch Linear layout [out, in]) in backend
// memory, stored as `dtype`.
struct Matrix {
  const void* data = nullptr;
  int rows = 0, cols = 0;
  MatmulDtype dtype = MatmulDtype::kFloat32;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory. Every allocation is counted, so that tests can check that steps
  // allocate nothing once the engine has reserved memory for its limits.
  void* allocate(size_t bytes) {
    ++allocations_;
    return allocate_bytes(bytes);
  }
  int64_t allocations() const { return allocations_; }
  virtual void release(void* ptr) = 0;
  virtual void to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // The dtype this backend stores a [rows, cols] weight matrix in.
  virtual MatmulDtype matrix_dtype(int rows, int cols, MatrixInput input) const = 0;
  // Bytes of backend memory for a [rows, cols] matrix of that dtype in this
  // backend's layout, and its upload from host_src (row-major, of that dtype).
  // The default layout is the row-major one.
  virtual size_t matrix_bytes(int rows, int cols, MatmulDtype dtype) const {
    return size_t(rows) * cols * matmul_dtype_size(dtype);
  }
  virtual void upload_matrix(void* dst, const void* host_src, int rows, int cols,
                             MatmulDtype dtype) {
    to_device(dst, host_src, matrix_bytes(rows, cols, dtype));
  }
  // Makes room (now) for the scratch of products of up to max_rows rows by
  // matrices of up to max_width rows and columns, so that later products
  // within these sizes allocate nothing.
  virtual void reserve_matmul(int max_rows, int max_width) = 0;
  // y[M, w.rows] = x[M, w.cols] · wᵀ, added to y when accumulate.
  virtual void matmul(int M, const float* x, const Matrix& w, float* y, bool accumulate) = 0;
  // out[t] = table[tokens[t]].
  virtual void gather_rows(const int32_t* tokens, int num_tokens, const float* table, int C,
                           float* out) = 0;
  // out[r] = row (the same row for every r).
  virtual void broadcast_row(const float* row, int rows, int C, float* out) = 0;
  virtual void layer_norm(int rows, int C, const float* x, const float* weight, const float* bias,
                          float eps, float* y) = 0;
  // Token shift: with prev = the previous token's u in the same sequence (the
  // slot's shift state for a sequence's first token), d = prev - u and
  // out[m] = u + d * mix[m] for m < num_mix. Then stores each sequence's last u
  // as its slot's shift state.
  virtual void token_shift_mix(const PackedBatch& batch, int C, const float* u, SlotArray shift,
                               int num_mix, const float* const* mix, float* const* out) = 0;
  virtual void activate(Activation act, size_t n, float* x) = 0;
  // x[r, c] += bias[c].
  virtual void add_bias(int rows, int C, const float* bias, float* x) = 0;
  // y += x.
  virtual void add(size_t n, const float* x, float* y) = 0;
  virtual void wkv_prepare(const WkvPrepareArgs& args) = 0;
  // The RWKV-7 recurrence, per sequence and head, from and into the slot's state
  // [H, 64, 64] (row i = value index, column j = key index).
  virtual void wkv7(const PackedBatch& batch, int heads, const float* r, const float* decay,
                    const float* k, const float* v, const float* alpha, const float* beta,
                    SlotArray state, float* y) = 0;
  // y = GroupNorm(y, H groups, eps) * gn_weight + gn_bias + (Σ_head r*k*r_k) * v, then * g.
  virtual void wkv_output(int num_tokens, int heads, const float* r, const float* k, const float* v,
                          const float* r_k, const float* gn_weight, const float* gn_bias, float eps,
                          const float* g, float* y) = 0;
  // For each token equal to pool_token, adds LayerNorm(x_t) to its sequence's
  // slot sum [C] and increments the slot count (stored as a float after the sum).
  virtual void pool_token_layer_norm(const PackedBatch& batch, int C, const float* x,
                                     const float* weight, const float* bias, float eps,
                                     int32_t pool_token, SlotArray pool) = 0;

  // Runs `ops` (calls of this backend's ops). A backend may record them the
  // first times and replay the recording for later calls with the same key
  // (CUDA graphs), so two calls with the same key must issue the same ops on
  // the same memory with the same sizes; only the contents of memory (token
  // ids, offsets, slots, states) may differ. The default just runs them.
  virtual void run_recorded(uint64_t key, const std::function<void()>& ops) {
    (void)key;
    ops();
  }

 protected:
  virtual void* allocate_bytes(size_t bytes) = 0;

 private:
  int64_t allocations_ = 0;
};

// The CPU backend with `threads` OpenMP threads (0: all cores). Its products
// run in float32, in bfloat16 where the CPU has AVX512-BF16, or in int8 where
// it has VNNI (otherwise std::invalid_argument says why).
std::unique_ptr<Backend> make_cpu_backend(int threads = 0,
                                          MatmulDtype dtype = MatmulDtype::kFloat32);

}  // namespace rwkv::kernels
