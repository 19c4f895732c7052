#include "engine/model/weights.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace rwkv::model {
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  return io::HostTensor{shape, {}}.shape_string();
}

// Reads tensors under one key prefix, checking shapes against what the model
// structure requires.
class TensorReader {
 public:
  TensorReader(const io::Checkpoint& ckpt, std::string prefix, kernels::Backend& backend)
      : ckpt_(ckpt), prefix_(std::move(prefix)), backend_(backend) {}

  bool has(const std::string& key) const { return ckpt_.has(prefix_ + key); }

  const io::HostTensor& tensor(const std::string& key) const {
    const std::string full = prefix_ + key;
    if (!ckpt_.has(full)) fail("missing tensor '" + full + "'");
    return ckpt_.at(full);
  }

  // The tensor must have exactly this shape.
  const io::HostTensor& expect(const std::string& key, const std::vector<int64_t>& shape,
                               const std::string& why) const {
    const io::HostTensor& t = tensor(key);
    if (t.shape != shape)
      fail("tensor '" + prefix_ + key + "' has shape " + t.shape_string() + ", expected " +
           shape_str(shape) + " (" + why + ")");
    return t;
  }

  // A per-channel vector, stored upstream as [C], [1, C] or [1, 1, C].
  std::vector<float> host_vector(const std::string& key, int64_t n, const std::string& why) const {
    const io::HostTensor& t = tensor(key);
    const bool leading_ones =
        std::all_of(t.shape.begin(), t.shape.empty() ? t.shape.end() : t.shape.end() - 1,
                    [](int64_t d) { return d == 1; });
    if (t.shape.empty() || t.shape.back() != n || !leading_ones)
      fail("tensor '" + prefix_ + key + "' has shape " + t.shape_string() + ", expected [" +
           std::to_string(n) + "] (" + why + ")");
    return t.data;
  }
  DeviceArray vector(const std::string& key, int64_t n, const std::string& why) const {
    return DeviceArray(backend_, host_vector(key, n, why));
  }

  // A Linear weight [out, in], uploaded as stored.
  DeviceMatrix matrix(const std::string& key, int64_t out, int64_t in, const std::string& why,
                      kernels::MatrixInput input = kernels::MatrixInput::kActivations) const {
    return DeviceMatrix(backend_, expect(key, {out, in}, why).data, int(out), int(in), input);
  }

