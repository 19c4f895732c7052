// Offline vs online rerank throughput (pairs/s) on a random model of the
// EmbeddingRWKV 0.1B shape, at engine level, for documents of several
// lengths and 64-token queries.
//
//   online:  one sequence per pair, instruction + document + query + EOS, from zero
//   offline: the query + EOS on a copy of the document's cached state; the
//            state is first encoded as a blob (docs/state-format.md) and
//            decoded once per pair, as the server does for every {"state_id"}
//            document, so the timing includes that work
//
// Offline requests have --pairs pairs (default 100). Online pairs cost the
// document's length every time, so only --online-pairs of them are run
// (default 2, as one request) and pairs/s is extrapolated from their time:
// the recurrence costs the same per token whatever the batch, so this is
// the per-pair cost of a 100-pair request to within batching effects (the
// forward pass runs at the same tokens/s from 2 to 32 sequences per step).
// Every offline pair reuses one document state (the cost of a pair does not
// depend on which state it starts from).
//
// The tokens/s columns show whether the two sides ran at the same speed (on
// a shared machine they may not); --reps N keeps the best of N runs of each.
//
//   rerank_offline_bench [--quick] [--threads N] [--pairs N] [--online-pairs N]
//                        [--query-tokens N] [--lengths 512,1024,2048,4096] [--reps N]
//                        [--dtype float32|bfloat16|int8]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/cpu_description.h"
#include "engine/io/random_model.h"
#include "engine/model/engine.h"
#include "engine/states/state_blob.h"
#include "engine/text/prompt_templates.h"
#include "engine/text/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<int32_t> concat(std::initializer_list<const std::vector<int32_t>*> parts) {
  std::vector<int32_t> out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace rwkv;
  int threads = 0, pairs = 100, online_pairs = 2, query_len = 64, reps = 1;
  std::vector<int> lengths = {512, 1024, 2048, 4096};
  kernels::MatmulDtype dtype = kernels::MatmulDtype::kFloat32;
  for (int i = 1; i < argc; ++i) {
    const auto arg = [&](const char* name) { return !std::strcmp(argv[i], name) && i + 1 < argc; };
    if (!std::strcmp(argv[i], "--quick")) {
      pairs = 16;
      online_pairs = 1;
      lengths = {512, 1024};
    } else if (arg("--threads")) {
      threads = std::atoi(argv[++i]);
    } else if (arg("--pairs")) {
      pairs = std::atoi(argv[++i]);
    } else if (arg("--online-pairs")) {
      online_pairs = std::atoi(argv[++i]);
    } else if (arg("--reps")) {
      reps = std::atoi(argv[++i]);
    } else if (arg("--query-tokens")) {
      query_len = std::atoi(argv[++i]);
    } else if (arg("--dtype")) {
      const std::string name = argv[++i];
      if (name == "bfloat16") {
        dtype = kernels::MatmulDtype::kBFloat16;
      } else if (name == "int8") {
        dtype = kernels::MatmulDtype::kInt8;
      } else if (name != "float32") {
        std::fprintf(stderr, "--dtype: float32, bfloat16 or int8\n");
        return 2;
      }
    } else if (arg("--lengths")) {
      lengths.clear();
      std::stringstream ss(argv[++i]);
      for (std::string item; std::getline(ss, item, ',');)
        lengths.push_back(std::atoi(item.c_str()));
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (pairs < 1 || online_pairs < 1 || query_len < 1 || reps < 1 || lengths.empty()) {
    std::fprintf(stderr, "counts must be positive\n");
    return 2;
  }

  const io::ModelShape shape = io::ModelShape::tiny_01b();
  const io::Checkpoint model = io::make_random_embedding_checkpoint(shape, 1);
  const io::Checkpoint reranker = io::make_random_reranker_checkpoint(shape, 2);
  model::Engine engine(kernels::make_cpu_backend(threads, dtype), model,
                       &reranker);  // default options, as the server
  const io::ModelFingerprint fingerprint = io::model_fingerprint(model);
  const states::StateShape state_shape = engine.state_shape();
  const auto& opt = engine.options();
  std::printf("cpu: %s\n", bench::cpu_description().c_str());
  std::printf(
      "model: random 0.1B shape (L=%d C=%d H=%d); engine: %d slots, %d tokens/step, chunks of "
      "%d; backend %s\n",
      shape.layers, shape.channels, shape.channels / 64, opt.max_slots, opt.max_step_tokens,
      opt.chunk_tokens, engine.backend().name().c_str());
  std::printf(
      "offline: %d pairs per request; online: %d pair(s) timed, extrapolated per pair; query %d "
      "tokens\n\n",
      pairs, online_pairs, query_len);

  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(1, 65529);
  const auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = token(rng);
    return t;
  };
  const text::Tokenizer& tok = text::Tokenizer::world();
  const std::vector<int32_t> doc_head =
      tok.encode(std::string(text::kRerankInstruction) + "Document: ", false);
  const std::vector<int32_t> doc_tail = tok.encode("\n", false);
  const std::vector<int32_t> query_head = tok.encode(text::rerank_query_text(""), false);
  const std::vector<int32_t> eos = {text::Tokenizer::kEos};
  const std::vector<int32_t> query_body = random_tokens(query_len);
  const std::vector<int32_t> query = concat({&query_head, &query_body, &eos});

  const model::Outputs state_only{model::Output::kFinalState};
  const model::Outputs score{model::Output::kRerankLogit};

  {  // warm-up: workspaces, threads
    const model::Engine::Sequence s{query};
    engine.run(std::span(&s, 1), score);
  }

  std::printf("%6s %8s %9s %9s %9s %9s %9s %8s %9s %10s %10s\n", "doc", "online", "online",
              "online", "offline", "offline", "offline", "speedup", "doc state", "state B",
              "state B");
  std::printf("%6s %8s %9s %9s %9s %9s %9s %8s %9s %10s %10s\n", "tokens", "tok/pair", "pairs/s",
              "tok/s", "tok/pair", "pairs/s", "tok/s", "", "s (once)", "float32", "float16");
  for (const int length : lengths) {
    const std::vector<int32_t> body = random_tokens(length);
    const std::vector<int32_t> document = concat({&doc_head, &body, &doc_tail});
    const std::vector<int32_t> online = concat({&document, &query});

    // The document's state, once (what POST /v1/states computes), as a blob.
    auto t0 = Clock::now();
    const model::Engine::Sequence doc_seq{document};
    const states::SequenceState state = engine.run(std::span(&doc_seq, 1), state_only)[0].state;
    const double state_seconds = seconds_since(t0);
    const std::string blob = states::encode_state(state, fingerprint, state_shape,
                                                  states::StateDtype::kFloat32, document.size());
    const size_t half_bytes = states::state_blob_size(state_shape, states::StateDtype::kFloat16);

    // Offline: decode per pair (the server decodes every state document), then the queries.
    double offline_seconds = 1e30, online_seconds = 1e30;
    std::vector<model::Engine::Result> offline_results, online_results;
    for (int rep = 0; rep < reps; ++rep) {
      t0 = Clock::now();
      std::vector<states::SequenceState> states;
      states.reserve(pairs);
      for (int i = 0; i < pairs; ++i)
        states.push_back(states::decode_state(blob, fingerprint, state_shape));
      std::vector<model::Engine::Sequence> queries;
      for (const auto& s : states) queries.push_back({query, &s});
      offline_results = engine.run(queries, score);
      offline_seconds = std::min(offline_seconds, seconds_since(t0));

      // Online: whole pairs.
      t0 = Clock::now();
      std::vector<model::Engine::Sequence> full(online_pairs, model::Engine::Sequence{online});
      online_results = engine.run(full, score);
      online_seconds = std::min(online_seconds, seconds_since(t0));
    }

    // Same pair, same score, either way (a sanity check of the setup).
    const float diff = std::abs(offline_results[0].logit - online_results[0].logit);
    if (!(diff < 1e-3f))
      std::printf("WARNING: offline and online logits differ by %g\n", double(diff));

    const double online_rate = online_pairs / online_seconds,
                 offline_rate = pairs / offline_seconds;
    std::printf("%6d %8zu %9.3f %9.0f %9zu %9.2f %9.0f %7.1fx %9.2f %10zu %10zu\n", length,
                online.size(), online_rate, online_rate * online.size(), query.size(), offline_rate,
                offline_rate * query.size(), offline_rate / online_rate, state_seconds, blob.size(),
                half_bytes);
    std::fflush(stdout);
  }
  return 0;
}
