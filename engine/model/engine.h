// The engine: model weights, a pool of per-sequence state slots, and steps
// that run packed variable-length batches on one backend. Not thread-safe:
// one thread (the scheduler's loop, or a command-line tool) drives it.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "engine/io/checkpoint.h"
#include "engine/model/model.h"
#include "engine/model/weights.h"
#include "engine/states/sequence_state.h"
#include "kernels/backend.h"

namespace rwkv::model {

struct EngineOptions {
  int max_slots = 64;          // sequences in flight at once
  int max_step_tokens = 4096;  // tokens in one packed step
  int chunk_tokens = 1024;     // longest piece of one sequence in a step
};

// Token ids the model cannot take (outside its embedding table): a fault of
// the input, unlike the engine's other failures.
class InvalidTokens : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// What a finished sequence gives back, each only when asked for: the
// embedding of a head (its pooled EOS rows through the head), the final
// state, the reranker's logit over that state.
enum class Output : uint8_t {
  kRetrievalEmbedding,
  kStsEmbedding,
  kClassificationEmbedding,
  kFinalState,
  kRerankLogit
};
Output embedding_output(EmbeddingHead head);

// A set of outputs; empty unless built from some: Outputs{Output::kFinalState}.
class Outputs {
 public:
  Outputs() = default;
  Outputs(std::initializer_list<Output> outputs) {
    for (Output o : outputs) bits_ |= bit(o);
  }
  bool has(Output o) const { return bits_ & bit(o); }
  bool operator==(const Outputs&) const = default;

 private:
  static uint8_t bit(Output o) { return uint8_t(1u << unsigned(o)); }
  uint8_t bits_ = 0;
};

class Engine {
 public:
  Engine(std::unique_ptr<kernels::Backend> backend, const io::Checkpoint& embedding,
         const io::Checkpoint* reranker, EngineOptions options = {});

  const EmbeddingWeights& model() const { return model_; }
  bool has_reranker() const { return reranker_.has_value(); }
  const EngineOptions& options() const { return options_; }
  kernels::Backend& backend() { return *backend_; }
  int channels() const { return model_.stack.channels; }
  // The dimensions of every state this engine reads and loads.
  states::StateShape state_shape() const;

  // ---- Slot-level API (the scheduler drives this) ----
  int free_slot_count() const { return static_cast<int>(free_slots_.size()); }
  int acquire_slot();  // a zeroed slot; throws when none is free
  void release_slot(int slot);
  void load_state(int slot, const states::SequenceState& state);
  states::SequenceState read_state(int slot) const;
  // Number of pooled (EOS) positions seen so far in the slot.
  int pooled_count(int slot) const;

  struct Chunk {
    int slot;
    std::span<const int32_t> tokens;
  };
  // One packed forward step over the chunks (each continues its slot's sequence).
  void step(std::span<const Chunk> chunks);
  // The head applied to each slot's mean-pooled EOS rows, unnormalized: [n][C].
  // A slot that pooled nothing gives an empty vector.
  std::vector<std::vector<float>> embeddings(std::span<const int> slots, EmbeddingHead head);
  // Reranker logits from each slot's current WKV state.
  std::vector<float> rerank_logits(std::span<const int> slots);

  // ---- Whole sequences, run to completion (command-line tools and tests) ----
  struct Sequence {
    // A constructor, not an aggregate: `vector<Sequence>(token_lists...)`
    // then builds with clang too (no parenthesized aggregate init before 16).
    Sequence(std::span<const int32_t> tokens, const states::SequenceState* initial = nullptr)
        : tokens(tokens), initial(initial) {}
    std::span<const int32_t> tokens;
    const states::SequenceState* initial = nullptr;  // zero state when null
  };
  struct Result {
    std::array<std::vector<float>, 3> embeddings;  // raw, by EmbeddingHead, for those asked for
    states::SequenceState state;
    float logit = 0;
    int pooled_count = 0;
  };
  // Packs the sequences into steps under the options' limits, chunking long
  // ones; each result is independent of how the sequences were packed.
  std::vector<Result> run(std::span<const Sequence> sequences, Outputs wanted);
  // Reads what is wanted from finished slots into results[i] for slots[i].
  void collect(std::span<const int> slots, std::span<Result* const> results, Outputs wanted);
  // Throws InvalidTokens unless every id indexes the embedding table.
  void check_tokens(std::span<const int32_t> tokens) const;

 private:
  void reserve_for_limits();
  kernels::PackedBatch upload_batch(const std::vector<int32_t>& tokens,
                                    const std::vector<int32_t>& seq_start,
                                    const std::vector<int32_t>& slots);

  EngineOptions options_;
  std::unique_ptr<kernels::Backend> backend_;
  EmbeddingWeights model_;
  std::optional<RerankerWeights> reranker_;
  SlotStates states_;
  std::optional<SlotStates> reranker_states_;
  Workspace workspace_;
  std::vector<int> free_slots_;
  DeviceInts batch_tokens_, batch_seq_start_, batch_slots_;
  DeviceArray head_in_, head_out_, logits_;
};

}  // namespace rwkv::model