  // A LoRA factor stored [rows, cols] for x·M, uploaded transposed to [cols, rows].
  DeviceMatrix transposed(const std::string& key, int64_t rows, int64_t cols,
                          const std::string& why) const {
    const io::HostTensor& t = expect(key, {rows, cols}, why);
    std::vector<float> out(t.data.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = t.data[r * cols + c];
    return DeviceMatrix(backend_, out, int(cols), int(rows), kernels::MatrixInput::kLowRank);
  }

  // The second dimension of a [C, D] LoRA factor.
  int lora_width(const std::string& key, int64_t C) const {
    const io::HostTensor& t = tensor(key);
    if (t.shape.size() != 2 || t.shape[0] != C || t.shape[1] <= 0)
      fail("tensor '" + prefix_ + key + "' has shape " + t.shape_string() + ", expected [" +
           std::to_string(C) + ", D] (LoRA down-projection)");
    return static_cast<int>(t.shape[1]);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw io::CheckpointError(ckpt_.path + ": " + what);
  }

  const io::Checkpoint& checkpoint() const { return ckpt_; }
  kernels::Backend& backend() const { return backend_; }

 private:
  const io::Checkpoint& ckpt_;
  std::string prefix_;
  kernels::Backend& backend_;
};

// The task and score heads run once per result on a few rows: float32 costs
// nothing there and keeps the last products exact.
constexpr kernels::MatrixInput kHead = kernels::MatrixInput::kFloat32;

std::vector<float> layer_norm_host(const std::vector<float>& x, const std::vector<float>& w,
                                   const std::vector<float>& b) {
  const size_t C = w.size();
  std::vector<float> y(x.size());
  for (size_t row = 0; row < x.size() / C; ++row) {
    const float* in = x.data() + row * C;
    double mean = std::accumulate(in, in + C, 0.0) / C, var = 0;
    for (size_t c = 0; c < C; ++c) var += (in[c] - mean) * (in[c] - mean);
    const double rstd = 1.0 / std::sqrt(var / C + 1e-5);
    for (size_t c = 0; c < C; ++c) y[row * C + c] = float((in[c] - mean) * rstd * w[c] + b[c]);
  }
  return y;
}

BlockWeights load_block(const TensorReader& rd, int layer, int64_t C, int64_t H) {
  const std::string p = "blocks." + std::to_string(layer) + ".";
  const std::string att = p + "att.", ffn = p + "ffn.";
  BlockWeights b;
  const std::string chan = "per-channel, C=" + std::to_string(C);
  b.ln1_w = rd.vector(p + "ln1.weight", C, chan);
  b.ln1_b = rd.vector(p + "ln1.bias", C, chan);
  b.ln2_w = rd.vector(p + "ln2.weight", C, chan);
  b.ln2_b = rd.vector(p + "ln2.bias", C, chan);
  b.x_r = rd.vector(att + "x_r", C, chan);
  b.x_w = rd.vector(att + "x_w", C, chan);
  b.x_k = rd.vector(att + "x_k", C, chan);
  b.x_v = rd.vector(att + "x_v", C, chan);
  b.x_a = rd.vector(att + "x_a", C, chan);
  b.x_g = rd.vector(att + "x_g", C, chan);
  b.w0 = rd.vector(att + "w0", C, chan);
  b.a0 = rd.vector(att + "a0", C, chan);
  b.k_k = rd.vector(att + "k_k", C, chan);
  b.k_a = rd.vector(att + "k_a", C, chan);
  b.r_k =
      DeviceArray(rd.backend(), rd.expect(att + "r_k", {H, common::kHeadSize}, "[heads, 64]").data);

  const std::string lora = "LoRA factor";
  b.lora_w = rd.lora_width(att + "w1", C);
  b.lora_a = rd.lora_width(att + "a1", C);
  b.lora_g = rd.lora_width(att + "g1", C);
  b.w1 = rd.transposed(att + "w1", C, b.lora_w, lora);
  b.w2 = rd.transposed(att + "w2", b.lora_w, C, lora);
  b.a1 = rd.transposed(att + "a1", C, b.lora_a, lora);
  b.a2 = rd.transposed(att + "a2", b.lora_a, C, lora);
  b.g1 = rd.transposed(att + "g1", C, b.lora_g, lora);
  b.g2 = rd.transposed(att + "g2", b.lora_g, C, lora);
  // Layer 0 produces v_first; upstream ignores v0/v1/v2 there if present.
  if (layer > 0) {
    b.lora_v = rd.lora_width(att + "v1", C);
    b.v0 = rd.vector(att + "v0", C, chan);
    b.v1 = rd.transposed(att + "v1", C, b.lora_v, lora);
    b.v2 = rd.transposed(att + "v2", b.lora_v, C, lora);
  }

  const std::string linear = "Linear [out, in], C=" + std::to_string(C);
  b.receptance = rd.matrix(att + "receptance.weight", C, C, linear);
  b.key = rd.matrix(att + "key.weight", C, C, linear);
  b.value = rd.matrix(att + "value.weight", C, C, linear);
  b.output = rd.matrix(att + "output.weight", C, C, linear);
  b.ln_x_w = rd.vector(att + "ln_x.weight", C, chan);
  b.ln_x_b = rd.vector(att + "ln_x.bias", C, chan);

  const io::HostTensor& fk = rd.tensor(ffn + "key.weight");
  if (fk.shape.size() != 2 || fk.shape[1] != C || fk.shape[0] <= 0)
    rd.fail("tensor '" + ffn + "key.weight' has shape " + fk.shape_string() + ", expected [F, " +
            std::to_string(C) + "]");
  b.ffn = static_cast<int>(fk.shape[0]);
  b.ffn_x_k = rd.vector(ffn + "x_k", C, chan);
  b.ffn_key = rd.matrix(ffn + "key.weight", b.ffn, C, linear);
  // Its input is relu(k)²: no bound that float16 could hold.
  b.ffn_value =
      rd.matrix(ffn + "value.weight", C, b.ffn, "Linear [C, F]", kernels::MatrixInput::kUnbounded);
  return b;
}

int count_layers(const TensorReader& rd) {
  int n = 0;
  while (rd.has("blocks." + std::to_string(n) + ".ln1.weight")) ++n;
  if (n == 0) rd.fail("no blocks found (expected keys like 'blocks.0.ln1.weight')");
  return n;
}

BlockStack load_stack(const TensorReader& rd, int64_t C) {
  BlockStack s;
  s.layers = count_layers(rd);
  s.channels = static_cast<int>(C);
  if (C % common::kHeadSize != 0)
    rd.fail("width C=" + std::to_string(C) + " is not a multiple of the head size 64");
  const io::HostTensor& r_k = rd.tensor("blocks.0.att.r_k");
  if (r_k.shape.size() != 2 || r_k.shape[1] != common::kHeadSize ||
      r_k.shape[0] * common::kHeadSize != C)
    rd.fail("tensor 'blocks.0.att.r_k' has shape " + r_k.shape_string() + ", expected [" +
            std::to_string(C / common::kHeadSize) + ", 64]");
  s.heads = static_cast<int>(r_k.shape[0]);
  const std::string chan = "per-channel, C=" + std::to_string(C);
  s.ln0_w = rd.host_vector("blocks.0.ln0.weight", C, chan);
  s.ln0_b = rd.host_vector("blocks.0.ln0.bias", C, chan);
  for (int l = 0; l < s.layers; ++l) s.blocks.push_back(load_block(rd, l, C, s.heads));
  s.ln_out_w = rd.vector("ln_out.weight", C, chan);
  s.ln_out_b = rd.vector("ln_out.bias", C, chan);
  return s;
}

}  // namespace

