#include "server/cli_tools.h"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/input_protocol.h"
#include "engine/io/checkpoint.h"
#include "engine/model/engine.h"
#include "engine/text/tokenizer.h"
#include "server/service/postprocessor.h"
#include "server/service/preprocessor.h"

namespace rwkv::cli {
namespace {

using nlohmann::json;

// Settings shared by the commands that run the model.
struct ModelOptions {
  std::string model;
  std::string device = "cpu";
  int threads = 0;
  model::EngineOptions engine;
};

void add_model_options(CLI::App& cmd, ModelOptions& o) {
  cmd.add_option("--model", o.model, "Embedding checkpoint (.pth or .safetensors)")->required();
  cmd.add_option("--device", o.device, "Compute device")->check(CLI::IsMember({"cpu"}));
  cmd.add_option("--threads", o.threads, "CPU threads (0: all cores)")->check(CLI::Range(0, 4096));
  cmd.add_option("--max-batch-tokens", o.engine.max_step_tokens, "Tokens per engine step")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--chunk-tokens", o.engine.chunk_tokens, "Longest piece of a sequence per step")
      ->check(CLI::PositiveNumber);
}

std::unique_ptr<model::Engine> make_engine(const ModelOptions& o,
                                           const std::string& reranker_path = "") {
  const io::Checkpoint model = io::load_checkpoint(o.model);
  std::optional<io::Checkpoint> reranker;
  if (!reranker_path.empty()) reranker = io::load_checkpoint(reranker_path);
  return std::make_unique<model::Engine>(kernels::make_cpu_backend(o.threads), model,
                                         reranker ? &*reranker : nullptr, o.engine);
}

// Reads stdin line by line; blank lines are skipped. A line that is not valid
// JSON stops the command with its line number.
template <typename F>
void for_each_json_line(F&& f) {
  std::string line;
  for (int number = 1; std::getline(std::cin, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json value = json::parse(line, nullptr, false);
    if (value.is_discarded())
      throw std::runtime_error("line " + std::to_string(number) + ": not valid JSON");
    f(value, number);
  }
}

std::string expect_string(const json& v, int line) {
  if (!v.is_string())
    throw std::runtime_error("line " + std::to_string(line) + ": expected a JSON string");
  return v.get<std::string>();
}

// A line's input: a text (through the input protocol, as the API does) or
// token ids used as given.
struct EmbedLine {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

EmbedLine parse_embed_line(const json& v, int line) {
  const std::string where = "line " + std::to_string(line);
  if (v.is_string()) return {v.get<std::string>(), {}};
  if (!v.is_array())
    throw std::runtime_error(where + ": expected a string or an array of token ids");
  EmbedLine out;
  for (size_t k = 0; k < v.size(); ++k) {
    const json& x = v[k];
    // Every id below 65536 is a row of the embedding table (as in the API).
    if (!x.is_number_integer() || x.get<int64_t>() < 0 ||
        x.get<int64_t>() >= text::Tokenizer::kVocabSize)
      throw std::runtime_error(where + ": token id at position " + std::to_string(k) +
                               " must be an integer in [0, 65535]");
    out.ids.push_back(x.get<int32_t>());
  }
  return out;
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("tokenize", "Print the token ids of each JSON string read from stdin");
  auto no_eos = std::make_shared<bool>(false);
  cmd->add_flag("--no-eos", *no_eos, "Do not append the EOS token (65535)");
  cmd->callback([no_eos] {
    for_each_json_line([&](const json& v, int line) {
      std::cout << json(text::Tokenizer::world().encode(expect_string(v, line), !*no_eos)).dump()
                << '\n';
    });
  });
}

void add_embed_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "embed", "Embed each JSON string (text) or array (token ids) read from stdin");
  auto o = std::make_shared<ModelOptions>();
  auto task = std::make_shared<std::string>();
  auto input_type = std::make_shared<std::string>();
  auto protocol = std::make_shared<std::string>("chunked");
  auto instruction = std::make_shared<std::string>();
  auto raw = std::make_shared<bool>(false);
  add_model_options(*cmd, *o);
  cmd->add_option("--input-type", *input_type,
                  "What the texts are for: head and instruction, as the API's input_type "
                  "(default search_document)");
  cmd->add_option("--task", *task, "Embedding head (the API's task; for texts: its input type)")
      ->check(CLI::IsMember({"retrieval", "sts", "classification"}));
  cmd->add_option("--eos-protocol", *protocol, "Where the EOS tokens of a text go")
      ->capture_default_str();
  CLI::Option* instruction_option = cmd->add_option(
      "--instruction", *instruction,
      "Instruction description for the texts, replacing the input type's (\"\": none)");
  cmd->add_flag("--raw", *raw, "Print the model output unnormalized");
  cmd->callback([o, task, input_type, protocol, instruction, instruction_option, raw] {
    // The request fields of /v1/embeddings, read by the same code.
    json fields = {{"eos_protocol", *protocol}};
    if (!input_type->empty()) fields["input_type"] = *input_type;
    if (instruction_option->count() > 0) fields["instruction"] = *instruction;
    api::TextOptions text = api::parse_text_options(fields, api::kAllInputTypes);
    if (!task->empty()) api::apply_task(text, *task);
    const api::InputType type = text.input_type.value_or(api::InputType::kSearchDocument);
    const server::service::Preprocessor preprocessor;
    std::vector<std::vector<int32_t>> inputs;
    for_each_json_line([&](const json& v, int line) {
      EmbedLine in = parse_embed_line(v, line);
      const std::string where = "line " + std::to_string(line);
      if (!in.text && text.instruction)
        throw std::runtime_error(where +
                                 ": --instruction applies to texts only; token ids are used "
                                 "as given");
      inputs.push_back(in.text ? preprocessor
                                     .embedding_text(*in.text, type, text, SIZE_MAX,
                                                     api::Truncate::kNone, where, "input")
                                     .ids
                               : std::move(in.ids));
    });
    auto engine = make_engine(*o);
    std::vector<model::Engine::Sequence> seqs;
    for (const auto& ids : inputs) seqs.push_back({ids});
    const model::EmbeddingHead head = server::service::head_of(type);
    auto results = engine->run(seqs, {model::embedding_output(head)});
    for (size_t i = 0; i < results.size(); ++i) {
      std::vector<float>& e = results[i].embeddings[static_cast<int>(head)];
      if (e.empty())
        throw std::runtime_error("input " + std::to_string(i + 1) +
                                 " has no EOS token (65535) to pool");
      if (!*raw) server::service::l2_normalize(e);
      std::cout << json(e).dump() << '\n';
    }
  });
}

void add_rerank_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "rerank", "Score each JSON string (document) read from stdin against --query");
  auto o = std::make_shared<ModelOptions>();
  auto reranker = std::make_shared<std::string>();
  auto query = std::make_shared<std::string>();
  auto mode = std::make_shared<std::string>("online");
  add_model_options(*cmd, *o);
  cmd->add_option("--reranker", *reranker, "Reranker checkpoint")->required();
  cmd->add_option("--query", *query, "The query")->required();
  cmd->add_option("--mode", *mode,
                  "online: one pass per pair; offline: cached document state + query")
      ->check(CLI::IsMember({"online", "offline"}));
  cmd->callback([o, reranker, query, mode] {
    std::vector<std::string> docs;
    for_each_json_line([&](const json& v, int line) { docs.push_back(expect_string(v, line)); });
    auto engine = make_engine(*o, *reranker);
    const server::service::Preprocessor preprocessor;  // the server's prompts, no token limit
    const model::Outputs wanted{model::Output::kRerankLogit};
    std::vector<std::vector<int32_t>> ids;
    std::vector<model::Engine::Result> results;
    if (*mode == "online") {
      for (size_t i = 0; i < docs.size(); ++i)
        ids.push_back(preprocessor.rerank_pair(docs[i], *query, std::nullopt,
                                               "line " + std::to_string(i + 1)));
      std::vector<model::Engine::Sequence> seqs(ids.begin(), ids.end());
      results = engine->run(seqs, wanted);
    } else {
      for (size_t i = 0; i < docs.size(); ++i)
        ids.push_back(preprocessor.state_document(docs[i], "line " + std::to_string(i + 1)));
      std::vector<model::Engine::Sequence> doc_seqs(ids.begin(), ids.end());
      const auto doc_states = engine->run(doc_seqs, {model::Output::kFinalState});
      const std::vector<int32_t> query_ids = preprocessor.rerank_query(*query);
      std::vector<model::Engine::Sequence> seqs;
      for (const auto& d : doc_states) seqs.push_back({query_ids, &d.state});
      results = engine->run(seqs, wanted);
    }
    for (size_t i = 0; i < results.size(); ++i) {
      const float logit = results[i].logit;
      std::cout << json{{"index", i},
                        {"score", server::service::rerank_score(logit)},
                        {"logit", logit}}
                       .dump()
                << '\n';
    }
  });
}

}  // namespace rwkv::cli
