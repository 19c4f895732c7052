// The RWKV-7 time-mix core: the fused op that turns projections into WKV
// inputs, and the sequential WKV recurrence (docs/model.md "Backbone").
#include <cmath>

#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/ops.cuh"

namespace rwkv::kernels::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// One warp per (token, head): the head's 64 channels are lanes i and i + 32,
// so the L2 norm of kk is one warp reduction.
__global__ void wkv_prepare_kernel(WkvPrepareArgs p, int pairs, float decay_scale) {
  const int64_t pair = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (pair >= pairs) return;
  const int C = p.channels, heads = C / kHeadSize;
  const int64_t t = pair / heads;
  const int h = int(pair % heads), lane = threadIdx.x % kWarp;
  float kk[2], rate[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int c = h * kHeadSize + lane + half * kWarp;
    const int64_t i = t * C + c;
    p.w[i] = expf(-decay_scale * sigmoidf(p.w0[c] + p.w[i]));
    rate[half] = sigmoidf(p.a0[c] + p.a[i]);
    if (p.v0 == nullptr)
      p.v_first[i] = p.v[i];
    else
      p.v[i] += (p.v_first[i] - p.v[i]) * sigmoidf(p.v0[c] + p.v_gate[i]);
    kk[half] = p.k[i] * p.k_k[c];
  }
  const float norm = sqrtf(warp_sum(kk[0] * kk[0] + kk[1] * kk[1]));
  const float inv = 1.0f / fmaxf(norm, 1e-12f);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int c = h * kHeadSize + lane + half * kWarp;
    const int64_t i = t * C + c;
    const float n = kk[half] * inv;
    p.k[i] *= 1.0f + (rate[half] - 1.0f) * p.k_a[c];
    p.a[i] = -n;
    p.b[i] = n * rate[half];
  }
}

// Sequential WKV: one block of 64 threads per (sequence, head); thread i keeps
// state row i (value index i, all 64 key indices) in registers for the whole
// sequence. Each step's r/decay/k/alpha/beta are staged in shared memory and
// read by every thread as broadcasts. Double buffering the stage needs only
// one barrier per step: a thread writes buffer n%2 at step n only after the
// barrier of step n-1, which every thread reaches after finishing step n-2,
// the last reader of that buffer. The next token's inputs are loaded into
// registers before the current step's math to hide global-memory latency.
__global__ void __launch_bounds__(kHeadSize)
    wkv7_kernel(const int32_t* seq_start, const int32_t* slot, int heads, const float* r,
                const float* decay, const float* k, const float* v, const float* alpha,
                const float* beta, SlotArray state, float* y, int chunked_min_tokens) {
  enum { R, W, K, A, B, kInputs };
  __shared__ __align__(16) float stage[2][kInputs][kHeadSize];
  const int s = blockIdx.x / heads, h = blockIdx.x % heads, i = threadIdx.x;
  const int begin = seq_start[s], end = seq_start[s + 1];
  if (begin == end) return;
  if (chunked_min_tokens > 0 && end - begin >= chunked_min_tokens) return;  // the chunked form's
  const int C = heads * kHeadSize;
  float* S_row =
      state.base + int64_t(slot[s]) * state.slot_stride + (int64_t(h) * kHeadSize + i) * kHeadSize;

  float S[kHeadSize];
#pragma unroll
  for (int j = 0; j < kHeadSize; ++j) S[j] = S_row[j];

  int64_t off = int64_t(begin) * C + h * kHeadSize + i;
  float in[kInputs], v_next = v[off];
  in[R] = r[off], in[W] = decay[off], in[K] = k[off], in[A] = alpha[off], in[B] = beta[off];
  for (int t = begin; t < end; ++t) {
    float(*st)[kHeadSize] = stage[(t - begin) & 1];
#pragma unroll
    for (int q = 0; q < kInputs; ++q) st[q][i] = in[q];
    const float vi = v_next;
    const int64_t out = off;
    if (t + 1 < end) {
      off += C;
      in[R] = r[off], in[W] = decay[off], in[K] = k[off], in[A] = alpha[off], in[B] = beta[off];
      v_next = v[off];
    }
    __syncthreads();

    const float4* a4 = reinterpret_cast<const float4*>(st[A]);
    float sa = 0;
#pragma unroll
    for (int j = 0; j < kHeadSize / 4; ++j) {
      const float4 a = a4[j];
      sa += S[4 * j] * a.x;
      sa += S[4 * j + 1] * a.y;
      sa += S[4 * j + 2] * a.z;
      sa += S[4 * j + 3] * a.w;
    }
    const float4* w4 = reinterpret_cast<const float4*>(st[W]);
    const float4* k4 = reinterpret_cast<const float4*>(st[K]);
    const float4* b4 = reinterpret_cast<const float4*>(st[B]);
    const float4* r4 = reinterpret_cast<const float4*>(st[R]);
    float yi = 0;
#pragma unroll
    for (int j = 0; j < kHeadSize / 4; ++j) {
      const float4 w = w4[j], kj = k4[j], b = b4[j], rj = r4[j];
      float* s4 = S + 4 * j;
      s4[0] = s4[0] * w.x + sa * b.x + vi * kj.x;
      s4[1] = s4[1] * w.y + sa * b.y + vi * kj.y;
      s4[2] = s4[2] * w.z + sa * b.z + vi * kj.z;
      s4[3] = s4[3] * w.w + sa * b.w + vi * kj.w;
      yi += s4[0] * rj.x;
      yi += s4[1] * rj.y;
      yi += s4[2] * rj.z;
      yi += s4[3] * rj.w;
    }
    y[out] = yi;
  }

#pragma unroll
  for (int j = 0; j < kHeadSize; ++j) S_row[j] = S[j];
}

}  // namespace

void wkv_prepare(cudaStream_t stream, const WkvPrepareArgs& args) {
  const int pairs = args.num_tokens * (args.channels / kHeadSize);
  if (pairs <= 0) return;
  // The same float constant as the CPU backend computes.
  const float decay_scale = std::exp(-0.5f);
  wkv_prepare_kernel<<<blocks_for(pairs, kWarpsPerBlock), kWarpsPerBlock * kWarp, 0, stream>>>(
      args, pairs, decay_scale);
  RWKV_CUDA_CHECK_LAUNCH();
}

void wkv7(cudaStream_t stream, const PackedBatch& batch, int heads, const float* r,
          const float* decay, const float* k, const float* v, const float* alpha, const float* beta,
          SlotArray state, float* y, int chunked_min_tokens) {
  const int blocks = batch.num_seqs * heads;
  if (blocks <= 0 || batch.num_tokens <= 0) return;
  // Which sequences take which form is decided on the device from the
  // offsets, so a recorded step stays valid for any lengths.
  wkv7_kernel<<<blocks, kHeadSize, 0, stream>>>(batch.seq_start, batch.slot, heads, r, decay, k, v,
                                                alpha, beta, state, y, chunked_min_tokens);
  RWKV_CUDA_CHECK_LAUNCH();
  if (chunked_min_tokens > 0)
    wkv7_chunked(stream, batch, heads, r, decay, k, v, alpha, beta, state, y, chunked_min_tokens);
}

}  // namespace rwkv::kernels::cuda
