#include "server/serve_command.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>

#include "engine/io/random_model.h"
#include "kernels/cpu/gemm.h"
#include "server/http_server.h"
#include "server/model_download.h"
#ifdef RWKV_EMB_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace rwkv::server {
namespace {

// Every option can come from the config file, an RWKV_EMB_* variable or a flag
// (flags win over variables, variables over the file).
void add_options(CLI::App& cmd, ServerOptions& o) {
  // RWKV_EMB_ + the long flag name in upper case: --max-batch-tokens -> RWKV_EMB_MAX_BATCH_TOKENS.
  auto env = [](CLI::Option* opt) {
    std::string name = opt->get_single_name();
    std::transform(name.begin(), name.end(), name.begin(),
                   [](char c) { return c == '-' ? '_' : static_cast<char>(std::toupper(c)); });
    opt->envname("RWKV_EMB_" + name);
  };
  env(cmd.add_option("--model", o.model_path,
                     "Embedding checkpoint (.pth/.safetensors), or tiny|base|large: the released "
                     "one, downloaded once into --model-cache-dir; unset: a random demo model"));
  env(cmd.add_option("--reranker", o.reranker_path,
                     "Reranker checkpoint, or tiny|base|large (default with --model "
                     "tiny|base|large: its paired reranker)"));
  o.model_cache_dir = default_model_cache_dir();
  env(cmd.add_option("--model-cache-dir", o.model_cache_dir,
                     "Where released checkpoints are kept (default: $XDG_CACHE_HOME or "
                     "~/.cache, then rwkv-emb-server)")
          ->capture_default_str());
  o.hf_endpoint = default_hf_endpoint();
  env(cmd.add_option("--hf-endpoint", o.hf_endpoint,
                     "HuggingFace endpoint released checkpoints come from (default: $HF_ENDPOINT "
                     "or https://huggingface.co); $HF_TOKEN is sent to it")
          ->capture_default_str());
  env(cmd.add_option("--demo-shape", o.demo_shape,
                     "Shape of the random model served without --model (0.1b: for benchmarks)")
          ->capture_default_str()
          ->check(CLI::IsMember({"small", "0.1b"})));
  env(cmd.add_option("--served-model-name", o.served_model_names,
                     "Model name(s) clients may send; the first is reported")
          ->delimiter(','));
  env(cmd.add_option("--host", o.host, "Address to listen on")->capture_default_str());
  env(cmd.add_option("--port", o.port, "Port")->capture_default_str()->check(CLI::Range(1, 65535)));
  env(cmd.add_option("--device", o.device, "cpu (cuda builds: cuda[:N])")->capture_default_str());
  env(cmd.add_option("--dtype", o.dtype,
                     "Weights and matrix-product inputs (default: float32 on cpu, float16 on "
                     "cuda). auto: the fastest that keeps embeddings within cosine 0.9999 and "
                     "rerank logits within 0.02 of float32 (cpu: bfloat16 with AVX512-BF16, "
                     "else float32; cuda: float16). cpu: bfloat16 needs AVX512-BF16, int8 "
                     "(opt-in: less accurate) VNNI. State and accumulation stay float32")
          ->check(CLI::IsMember({"auto", "float32", "float16", "bfloat16", "int8"})));
  env(cmd.add_flag("--cuda-graphs", o.cuda_graphs,
                   "cuda: replay steps of a repeated shape as CUDA graphs")
          ->capture_default_str());
  env(cmd.add_option("--wkv-chunked-min-tokens", o.wkv_chunked_min_tokens,
                     "cuda: sequences of at least this many tokens in a step take the chunked "
                     "WKV form (0: never)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber));
  env(cmd.add_option("--threads", o.threads, "CPU compute threads (0: all cores)")
          ->capture_default_str());
  env(cmd.add_option("--max-batch-tokens", o.engine.max_step_tokens, "Tokens per engine step")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  env(cmd.add_option("--max-batch-seqs", o.engine.max_slots, "Sequences in flight at once")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  env(cmd.add_option("--chunk-tokens", o.engine.chunk_tokens,
                     "Longest piece of a sequence per step")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  env(cmd.add_option("--max-queued-requests", o.scheduler.max_queued_requests,
                     "Accepted requests not yet finished; beyond: 429")
          ->capture_default_str());
  env(cmd.add_option("--max-queued-tokens", o.scheduler.max_queued_tokens,
                     "Tokens waiting; beyond: 429")
          ->capture_default_str());
  env(cmd.add_option("--max-input-tokens", o.max_input_tokens,
                     "Longest input: a text's own tokens (before the instruction and the EOS "
                     "tokens of --eos-protocol), or a token-id input's ids; longer ones are "
                     "refused (400) unless the request asks to truncate")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  env(cmd.add_option("--eos-protocol", o.eos_protocol,
                     "Text embeddings: chunked = EOS every 512 tokens of a 2048 context, short "
                     "texts repeated 4 times (as the model was trained and evaluated); single = "
                     "text + one EOS. Requests may override it (eos_protocol)")
          ->capture_default_str()
          ->check(CLI::IsMember({"chunked", "single"})));
  for (const api::InputType type : api::kAllInputTypes) {
    std::string name(api::input_type_name(type));
    std::replace(name.begin(), name.end(), '_', '-');
    std::string& description = o.instructions[static_cast<size_t>(type)];
    description = std::string(InputPreprocessor::default_description(type));
    env(cmd.add_option("--instruction-" + name, description,
                       "Instruction description of " + std::string(api::input_type_name(type)) +
                           " texts (\"Instruct: {description}\\nQuery: {text}\"; empty: the "
                           "text as it is); requests may override it (instruction)")
            ->capture_default_str());
  }
  env(cmd.add_option("--input-type-model", o.input_type_models,
                     "NAME=INPUT_TYPE: a model name clients may send that implies that input "
                     "type, for clients that can only choose a model (default: "
                     "<model>-query=search_query; none: no such names)")
          ->delimiter(','));
  env(cmd.add_option("--max-inputs", o.max_inputs, "Texts or documents per request")
          ->capture_default_str());
  env(cmd.add_option("--max-body-bytes", o.max_body_bytes, "Largest request body; beyond: 413")
          ->capture_default_str());
  env(cmd.add_option("--http-threads", o.http_threads, "HTTP worker threads")
          ->capture_default_str());
  env(cmd.add_option("--read-timeout", o.read_timeout_seconds,
                     "Seconds a client has to send a whole request (a connection's first: from its "
                     "accept), plus 1 s per 64 KiB received; beyond: 408 and closed")
          ->capture_default_str());
  env(cmd.add_option("--heartbeat-seconds", o.heartbeat_seconds,
                     "For proxies that cut idle connections: a request still computing after "
                     "this long is answered 200 at once and sent a space every this many "
                     "seconds until its JSON (a later failure only in the body); 0: off, every "
                     "answer waits for its real status")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber));
  env(cmd.add_option("--api-key", o.api_keys, "Accepted Bearer key(s); none: no authentication")
          ->delimiter(','));
  env(cmd.add_option("--log-format", o.log_format, "Access log format")
          ->capture_default_str()
          ->check(CLI::IsMember({"text", "json"})));
  env(cmd.add_option("--state-store", o.states.kind,
                     "Where /v1/states keeps cached document states")
          ->capture_default_str()
          ->check(CLI::IsMember({"memory", "disk", "redis"})));
  env(cmd.add_option("--state-dir", o.states.dir,
                     "Folder of the disk state store (created with the first state)")
          ->capture_default_str());
  env(cmd.add_option("--state-max-bytes", o.states.max_bytes,
                     "State store budget in bytes. memory: least recently used states are evicted "
                     "beyond it "
                     "(0: 1 GiB); disk: new states are refused (507) beyond it (0: no limit)")
          ->capture_default_str());
  env(cmd.add_option("--redis-url", o.states.redis_url,
                     "Redis of --state-store redis: redis://[[user]:password@]host[:port][/db]")
          ->capture_default_str());
  env(cmd.add_option("--redis-key-prefix", o.states.redis_prefix,
                     "Prefix of the Redis keys of states")
          ->capture_default_str());
  env(cmd.add_option("--state-dtype", o.state_dtype,
                     "How new states are stored; float16 and bfloat16 take half the bytes, int8 "
                     "(a scale per row) about a quarter")
          ->capture_default_str()
          ->check(CLI::IsMember({"float32", "float16", "bfloat16", "int8"})));
  env(cmd.add_option("--state-cache-bytes", o.state_cache_bytes,
                     "Budget of decoded states kept in memory in front of the state store, reused "
                     "by later reranks (least recently used dropped; 0: no cache). Default: 1/16 "
                     "of the machine's memory")
          ->capture_default_str());
}

// Sets, from the TOML file, every option that neither a flag nor an
// environment variable gave (so flags > variables > file).
void apply_config_file(CLI::App& cmd, const std::string& path) {
  for (const CLI::ConfigItem& item : CLI::ConfigTOML().from_file(path)) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    CLI::Option* opt = cmd.get_option_no_throw("--" + item.name);
    if (opt == nullptr || item.name == "config")
      throw std::runtime_error(path + ": unknown option '" + item.name + "'");
    if (opt->count() > 0) continue;
    opt->add_result(item.inputs);
    opt->run_callback();
  }
}

// The dtype --dtype means on o.device. Unset: float32 on the CPU (the
// reference's accuracy) and float16 on CUDA, as before auto existed. auto:
// the fastest within the half-precision bounds, which int8 misses
// (bench/README.md), so bfloat16 where the CPU has AVX512-BF16.
std::string resolve_dtype(const ServerOptions& o) {
  const bool cpu = o.device == "cpu";
  if (o.dtype.empty()) return cpu ? "float32" : "float16";
  if (o.dtype == "auto")
    return !cpu ? "float16" : kernels::cpu::has_bf16() ? "bfloat16" : "float32";
  return o.dtype;
}

// --device cpu | cuda | cuda:N, with o.dtype resolved.
std::unique_ptr<kernels::Backend> make_backend(const ServerOptions& o) {
  if (o.device == "cpu") {
    if (o.dtype == "float16")
      throw std::runtime_error(
          "--dtype float16 needs --device cuda: the CPU backend computes in "
          "float32, bfloat16 or int8");
    try {
      return kernels::make_cpu_backend(o.threads,
                                       o.dtype == "bfloat16" ? kernels::MatmulDtype::kBFloat16
                                       : o.dtype == "int8"   ? kernels::MatmulDtype::kInt8
                                                             : kernels::MatmulDtype::kFloat32);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error("--dtype " + o.dtype + ": " + e.what());
    }
  }
  if (o.device == "cuda" || o.device.starts_with("cuda:")) {
#ifdef RWKV_EMB_WITH_CUDA
    int index = 0;
    if (o.device != "cuda") {
      const std::string n = o.device.substr(5);
      if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos)
        throw std::runtime_error("--device '" + o.device + "': expected cuda or cuda:N");
      index = std::stoi(n);
    }
    const int count = kernels::cuda_device_count();
    if (count == 0)
      throw std::runtime_error(
          "--device " + o.device +
          ": no CUDA device found (no NVIDIA driver or no GPU); use --device cpu");
    if (index >= count)
      throw std::runtime_error("--device " + o.device + ": only " + std::to_string(count) +
                               " CUDA device(s) (cuda:0.." + std::to_string(count - 1) + ")");
    if (o.dtype == "int8")
      throw std::runtime_error(
          "--dtype int8 needs --device cpu: CUDA computes in float32, "
          "float16 or bfloat16");
    kernels::CudaOptions cuda;
    cuda.dtype = o.dtype == "float32"    ? kernels::MatmulDtype::kFloat32
                 : o.dtype == "bfloat16" ? kernels::MatmulDtype::kBFloat16
                                         : kernels::MatmulDtype::kFloat16;
    cuda.graphs = o.cuda_graphs;
    cuda.wkv_chunked_min_tokens = o.wkv_chunked_min_tokens;
    return kernels::make_cuda_backend(index, cuda);
#else
    throw std::runtime_error("--device " + o.device +
                             ": this build has no CUDA support (rebuild with -DRWKV_EMB_CUDA=ON); "
                             "use --device cpu");
#endif
  }
  throw std::runtime_error("device '" + o.device +
                           "' is not available in this build (use --device cpu)");
}

// --model/--reranker tiny|base|large, when no local file has that name: the
// released checkpoints, from the cache or downloaded. --model NAME brings its
// paired reranker unless --reranker names another.
void fetch_released_checkpoints(ServerOptions& o) {
  auto released = [](const std::string& path) {
    return std::filesystem::exists(path) ? nullptr : find_released_model(path);
  };
  const ReleasedModel* model = released(o.model_path);
  const ReleasedModel* reranker = o.reranker_path.empty() ? model : released(o.reranker_path);
  if (model == nullptr && reranker == nullptr) return;
  const char* token = std::getenv("HF_TOKEN");
  const DownloadOptions download{o.hf_endpoint, o.model_cache_dir, token ? token : ""};
  if (model != nullptr) o.model_path = fetch_released_file(model->embedding_file, download);
  if (reranker != nullptr) o.reranker_path = fetch_released_file(reranker->reranker_file, download);
}

// The input protocol's flags: the preprocessor and the typed model aliases.
void configure_inputs(ServerContext& ctx) {
  const ServerOptions& o = ctx.options;
  ctx.inputs = InputPreprocessor(*api::eos_protocol_from_name(o.eos_protocol), o.instructions);
  std::vector<std::string> specs = o.input_type_models;
  if (specs.empty()) specs.push_back(ctx.model_name() + "-query=search_query");
  if (specs == std::vector<std::string>{"none"}) specs.clear();
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    const auto type =
        eq == std::string::npos ? std::nullopt : api::input_type_from_name(spec.substr(eq + 1));
    if (!type || eq == 0)
      throw std::runtime_error("--input-type-model '" + spec +
                               "': expected NAME=INPUT_TYPE with INPUT_TYPE one of "
                               "search_document, search_query, sts, classification, clustering");
    const std::string name = spec.substr(0, eq);
    if (ctx.serves(name))
      throw std::runtime_error("--input-type-model '" + spec + "': '" + name +
                               "' is already a served model name");
    ctx.typed_models.emplace_back(name, *type);
  }
}

void load_model(ServerContext& ctx) {
  ServerOptions& o = ctx.options;
  std::optional<io::Checkpoint> model, reranker;
  if (o.model_path.empty()) {
    ctx.demo_model = true;
    spdlog::warn(
        "*** No --model given: serving a RANDOM DEMO MODEL. Its embeddings and scores are "
        "MEANINGLESS; use it only to try the API. ***");
    const io::ModelShape shape =
        o.demo_shape == "0.1b" ? io::ModelShape::tiny_01b() : io::ModelShape::demo();
    model = io::make_random_embedding_checkpoint(shape, 0);
    if (o.reranker_path.empty()) reranker = io::make_random_reranker_checkpoint(shape, 1);
  } else {
    spdlog::info("loading {}", o.model_path);
    model = io::load_checkpoint(o.model_path);
  }
  if (!o.reranker_path.empty()) {
    spdlog::info("loading {}", o.reranker_path);
    reranker = io::load_checkpoint(o.reranker_path);
  }
  ctx.fingerprint = io::model_fingerprint(*model);  // ties cached states to these weights
  if (o.served_model_names.empty())
    o.served_model_names.push_back(ctx.demo_model ? "rwkv-emb-demo" : "rwkv-emb");
  configure_inputs(ctx);
  const std::string asked = o.dtype.empty() ? "unset" : o.dtype;
  o.dtype = resolve_dtype(o);  // what /v1/models reports
  spdlog::info("matrix products in {} (--dtype {})", o.dtype, asked);
  ctx.engine = std::make_unique<model::Engine>(make_backend(o), *model,
                                               reranker ? &*reranker : nullptr, o.engine);
  spdlog::info("model '{}': L={} C={} H={}, reranker: {}, backend: {}, fingerprint {}",
               ctx.model_name(), ctx.engine->model().stack.layers, ctx.engine->channels(),
               ctx.engine->model().stack.heads, ctx.engine->has_reranker() ? "yes" : "no",
               ctx.engine->backend().name(), ctx.fingerprint.hex());
}

// SIGTERM/SIGINT are blocked in every thread and taken by this one. It turns
// new work away (503, /health too), waits until every accepted request has
// been answered, then stops the HTTP server. (Stopping it first would cut the
// streamed responses of requests still computing.)
std::thread start_signal_thread(ServerContext& ctx, HttpServer& http) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return std::thread([set, &ctx, &http] {
    int sig = 0;
    sigwait(&set, &sig);
    // A signal during start-up: stop() before listen() would stop nothing.
    while (!http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    spdlog::info("signal {}: finishing {} in-flight request(s), then exiting", sig,
                 ctx.in_flight.load());
    ctx.ready = false;
    ctx.draining = true;
    while (ctx.in_flight > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    http.stop();
  });
}

int serve(ServerContext& ctx) {
  // Downloads first, while SIGTERM and SIGINT still end the process at once.
  fetch_released_checkpoints(ctx.options);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every thread created below
  std::signal(SIGPIPE, SIG_IGN);
  // Request bodies, token lists and state blobs are large and short-lived.
  // glibc's default threshold rises to the largest block freed, after which
  // such blocks come from the per-thread heaps, which keep their free space:
  // RSS crept up under load (docs/reliability.md). Fixed, every block over
  // 256 KiB is mapped and unmapped on its own. Engine steps do not allocate.
  mallopt(M_MMAP_THRESHOLD, 256 << 10);

  load_model(ctx);
  ctx.state_dtype =
      states::parse_state_dtype(ctx.options.state_dtype).value_or(states::StateDtype::kFloat32);
  ctx.states = states::make_state_store(ctx.options.states);
  ctx.state_cache = std::make_unique<states::DecodedStateCache>(ctx.options.state_cache_bytes);
  ctx.scheduler = std::make_unique<scheduling::Scheduler>(
      *ctx.engine, ctx.options.scheduler, [&ctx](const scheduling::StepStats& s) {
        ctx.metrics.observe_step(s.sequences, s.tokens, s.seconds);
      });
  HttpServer http(ctx);
  std::thread signals = start_signal_thread(ctx, http);
  signals.detach();  // ends with the process
  ctx.ready = true;
  const bool ok = http.listen();  // returns after stop(), in-flight requests done
  ctx.ready = false;
  ctx.scheduler->shutdown();
  spdlog::info("stopped");
  return ok ? 0 : 1;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "Run the HTTP server (the default command)");
  auto ctx = std::make_shared<ServerContext>();
  auto config = std::make_shared<std::string>();
  cmd->add_option(
         "--config", *config,
         "TOML config file; keys are the long option names (see config/rwkv-emb-server.toml)")
      ->envname("RWKV_EMB_CONFIG");
  add_options(*cmd, ctx->options);
  cmd->callback([cmd, config, ctx, &exit_code] {
    if (!config->empty()) apply_config_file(*cmd, *config);
    exit_code = serve(*ctx);
  });
}

}  // namespace rwkv::server
