#include "engine/model/engine.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace rwkv::model {
namespace {

// Keys of the work the backend may record and replay (Backend::run_recorded):
// which function ran, and the sizes that shape its launches. Everything else
// a step depends on (token ids, offsets, slots) is read from device memory.
enum class Recorded : uint64_t { kEmbeddingStep = 1, kRerankLogits = 2 };
uint64_t recorded_key(Recorded what, int num_tokens, int num_seqs) {
  return uint64_t(what) << 56 | uint64_t(num_tokens) << 28 | uint64_t(num_seqs);
}

}  // namespace

Engine::Engine(std::unique_ptr<kernels::Backend> backend, const io::Checkpoint& embedding,
               const io::Checkpoint* reranker, EngineOptions options)
    : options_(options),
      backend_(std::move(backend)),
      model_(load_embedding_weights(embedding, *backend_)),
      states_(*backend_, options.max_slots, model_.stack, /*pooling=*/true),
      workspace_(*backend_) {
  if (options.max_slots < 1 || options.max_step_tokens < 1 || options.chunk_tokens < 1)
    throw std::invalid_argument("engine limits must be positive");
  if (reranker) {
    reranker_.emplace(load_reranker_weights(*reranker, model_, *backend_));
    reranker_states_.emplace(*backend_, options.max_slots, reranker_->stack, /*pooling=*/false);
  }
  for (int s = options.max_slots - 1; s >= 0; --s) free_slots_.push_back(s);
  reserve_for_limits();
}

states::StateShape Engine::state_shape() const {
  return {uint32_t(model_.stack.layers), uint32_t(model_.stack.heads),
          uint32_t(model_.stack.channels)};
}

// Everything a step within the limits needs, allocated now: steps then never
// allocate (no cudaMalloc while serving), and recorded steps find their
// memory where it was.
void Engine::reserve_for_limits() {
  const int slots = options_.max_slots;
  const int rows = std::max(options_.max_step_tokens, slots);
  reserve_workspace(*backend_, workspace_, model_.stack, rows);
  if (reranker_) reserve_workspace(*backend_, workspace_, reranker_->stack, slots);
  batch_tokens_ = DeviceInts(*backend_, rows);
  batch_seq_start_ = DeviceInts(*backend_, slots + 1);
  batch_slots_ = DeviceInts(*backend_, slots);
  head_in_ = DeviceArray(*backend_, size_t(slots) * channels());
  head_out_ = DeviceArray(*backend_, size_t(slots) * channels());
  logits_ = DeviceArray(*backend_, slots);
}

int Engine::acquire_slot() {
  if (free_slots_.empty()) throw std::runtime_error("no free state slot");
  const int slot = free_slots_.back();
  free_slots_.pop_back();
  states_.clear(slot);
  return slot;
}

void Engine::release_slot(int slot) { free_slots_.push_back(slot); }

void Engine::load_state(int slot, const states::SequenceState& state) {
  if (int64_t(state.shift.size()) != states_.shift_size() ||
      int64_t(state.wkv.size()) != states_.wkv_size())
    throw std::invalid_argument("state does not match the model's shape");
  backend_->to_device(states_.shift_of(slot), state.shift.data(),
                      state.shift.size() * sizeof(float));
  backend_->to_device(states_.wkv_of(slot), state.wkv.data(), state.wkv.size() * sizeof(float));
}

states::SequenceState Engine::read_state(int slot) const {
  states::SequenceState s;
  s.shift.resize(states_.shift_size());
  s.wkv.resize(states_.wkv_size());
  backend_->to_host(s.shift.data(), states_.shift_of(slot), s.shift.size() * sizeof(float));
  backend_->to_host(s.wkv.data(), states_.wkv_of(slot), s.wkv.size() * sizeof(float));
  return s;
}

int Engine::pooled_count(int slot) const {
  float count = 0;
  backend_->to_host(&count, states_.pooled_of(slot) + channels(), sizeof(float));
  return static_cast<int>(count);
}

kernels::PackedBatch Engine::upload_batch(const std::vector<int32_t>& tokens,
                                          const std::vector<int32_t>& seq_start,
                                          const std::vector<int32_t>& slots) {
  auto upload = [&](DeviceInts& buf, const std::vector<int32_t>& host) {
    if (buf.size() < host.size()) buf = DeviceInts(*backend_, host.size());  // beyond the limits
    backend_->to_device(buf.get(), host.data(), host.size() * sizeof(int32_t));
  };
  upload(batch_tokens_, tokens);
  upload(batch_seq_start_, seq_start);
  upload(batch_slots_, slots);
  kernels::PackedBatch batch;
  batch.num_tokens = static_cast<int>(tokens.size());
  batch.num_seqs = static_cast<int>(slots.size());
  batch.tokens = batch_tokens_.get();
  batch.seq_start = batch_seq_start_.get();
  batch.slot = batch_slots_.get();
  return batch;
}

void Engine::check_tokens(std::span<const int32_t> tokens) const {
  for (int32_t id : tokens) {
    if (id < 0 || id >= model_.vocab_rows)
      throw InvalidTokens("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                          std::to_string(model_.vocab_rows - 1) + ")");
  }
}

void Engine::step(std::span<const Chunk> chunks) {
  std::vector<int32_t> tokens, seq_start{0}, slots;
  for (const Chunk& c : chunks) {
    check_tokens(c.tokens);
    tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
    seq_start.push_back(static_cast<int32_t>(tokens.size()));
    slots.push_back(c.slot);
  }
  if (tokens.empty()) return;
  reserve_workspace(*backend_, workspace_, model_.stack, int(tokens.size()));  // beyond the limits
  const kernels::PackedBatch batch = upload_batch(tokens, seq_start, slots);
  backend_->run_recorded(recorded_key(Recorded::kEmbeddingStep, batch.num_tokens, batch.num_seqs),
                         [&] { embedding_step(*backend_, model_, batch, states_, workspace_); });
}

