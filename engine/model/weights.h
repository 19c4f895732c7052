// Model weights in backend memory, built from a checkpoint. Every dimension is
// inferred from tensor shapes and every tensor's shape is checked, so a wrong
// file fails at load with a message saying what was expected.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "engine/common/head_size.h"
#include "engine/io/checkpoint.h"
#include "engine/model/device_array.h"
#include "engine/model/device_matrix.h"

namespace rwkv::model {

// One RWKV-7 block. Matrices are [out, in]; the LoRA factors are transposed at
// load so that every product is y = x · Wᵀ.
struct BlockWeights {
  int lora_w = 0, lora_a = 0, lora_v = 0, lora_g = 0, ffn = 0;  // lora_v is 0 in layer 0
  DeviceArray ln1_w, ln1_b, ln2_w, ln2_b;
  DeviceArray x_r, x_w, x_k, x_v, x_a, x_g;
  DeviceArray w0, a0, v0;
  DeviceMatrix w1, w2, a1, a2, v1, v2, g1, g2;
  DeviceArray k_k, k_a, r_k;
  DeviceMatrix receptance, key, value, output;
  DeviceArray ln_x_w, ln_x_b;
  DeviceArray ffn_x_k;
  DeviceMatrix ffn_key, ffn_value;
};

// A stack of blocks with its final LayerNorm: the backbone of both the
// embedding model (prefix "rwkv.") and the reranker (prefix "reranker.").
struct BlockStack {
  int layers = 0, channels = 0, heads = 0;
  std::vector<BlockWeights> blocks;
  DeviceArray ln_out_w, ln_out_b;
  // blocks.0.ln0 stays on the host: it is folded into the token embedding.
  std::vector<float> ln0_w, ln0_b;
};

enum class EmbeddingHead { kRetrieval = 0, kSts = 1, kClassification = 2 };
constexpr std::array<const char*, 3> kHeadNames = {"retr_head", "sts_head", "cls_head"};

// z = LN(fc2(relu(fc1(p))) + p, norm).
struct EmbeddingHeadWeights {
  DeviceMatrix fc1, fc2;
  DeviceArray norm_w, norm_b;
};

struct EmbeddingWeights {
  BlockStack stack;
  int vocab_rows = 0;
  DeviceArray table;  // LN(rwkv.emb.weight, blocks.0.ln0), [vocab_rows, C]
  std::array<EmbeddingHeadWeights, 3> embedding_heads;
};

struct RerankerWeights {
  BlockStack stack;
  std::vector<int> layer_idx;  // embedding layer whose WKV state feeds block i
  DeviceArray x0;              // LN(reranker.emb.weight[0], blocks.0.ln0), [C]
  DeviceMatrix head0_w, head2_w;
  DeviceArray head0_b;
};

EmbeddingWeights load_embedding_weights(const io::Checkpoint& ckpt, kernels::Backend& backend);
// `embedding` gives the state shape the reranker must accept.
RerankerWeights load_reranker_weights(const io::Checkpoint& ckpt, const EmbeddingWeights& embedding,
                                      kernels::Backend& backend);

}  // namespace rwkv::model
