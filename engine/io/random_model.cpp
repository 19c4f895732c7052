#include "engine/io/random_model.h"

#include <cmath>
#include <random>
#include <string>

namespace rwkv::io {
namespace {

class Builder {
 public:
  Builder(Checkpoint& ckpt, uint64_t seed) : ckpt_(ckpt), rng_(seed) {}

  // Values uniform in [center - spread, center + spread].
  void add(const std::string& key, std::vector<int64_t> shape, float center, float spread) {
    HostTensor t{std::move(shape), {}};
    t.data.resize(t.numel());
    std::uniform_real_distribution<float> dist(center - spread, center + spread);
    for (float& v : t.data) v = dist(rng_);
    ckpt_.tensors[key] = std::move(t);
  }
  // A matrix scaled like a trained layer: output variance about that of the input.
  void linear(const std::string& key, int64_t out, int64_t in) {
    add(key, {out, in}, 0, std::sqrt(3.0f / in));
  }

  void block(const std::string& p, const ModelShape& s, int layer) {
    const int64_t C = s.channels;
    if (layer == 0) {
      add(p + "ln0.weight", {C}, 1, 0.1f);
      add(p + "ln0.bias", {C}, 0, 0.1f);
    }
    for (const char* ln : {"ln1", "ln2"}) {
      add(p + ln + ".weight", {C}, 1, 0.1f);
      add(p + ln + ".bias", {C}, 0, 0.1f);
    }
    const std::string a = p + "att.";
    for (const char* mix : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"})
      add(a + mix, {1, 1, C}, 0.5f, 0.4f);
    add(a + "w0", {1, 1, C}, -1.0f, 1.0f);
    add(a + "a0", {1, 1, C}, 0, 0.5f);
    add(a + "k_k", {1, 1, C}, 0.85f, 0.1f);
    add(a + "k_a", {1, 1, C}, 1, 0.1f);
    add(a + "r_k", {C / 64, 64}, 0, 0.5f);
    const std::pair<const char*, int> loras[] = {
        {"w", s.lora_w}, {"a", s.lora_a}, {"g", s.lora_g}, {"v", s.lora_v}};
    for (const auto& [name, width] : loras) {
      if (std::string(name) == "v" && layer == 0) continue;
      add(a + name + "1", {C, width}, 0, std::sqrt(3.0f / C));
      add(a + name + "2", {width, C}, 0, std::sqrt(3.0f / width) * 0.3f);
    }
    if (layer > 0) add(a + "v0", {1, 1, C}, 1, 0.2f);
    for (const char* m : {"receptance", "key", "value", "output"}) linear(a + m + ".weight", C, C);
    add(a + "ln_x.weight", {C}, 1, 0.1f);
    add(a + "ln_x.bias", {C}, 0, 0.1f);
    const std::string f = p + "ffn.";
    add(f + "x_k", {1, 1, C}, 0.5f, 0.4f);
    linear(f + "key.weight", s.ffn, C);
    linear(f + "value.weight", C, s.ffn);
  }

 private:
  Checkpoint& ckpt_;
  std::mt19937_64 rng_;
};

}  // namespace

Checkpoint make_random_embedding_checkpoint(const ModelShape& s, uint64_t seed) {
  Checkpoint ckpt;
  ckpt.path = "random-embedding-L" + std::to_string(s.layers) + "-C" + std::to_string(s.channels);
  Builder b(ckpt, seed);
  b.add("rwkv.emb.weight", {s.vocab_rows, s.channels}, 0, 1);
  for (int l = 0; l < s.layers; ++l) b.block("rwkv.blocks." + std::to_string(l) + ".", s, l);
  b.add("rwkv.ln_out.weight", {s.channels}, 1, 0.1f);
  b.add("rwkv.ln_out.bias", {s.channels}, 0, 0.1f);
  for (const char* head : {"retr_head", "sts_head", "cls_head"}) {
    const std::string p = std::string("head.") + head + ".";
    b.linear(p + "fc1.weight", s.channels, s.channels);
    b.linear(p + "fc2.weight", s.channels, s.channels);
    b.add(p + "norm.weight", {s.channels}, 1, 0.1f);
    b.add(p + "norm.bias", {s.channels}, 0, 0.1f);
  }
  return ckpt;
}

Checkpoint make_random_reranker_checkpoint(const ModelShape& s, uint64_t seed) {
  Checkpoint ckpt;
  ckpt.path = "random-reranker-L" + std::to_string(s.layers) + "-C" + std::to_string(s.channels);
  Builder b(ckpt, seed);
  b.add("reranker.emb.weight", {1, s.channels}, 0, 1);
  for (int l = 0; l < s.layers; ++l) b.block("reranker.blocks." + std::to_string(l) + ".", s, l);
  b.add("reranker.ln_out.weight", {s.channels}, 1, 0.1f);
  b.add("reranker.ln_out.bias", {s.channels}, 0, 0.1f);
  b.linear("reranker.head.0.weight", s.channels, s.channels);
  b.add("reranker.head.0.bias", {s.channels}, 0, 0.1f);
  b.linear("reranker.head.2.weight", 1, s.channels);
  return ckpt;
}

}  // namespace rwkv::io