EmbeddingWeights load_embedding_weights(const io::Checkpoint& ckpt, kernels::Backend& backend) {
  for (const auto& [key, _] : ckpt.tensors) {
    if (key.starts_with("vit.") || key.starts_with("proj."))
      throw io::CheckpointError(ckpt.path + ": has vision tensors ('" + key +
                                "'); the vision tower is not supported");
  }
  if (!ckpt.has("rwkv.emb.weight")) {
    const bool reranker = std::any_of(ckpt.tensors.begin(), ckpt.tensors.end(), [](const auto& kv) {
      return kv.first.starts_with("reranker.");
    });
    throw io::CheckpointError(
        ckpt.path + ": missing tensor 'rwkv.emb.weight'" +
        (reranker ? " (this looks like a reranker checkpoint; pass it as the reranker)" : ""));
  }
  TensorReader rd(ckpt, "rwkv.", backend);
  const io::HostTensor& emb = rd.tensor("emb.weight");
  if (emb.shape.size() != 2 || emb.shape[0] < 65536 || emb.shape[1] <= 0)
    rd.fail("tensor 'rwkv.emb.weight' has shape " + emb.shape_string() +
            ", expected [V >= 65536, C]");
  const int64_t C = emb.shape[1];

  EmbeddingWeights w;
  w.stack = load_stack(rd, C);
  w.vocab_rows = static_cast<int>(emb.shape[0]);
  w.table = DeviceArray(backend, layer_norm_host(emb.data, w.stack.ln0_w, w.stack.ln0_b));

  TensorReader hr(ckpt, "head.", backend);
  for (size_t h = 0; h < kHeadNames.size(); ++h) {
    const std::string p = std::string(kHeadNames[h]) + ".";
    w.embedding_heads[h].fc1 = hr.matrix(p + "fc1.weight", C, C, "Linear [C, C]", kHead);
    w.embedding_heads[h].fc2 = hr.matrix(p + "fc2.weight", C, C, "Linear [C, C]", kHead);
    w.embedding_heads[h].norm_w = hr.vector(p + "norm.weight", C, "per-channel");
    w.embedding_heads[h].norm_b = hr.vector(p + "norm.bias", C, "per-channel");
  }
  return w;
}

RerankerWeights load_reranker_weights(const io::Checkpoint& ckpt, const EmbeddingWeights& embedding,
                                      kernels::Backend& backend) {
  TensorReader rd(ckpt, "reranker.", backend);
  const std::string emb_key = rd.has("emb.weight") ? "emb.weight" : "token.weight";
  const int64_t C = embedding.stack.channels;
  const io::HostTensor& emb = rd.tensor(emb_key);
  if (emb.numel() != C)
    rd.fail("tensor 'reranker." + emb_key + "' has shape " + emb.shape_string() +
            ", expected [1, " + std::to_string(C) + "] (the embedding model's width)");

  RerankerWeights w;
  w.stack = load_stack(rd, C);
  if (w.stack.heads != embedding.stack.heads)
    rd.fail("reranker has " + std::to_string(w.stack.heads) + " heads, the embedding model " +
            std::to_string(embedding.stack.heads));
  w.x0 = DeviceArray(backend, layer_norm_host(emb.data, w.stack.ln0_w, w.stack.ln0_b));

  if (auto it = ckpt.int_lists.find("reranker_layer_idx"); it != ckpt.int_lists.end()) {
    for (int64_t i : it->second) {
      if (i < 0 || i >= embedding.stack.layers)
        rd.fail("reranker_layer_idx entry " + std::to_string(i) +
                " is outside the embedding model's " + std::to_string(embedding.stack.layers) +
                " layers");
      w.layer_idx.push_back(static_cast<int>(i));
    }
  } else {
    for (int i = 0; i < w.stack.layers; ++i) w.layer_idx.push_back(i);
  }
  if (static_cast<int>(w.layer_idx.size()) != w.stack.layers ||
      w.stack.layers > embedding.stack.layers)
    rd.fail("reranker has " + std::to_string(w.stack.layers) + " blocks but reads " +
            std::to_string(w.layer_idx.size()) + " state layers (embedding model has " +
            std::to_string(embedding.stack.layers) + ")");

  w.head0_w = rd.matrix("head.0.weight", C, C, "Linear [C, C]", kHead);
  w.head0_b = rd.vector("head.0.bias", C, "per-channel");
  w.head2_w = rd.matrix("head.2.weight", 1, C, "Linear [1, C]", kHead);
  return w;
}

}  // namespace rwkv::model
