// The EmbeddingRWKV forward pass (docs/model.md), written once over backend ops.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model/device_array.h"
#include "engine/model/weights.h"
#include "kernels/backend.h"

namespace rwkv::model {

// Recurrent state of `slots` sequences for one block stack, in backend memory:
// shift [slot][layer][2][C], wkv [slot][layer][H][64][64] and, when pooling,
// the running sum of pooled rows and their count [slot][C + 1].
class SlotStates {
 public:
  SlotStates(kernels::Backend& backend, int slots, const BlockStack& stack, bool pooling);

  int slots() const { return slots_; }
  int64_t shift_size() const { return int64_t(layers_) * 2 * channels_; }  // floats per slot
  int64_t wkv_size() const {
    return int64_t(layers_) * heads_ * common::kHeadSize * common::kHeadSize;
  }
  int64_t pooled_size() const { return channels_ + 1; }

  kernels::SlotArray shift(int layer, int which) const {
    return {shift_.get() + (int64_t(layer) * 2 + which) * channels_, shift_size()};
  }
  kernels::SlotArray wkv(int layer) const {
    return {wkv_.get() + int64_t(layer) * heads_ * common::kHeadSize * common::kHeadSize,
            wkv_size()};
  }
  kernels::SlotArray pooled() const { return {pooled_.get(), pooled_size()}; }

  float* shift_of(int slot) const { return shift_.get() + slot * shift_size(); }
  float* wkv_of(int slot) const { return wkv_.get() + slot * wkv_size(); }
  float* pooled_of(int slot) const { return pooled_.get() + slot * pooled_size(); }

  void clear(int slot);

 private:
  kernels::Backend& backend_;
  int slots_, layers_, channels_, heads_;
  DeviceArray shift_, wkv_, pooled_;
};

// Scratch activations for one step, sized by reserve_workspace (the engine
// does so at start, for its limits).
class Workspace {
 public:
  explicit Workspace(kernels::Backend& backend) : backend_(backend) {}
  // Makes room for `tokens` rows of a stack with width C, FFN width F and
  // widest LoRA D.
  void reserve(int tokens, int C, int F, int D);

  DeviceArray x, u, xr, xw, xk, xv, xa, xg, r, k, v, w, a, b, g, y, v_first, v_gate, lora, ffn;

 private:
  kernels::Backend& backend_;
  int64_t capacity_ = 0;  // floats per [T, C] buffer
};

// Makes room in `ws` (and the backend's matmul scratch) for steps of up to
// `rows` tokens or sequences through `stack`; a no-op when there is room. The
// functions below need it done: they never allocate.
void reserve_workspace(kernels::Backend& be, Workspace& ws, const BlockStack& stack, int rows);

// Runs every block of `stack` over the packed batch. x [T, C] holds the input
// embeddings and returns the residual stream after the last block. Each
// sequence starts from and updates its slot's state in `states`.
void forward_blocks(kernels::Backend& be, const BlockStack& stack,
                    const kernels::PackedBatch& batch, SlotStates& states, Workspace& ws, float* x);

// One engine step of the embedding model: token embedding, blocks, and the
// EOS pooling into each slot's running sum.
void embedding_step(kernels::Backend& be, const EmbeddingWeights& model,
                    const kernels::PackedBatch& batch, SlotStates& states, Workspace& ws);

// z = LN(fc2(relu(fc1(p))) + p) for rows of pooled embeddings p [rows, C].
void apply_head(kernels::Backend& be, const EmbeddingHeadWeights& head, int rows, int C,
                const float* pooled, Workspace& ws, float* z);

// Reranker logits [num_seqs] for a batch of one-token sequences whose slots
// in `states` hold the selected WKV layers and zero shift states.
void reranker_logits(kernels::Backend& be, const RerankerWeights& model,
                     const kernels::PackedBatch& batch, SlotStates& states, Workspace& ws,
                     float* logits);

}  // namespace rwkv::model
