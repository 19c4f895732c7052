// The whole model in one place: each function below is one part of docs/model.md.
#include "engine/model/model.h"

#include <algorithm>

#include "engine/text/tokenizer.h"

namespace rwkv::model {

using kernels::Activation;
using kernels::Backend;
using kernels::PackedBatch;

constexpr float kLayerNormEps = 1e-5f;
constexpr float kGroupNormEps = 64e-5f;

SlotStates::SlotStates(Backend& backend, int slots, const BlockStack& stack, bool pooling)
    : backend_(backend),
      slots_(slots),
      layers_(stack.layers),
      channels_(stack.channels),
      heads_(stack.heads),
      shift_(backend, size_t(slots) * shift_size()),
      wkv_(backend, size_t(slots) * wkv_size()),
      pooled_(backend, pooling ? size_t(slots) * pooled_size() : 0) {
  backend.zero(shift_.get(), shift_.size() * sizeof(float));
  backend.zero(wkv_.get(), wkv_.size() * sizeof(float));
  if (pooling) backend.zero(pooled_.get(), pooled_.size() * sizeof(float));
}

void SlotStates::clear(int slot) {
  backend_.zero(shift_of(slot), shift_size() * sizeof(float));
  backend_.zero(wkv_of(slot), wkv_size() * sizeof(float));
  if (!pooled_.empty()) backend_.zero(pooled_of(slot), pooled_size() * sizeof(float));
}

void Workspace::reserve(int tokens, int C, int F, int D) {
  const int64_t need = int64_t(std::max(tokens, 1)) * C;
  const int64_t ffn_need = int64_t(std::max(tokens, 1)) * F;
  const int64_t lora_need = int64_t(std::max(tokens, 1)) * D;
  if (need > capacity_) {
    for (DeviceArray* buf :
         {&x, &u, &xr, &xw, &xk, &xv, &xa, &xg, &r, &k, &v, &w, &a, &b, &g, &y, &v_first, &v_gate})
      *buf = DeviceArray(backend_, need);
    capacity_ = need;
  }
  if (int64_t(ffn.size()) < ffn_need) ffn = DeviceArray(backend_, ffn_need);
  if (int64_t(lora.size()) < lora_need) lora = DeviceArray(backend_, lora_need);
}

namespace {

// y = act(x · W1ᵀ) · W2ᵀ through the LoRA bottleneck of width D.
void lora(Backend& be, int T, const float* x, const DeviceMatrix& w1, const DeviceMatrix& w2,
          bool activate, Activation act, float* tmp, float* y) {
  be.matmul(T, x, w1.view(), tmp, false);
  if (activate) be.activate(act, size_t(T) * w1.rows(), tmp);
  be.matmul(T, tmp, w2.view(), y, false);
}

void time_mix(Backend& be, const BlockWeights& bw, int layer, int H, const PackedBatch& batch,
              SlotStates& states, Workspace& ws, float* x) {
  const int T = batch.num_tokens, C = H * common::kHeadSize;
  be.layer_norm(T, C, x, bw.ln1_w.get(), bw.ln1_b.get(), kLayerNormEps, ws.u.get());
  const float* mix[6] = {bw.x_r.get(), bw.x_w.get(), bw.x_k.get(),
                         bw.x_v.get(), bw.x_a.get(), bw.x_g.get()};
  float* mixed[6] = {ws.xr.get(), ws.xw.get(), ws.xk.get(), ws.xv.get(), ws.xa.get(), ws.xg.get()};
  be.token_shift_mix(batch, C, ws.u.get(), states.shift(layer, 0), 6, mix, mixed);

  be.matmul(T, ws.xr.get(), bw.receptance.view(), ws.r.get(), false);
  be.matmul(T, ws.xk.get(), bw.key.view(), ws.k.get(), false);
  be.matmul(T, ws.xv.get(), bw.value.view(), ws.v.get(), false);
  float* tmp = ws.lora.get();
  lora(be, T, ws.xw.get(), bw.w1, bw.w2, true, Activation::kTanh, tmp, ws.w.get());
  lora(be, T, ws.xa.get(), bw.a1, bw.a2, false, Activation::kTanh, tmp, ws.a.get());
  lora(be, T, ws.xg.get(), bw.g1, bw.g2, true, Activation::kSigmoid, tmp, ws.g.get());
  if (layer > 0)
    lora(be, T, ws.xv.get(), bw.v1, bw.v2, false, Activation::kTanh, tmp, ws.v_gate.get());

  kernels::WkvPrepareArgs prep;
  prep.num_tokens = T;
  prep.channels = C;
  prep.w = ws.w.get();
  prep.k = ws.k.get();
  prep.v = ws.v.get();
  prep.a = ws.a.get();
  prep.b = ws.b.get();
  prep.w0 = bw.w0.get();
  prep.a0 = bw.a0.get();
  prep.k_k = bw.k_k.get();
  prep.k_a = bw.k_a.get();
  prep.v0 = layer > 0 ? bw.v0.get() : nullptr;
  prep.v_gate = layer > 0 ? ws.v_gate.get() : nullptr;
  prep.v_first = ws.v_first.get();
  be.wkv_prepare(prep);

  be.wkv7(batch, H, ws.r.get(), ws.w.get(), ws.k.get(), ws.v.get(), ws.a.get(), ws.b.get(),
          states.wkv(layer), ws.y.get());
  be.wkv_output(T, H, ws.r.get(), ws.k.get(), ws.v.get(), bw.r_k.get(), bw.ln_x_w.get(),
                bw.ln_x_b.get(), kGroupNormEps, ws.g.get(), ws.y.get());
  be.matmul(T, ws.y.get(), bw.output.view(), x, true);
}

void channel_mix(Backend& be, const BlockWeights& bw, int layer, int C, const PackedBatch& batch,
                 SlotStates& states, Workspace& ws, float* x) {
  const int T = batch.num_tokens;
  be.layer_norm(T, C, x, bw.ln2_w.get(), bw.ln2_b.get(), kLayerNormEps, ws.u.get());
  const float* mix[1] = {bw.ffn_x_k.get()};
  float* mixed[1] = {ws.xk.get()};
  be.token_shift_mix(batch, C, ws.u.get(), states.shift(layer, 1), 1, mix, mixed);
  be.matmul(T, ws.xk.get(), bw.ffn_key.view(), ws.ffn.get(), false);
  be.activate(Activation::kReluSquared, size_t(T) * bw.ffn, ws.ffn.get());
  be.matmul(T, ws.ffn.get(), bw.ffn_value.view(), x, true);
}

}  // namespace

void reserve_workspace(Backend& be, Workspace& ws, const BlockStack& stack, int rows) {
  int F = 1, D = 1;
  for (const BlockWeights& b : stack.blocks) {
    F = std::max(F, b.ffn);
    D = std::max({D, b.lora_w, b.lora_a, b.lora_v, b.lora_g});
  }
  ws.reserve(rows, stack.channels, F, D);
  be.reserve_matmul(rows, std::max({stack.channels, F, D}));
}

void forward_blocks(Backend& be, const BlockStack& stack, const PackedBatch& batch,
                    SlotStates& states, Workspace& ws, float* x) {
  for (int l = 0; l < stack.layers; ++l) {
    time_mix(be, stack.blocks[l], l, stack.heads, batch, states, ws, x);
    channel_mix(be, stack.blocks[l], l, stack.channels, batch, states, ws, x);
  }
}

void embedding_step(Backend& be, const EmbeddingWeights& model, const PackedBatch& batch,
                    SlotStates& states, Workspace& ws) {
  const BlockStack& stack = model.stack;
  be.gather_rows(batch.tokens, batch.num_tokens, model.table.get(), stack.channels, ws.x.get());
  forward_blocks(be, stack, batch, states, ws, ws.x.get());
  be.pool_token_layer_norm(batch, stack.channels, ws.x.get(), stack.ln_out_w.get(),
                           stack.ln_out_b.get(), kLayerNormEps, text::Tokenizer::kEos,
                           states.pooled());
}

void apply_head(Backend& be, const EmbeddingHeadWeights& head, int rows, int C, const float* pooled,
                Workspace& ws, float* z) {
  be.matmul(rows, pooled, head.fc1.view(), ws.u.get(), false);
  be.activate(Activation::kRelu, size_t(rows) * C, ws.u.get());
  be.matmul(rows, ws.u.get(), head.fc2.view(), ws.y.get(), false);
  be.add(size_t(rows) * C, pooled, ws.y.get());
  be.layer_norm(rows, C, ws.y.get(), head.norm_w.get(), head.norm_b.get(), kLayerNormEps, z);
}

void reranker_logits(Backend& be, const RerankerWeights& model, const PackedBatch& batch,
                     SlotStates& states, Workspace& ws, float* logits) {
  const BlockStack& stack = model.stack;
  const int rows = batch.num_seqs, C = stack.channels;
  // Each pair is one token whose input is the learned embedding row.
  be.broadcast_row(model.x0.get(), rows, C, ws.x.get());
  forward_blocks(be, stack, batch, states, ws, ws.x.get());
  be.layer_norm(rows, C, ws.x.get(), stack.ln_out_w.get(), stack.ln_out_b.get(), kLayerNormEps,
                ws.xr.get());
  be.matmul(rows, ws.xr.get(), model.head0_w.view(), ws.y.get(), false);
  be.add_bias(rows, C, model.head0_b.get(), ws.y.get());
  be.activate(Activation::kTanh, size_t(rows) * C, ws.y.get());
  be.matmul(rows, ws.y.get(), model.head2_w.view(), logits, false);
}

}  // namespace rwkv::model
