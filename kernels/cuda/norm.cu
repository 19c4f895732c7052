// Normalizations: LayerNorm over rows, the per-head GroupNorm epilogue of the
// time mix, and the final LayerNorm fused with EOS pooling. Moments are
// two-pass (mean, then squared deviations) in float with tree reductions.
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/ops.cuh"

namespace rwkv::kernels::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kPoolThreads = 256;

// Mean and 1/sqrt(var + eps) of row[0..n), computed by one warp; every lane
// gets both.
__device__ __forceinline__ void warp_moments(const float* row, int n, float eps, float& mean,
                                             float& rstd) {
  const int lane = threadIdx.x % kWarp;
  float sum = 0;
  for (int c = lane; c < n; c += kWarp) sum += row[c];
  mean = warp_sum(sum) / n;
  float sq = 0;
  for (int c = lane; c < n; c += kWarp) {
    const float d = row[c] - mean;
    sq += d * d;
  }
  rstd = 1.0f / sqrtf(warp_sum(sq) / n + eps);
}

// One warp per row.
__global__ void layer_norm_kernel(int rows, int C, const float* x, const float* weight,
                                  const float* bias, float eps, float* y) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (row >= rows) return;
  const float* in = x + row * C;
  float* out = y + row * C;
  float mean, rstd;
  warp_moments(in, C, eps, mean, rstd);
  for (int c = threadIdx.x % kWarp; c < C; c += kWarp)
    out[c] = (in[c] - mean) * rstd * weight[c] + bias[c];
}

// One warp per (token, head); lane i owns channels i and i + 32 of the head.
__global__ void wkv_output_kernel(int pairs, int heads, const float* r, const float* k,
                                  const float* v, const float* r_k, const float* gn_weight,
                                  const float* gn_bias, float eps, const float* g, float* y) {
  const int64_t pair = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (pair >= pairs) return;
  const int h = int(pair % heads), lane = threadIdx.x % kWarp;
  const int64_t off = pair * kHeadSize;  // == t * C + h * 64
  const int c0 = h * kHeadSize + lane, c1 = c0 + kWarp;
  const float y0 = y[off + lane], y1 = y[off + lane + kWarp];
  const float mean = warp_sum(y0 + y1) / kHeadSize;
  const float d0 = y0 - mean, d1 = y1 - mean;
  const float rstd = 1.0f / sqrtf(warp_sum(d0 * d0 + d1 * d1) / kHeadSize + eps);
  const float bonus = warp_sum(r[off + lane] * k[off + lane] * r_k[c0] +
                               r[off + lane + kWarp] * k[off + lane + kWarp] * r_k[c1]);
  const float n0 = d0 * rstd * gn_weight[c0] + gn_bias[c0];
  const float n1 = d1 * rstd * gn_weight[c1] + gn_bias[c1];
  y[off + lane] = (n0 + bonus * v[off + lane]) * g[off + lane];
  y[off + lane + kWarp] = (n1 + bonus * v[off + lane + kWarp]) * g[off + lane + kWarp];
}

// One block per sequence. Pooled tokens are added to the slot's sum in token
// order (the order the CPU uses, and the same however the sequence is split).
__global__ void pool_kernel(const int32_t* tokens, const int32_t* seq_start, const int32_t* slot,
                            int C, const float* x, const float* weight, const float* bias,
                            float eps, int32_t pool_token, SlotArray pool) {
  __shared__ int is_pooled[kPoolThreads];
  __shared__ float scratch[kWarp];
  const int s = blockIdx.x;
  const int begin = seq_start[s], end = seq_start[s + 1];
  float* sum = pool.base + int64_t(slot[s]) * pool.slot_stride;
  for (int chunk = begin; chunk < end; chunk += kPoolThreads) {
    const int t = chunk + threadIdx.x;
    const bool mine = t < end && tokens[t] == pool_token;
    is_pooled[threadIdx.x] = mine;
    if (__syncthreads_count(mine) == 0) continue;  // uniform: nothing pooled here
    for (int j = 0; j < kPoolThreads && chunk + j < end; ++j) {
      if (!is_pooled[j]) continue;  // uniform: every thread reads the same flag
      const float* row = x + int64_t(chunk + j) * C;
      float part = 0;
      for (int c = threadIdx.x; c < C; c += blockDim.x) part += row[c];
      const float mean = block_sum(part, scratch) / C;
      part = 0;
      for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float d = row[c] - mean;
        part += d * d;
      }
      const float rstd = 1.0f / sqrtf(block_sum(part, scratch) / C + eps);
      for (int c = threadIdx.x; c < C; c += blockDim.x)
        sum[c] += (row[c] - mean) * rstd * weight[c] + bias[c];
      if (threadIdx.x == 0) sum[C] += 1.0f;
    }
    __syncthreads();  // before the next chunk overwrites is_pooled
  }
}

}  // namespace

void layer_norm(cudaStream_t stream, int rows, int C, const float* x, const float* weight,
                const float* bias, float eps, float* y) {
  if (rows <= 0) return;
  layer_norm_kernel<<<blocks_for(rows, kWarpsPerBlock), kWarpsPerBlock * kWarp, 0, stream>>>(
      rows, C, x, weight, bias, eps, y);
  RWKV_CUDA_CHECK_LAUNCH();
}

void wkv_output(cudaStream_t stream, int num_tokens, int heads, const float* r, const float* k,
                const float* v, const float* r_k, const float* gn_weight, const float* gn_bias,
                float eps, const float* g, float* y) {
  const int pairs = num_tokens * heads;
  if (pairs <= 0) return;
  wkv_output_kernel<<<blocks_for(pairs, kWarpsPerBlock), kWarpsPerBlock * kWarp, 0, stream>>>(
      pairs, heads, r, k, v, r_k, gn_weight, gn_bias, eps, g, y);
  RWKV_CUDA_CHECK_LAUNCH();
}

void pool_token_layer_norm(cudaStream_t stream, const PackedBatch& batch, int C, const float* x,
                           const float* weight, const float* bias, float eps, int32_t pool_token,
                           SlotArray pool) {
  if (batch.num_seqs <= 0) return;
  pool_kernel<<<batch.num_seqs, kPoolThreads, 0, stream>>>(
      batch.tokens, batch.seq_start, batch.slot, C, x, weight, bias, eps, pool_token, pool);
  RWKV_CUDA_CHECK_LAUNCH();
}

}  // namespace rwkv::kernels::cuda