std::vector<std::vector<float>> Engine::embeddings(std::span<const int> slots, EmbeddingHead head) {
  const int C = channels(), n = static_cast<int>(slots.size());
  std::vector<float> pooled(size_t(n) * C);
  std::vector<bool> empty(n);
  std::vector<float> sum(C + 1);
  for (int i = 0; i < n; ++i) {
    backend_->to_host(sum.data(), states_.pooled_of(slots[i]), sum.size() * sizeof(float));
    empty[i] = sum[C] == 0;
    for (int c = 0; c < C; ++c) pooled[size_t(i) * C + c] = empty[i] ? 0 : sum[c] / sum[C];
  }
  if (head_in_.size() < pooled.size()) {  // a slot listed twice
    head_in_ = DeviceArray(*backend_, pooled.size());
    head_out_ = DeviceArray(*backend_, pooled.size());
    reserve_workspace(*backend_, workspace_, model_.stack, n);
  }
  backend_->to_device(head_in_.get(), pooled.data(), pooled.size() * sizeof(float));
  apply_head(*backend_, model_.embedding_heads[static_cast<int>(head)], n, C, head_in_.get(),
             workspace_, head_out_.get());
  backend_->to_host(pooled.data(), head_out_.get(), pooled.size() * sizeof(float));

  std::vector<std::vector<float>> out(n);
  for (int i = 0; i < n; ++i)
    if (!empty[i])
      out[i].assign(pooled.begin() + int64_t(i) * C, pooled.begin() + int64_t(i + 1) * C);
  return out;
}

std::vector<float> Engine::rerank_logits(std::span<const int> slots) {
  if (!reranker_) throw std::logic_error("no reranker loaded");
  SlotStates& rs = *reranker_states_;
  const int64_t head_floats = int64_t(model_.stack.heads) * common::kHeadSize * common::kHeadSize;
  std::vector<float> logits(slots.size());
  for (size_t begin = 0; begin < slots.size(); begin += rs.slots()) {
    const int n = static_cast<int>(std::min<size_t>(rs.slots(), slots.size() - begin));
    std::vector<int32_t> tokens(n, 0), seq_start(n + 1), rslots(n);
    for (int i = 0; i < n; ++i) {
      seq_start[i + 1] = i + 1;
      rslots[i] = i;
      rs.clear(i);
      // Block b reads the embedding model's WKV state of layer layer_idx[b].
      for (size_t b = 0; b < reranker_->layer_idx.size(); ++b)
        backend_->copy(rs.wkv_of(i) + b * head_floats,
                       states_.wkv_of(slots[begin + i]) + reranker_->layer_idx[b] * head_floats,
                       head_floats * sizeof(float));
    }
    const kernels::PackedBatch batch = upload_batch(tokens, seq_start, rslots);
    backend_->run_recorded(recorded_key(Recorded::kRerankLogits, n, n), [&] {
      reranker_logits(*backend_, *reranker_, batch, rs, workspace_, logits_.get());
    });
    backend_->to_host(logits.data() + begin, logits_.get(), n * sizeof(float));
  }
  return logits;
}

Output embedding_output(EmbeddingHead head) {
  return static_cast<Output>(static_cast<int>(Output::kRetrievalEmbedding) +
                             static_cast<int>(head));
}

void Engine::collect(std::span<const int> slots, std::span<Result* const> results, Outputs wanted) {
  for (int h = 0; h < 3; ++h) {
    const auto head = static_cast<EmbeddingHead>(h);
    if (!wanted.has(embedding_output(head))) continue;
    auto emb = embeddings(slots, head);
    for (size_t i = 0; i < slots.size(); ++i) results[i]->embeddings[h] = std::move(emb[i]);
  }
  if (wanted.has(Output::kRerankLogit)) {
    const std::vector<float> logits = rerank_logits(slots);
    for (size_t i = 0; i < slots.size(); ++i) results[i]->logit = logits[i];
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    if (wanted.has(Output::kFinalState)) results[i]->state = read_state(slots[i]);
    results[i]->pooled_count = pooled_count(slots[i]);
  }
}

std::vector<Engine::Result> Engine::run(std::span<const Sequence> sequences, Outputs wanted) {
  struct Active {
    size_t index;
    int slot;
    size_t pos = 0;
  };
  std::vector<Result> results(sequences.size());
  std::vector<Active> active;
  size_t next = 0;
  while (next < sequences.size() || !active.empty()) {
    while (next < sequences.size() && !free_slots_.empty()) {
      const int slot = acquire_slot();
      if (sequences[next].initial) load_state(slot, *sequences[next].initial);
      active.push_back({next++, slot});
    }
    std::vector<Chunk> chunks;
    size_t budget = options_.max_step_tokens;
    for (Active& a : active) {
      const auto& tokens = sequences[a.index].tokens;
      const size_t take = std::min({tokens.size() - a.pos, size_t(options_.chunk_tokens), budget});
      if (take == 0) continue;
      chunks.push_back({a.slot, tokens.subspan(a.pos, take)});
      a.pos += take;
      budget -= take;
    }
    step(chunks);

    std::vector<int> done_slots;
    std::vector<Result*> done_results;
    std::erase_if(active, [&](const Active& a) {
      if (a.pos < sequences[a.index].tokens.size()) return false;
      done_slots.push_back(a.slot);
      done_results.push_back(&results[a.index]);
      return true;
    });
    if (!done_slots.empty()) collect(done_slots, done_results, wanted);
    for (int slot : done_slots) release_slot(slot);
  }
  return results;
}

}  // namespace rwkv::model
