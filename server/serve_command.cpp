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
#include <utility>
#include <vector>

#include "engine/io/random_model.h"
#include "kernels/cpu/gemm.h"
#include "server/http_server.h"
#include "server/model_download.h"
#ifdef RWKV_EMB_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace rwkv::server {
namespace {

// An option whose value is one of `names` (exactly as written), stored as its
// enum; anything else is a start-up error listing the names.
template <typename Enum>
CLI::Validator choice(std::vector<std::pair<std::string, Enum>> names) {
  std::string list;
  for (const auto& [name, value] : names) list += (list.empty() ? "" : ", ") + name;
  return CLI::Validator(
      [names, list](std::string& text) -> std::string {
        for (const auto& [name, value] : names)
          if (text == name) {
            text = std::to_string(static_cast<int>(value));  // what CLI11 converts to Enum
            return "";
          }
        return "'" + text + "' is not one of " + list;
      },
      "{" + list + "}");
}

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
          ->transform(choice<DemoShape>({{"small", DemoShape::kSmall}, {"0.1b", DemoShape::k01b}}))
          ->default_str("small"));
  env(cmd.add_option("--served-model-name", o.served_model_names,
                     "Model name(s) clients may send; the first is reported")
          ->delimiter(','));
  env(cmd.add_option("--host", o.host, "Address to listen on")->capture_default_str());
  env(cmd.add_option("--port", o.port, "Port")->capture_default_str()->check(CLI::Range(1, 65535)));
  env(cmd.add_option_function<std::string>(
             "--device",
             [&o](const std::string& name) {
               const auto device = parse_device(name);
               if (!device)
                 throw CLI::ValidationError("--device",
                                            "'" + name + "': expected cpu, cuda or cuda:N");
               o.device = *device;
             },
             "cpu (cuda builds: cuda[:N])")
          ->default_str("cpu"));
  env(cmd.add_option("--dtype", o.dtype,
                     "Weights and matrix-product inputs (default: float32 on cpu, float16 on "
                     "cuda). auto: the fastest that keeps embeddings within cosine 0.9999 and "
                     "rerank logits within 0.02 of float32 (cpu: bfloat16 with AVX512-BF16, "
                     "else float32; cuda: float16). cpu: bfloat16 needs AVX512-BF16, int8 "
                     "(opt-in: less accurate) VNNI. State and accumulation stay float32")
          ->transform(choice<DtypeChoice>({{"auto", DtypeChoice::kAuto},
                                           {"float32", DtypeChoice::kFloat32},
                                           {"float16", DtypeChoice::kFloat16},
                                           {"bfloat16", DtypeChoice::kBfloat16},
                                           {"int8", DtypeChoice::kInt8}})));
  env(cmd.add_flag("--cuda-graphs", o.cuda_graphs,
                   "cuda: replay steps of a repeated shape as CUDA graphs")
          ->capture_default_str());
  env(cmd.add_option("--wkv-chunked-min-tokens", o.wkv_chunked_min_tokens,
                     "cuda: sequences of at least this many tokens in a step take the chunked "
                     "WKV form (0: never)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber));
  env(cmd.add_option("--threads", o.threads, "CPU compute threads (0: all cores)")
          ->capture_default_str()
          ->check(CLI::Range(0, 4096)));
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
          ->capture_default_str()
          ->check(CLI::Range(size_t(1), size_t(1) << 30)));
  env(cmd.add_option("--max-queued-tokens", o.scheduler.max_queued_tokens,
                     "Tokens waiting; beyond: 429")
          ->capture_default_str()
          ->check(CLI::Range(size_t(1), size_t(1) << 40)));
  env(cmd.add_option("--max-input-tokens", o.limits.max_input_tokens,
                     "Longest input: a text's own tokens (before the instruction and the EOS "
                     "tokens of --eos-protocol), or a token-id input's ids; longer ones are "
                     "refused (400) unless the request asks to truncate")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  env(cmd.add_option("--eos-protocol", o.eos_protocol,
                     "Text embeddings: chunked = EOS every 512 tokens of a 2048 context, short "
                     "texts repeated 4 times (as the model was trained and evaluated); single = "
                     "text + one EOS. Requests may override it (eos_protocol)")
          ->transform(choice<api::EosProtocol>(
              {{"chunked", api::EosProtocol::kChunked}, {"single", api::EosProtocol::kSingle}}))
          ->default_str("chunked"));
  for (const api::InputType type : api::kAllInputTypes) {
    std::string name(api::input_type_name(type));
    std::replace(name.begin(), name.end(), '_', '-');
    std::string& description = o.instructions[static_cast<size_t>(type)];
    description = std::string(service::Preprocessor::default_description(type));
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
  env(cmd.add_option("--max-inputs", o.limits.max_inputs, "Texts or documents per request")
          ->capture_default_str()
          ->check(CLI::Range(size_t(1), size_t(1) << 20)));
  env(cmd.add_option("--max-body-bytes", o.max_body_bytes, "Largest request body; beyond: 413")
          ->capture_default_str()
          ->check(CLI::Range(size_t(1), size_t(1) << 40)));
  env(cmd.add_option("--http-threads", o.http_threads, "HTTP worker threads")
          ->capture_default_str()
          ->check(CLI::Range(1, 65536)));
  env(cmd.add_option("--read-timeout", o.read_timeout_seconds,
                     "Seconds a client has to send a whole request (a connection's first: from its "
                     "accept), plus 1 s per 64 KiB received; beyond: 408 and closed")
          ->capture_default_str()
          ->check(CLI::Range(1, 86400)));
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
          ->transform(choice<LogFormat>({{"text", LogFormat::kText}, {"json", LogFormat::kJson}}))
          ->default_str("text"));
  env(cmd.add_option("--state-store", o.states.kind,
                     "Where /v1/states keeps cached document states")
          ->transform(choice<states::StoreKind>({{"memory", states::StoreKind::kMemory},
                                                 {"disk", states::StoreKind::kDisk},
                                                 {"redis", states::StoreKind::kRedis}}))
          ->default_str("disk"));
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
          ->transform(choice<states::StateDtype>({{"float32", states::StateDtype::kFloat32},
                                                  {"float16", states::StateDtype::kFloat16},
                                                  {"bfloat16", states::StateDtype::kBfloat16},
                                                  {"int8", states::StateDtype::kInt8}}))
          ->default_str("float32"));
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

// The backend of --device, computing its products in `dtype` (resolve_dtype).
std::unique_ptr<kernels::Backend> make_backend(const ServerOptions& o, kernels::MatmulDtype dtype) {
  const std::string dtype_name = kernels::matmul_dtype_name(dtype);
  if (o.device.kind == Device::Kind::kCpu) {
    if (dtype == kernels::MatmulDtype::kFloat16)
      throw std::runtime_error(
          "--dtype float16 needs --device cuda: the CPU backend computes in "
          "float32, bfloat16 or int8");
    try {
      return kernels::make_cpu_backend(o.threads, dtype);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error("--dtype " + dtype_name + ": " + e.what());
    }
  }
#ifdef RWKV_EMB_WITH_CUDA
  const int count = kernels::cuda_device_count();
  if (count == 0)
    throw std::runtime_error(
        "--device " + o.device.name() +
        ": no CUDA device found (no NVIDIA driver or no GPU); use --device cpu");
  if (o.device.index >= count)
    throw std::runtime_error("--device " + o.device.name() + ": only " + std::to_string(count) +
                             " CUDA device(s) (cuda:0.." + std::to_string(count - 1) + ")");
  if (dtype == kernels::MatmulDtype::kInt8)
    throw std::runtime_error(
        "--dtype int8 needs --device cpu: CUDA computes in float32, float16 or bfloat16");
  kernels::CudaOptions cuda;
  cuda.dtype = dtype;
  cuda.graphs = o.cuda_graphs;
  cuda.wkv_chunked_min_tokens = o.wkv_chunked_min_tokens;
  return kernels::make_cuda_backend(o.device.index, cuda);
#else
  throw std::runtime_error("--device " + o.device.name() +
                           ": this build has no CUDA support (rebuild with -DRWKV_EMB_CUDA=ON); "
                           "use --device cpu");
#endif
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

void load_model(ServerContext& ctx) {
  ServerOptions& o = ctx.options;
  std::optional<io::Checkpoint> model, reranker;
  if (o.model_path.empty()) {
    ctx.demo_model = true;
    spdlog::warn(
        "*** No --model given: serving a RANDOM DEMO MODEL. Its embeddings and scores are "
        "MEANINGLESS; use it only to try the API. ***");
    const io::ModelShape shape =
        o.demo_shape == DemoShape::k01b ? io::ModelShape::tiny_01b() : io::ModelShape::demo();
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
  ctx.catalog = service::ModelCatalog(o.served_model_names, o.input_type_models);
  ctx.preprocessor =
      service::Preprocessor(o.eos_protocol, o.instructions, o.limits.max_input_tokens);
  const kernels::MatmulDtype dtype = resolve_dtype(o.dtype, o.device);
  spdlog::info("matrix products in {}{}", kernels::matmul_dtype_name(dtype),
               o.dtype == DtypeChoice::kUnset  ? " (--dtype unset)"
               : o.dtype == DtypeChoice::kAuto ? " (--dtype auto)"
                                               : "");
  ctx.engine = std::make_unique<model::Engine>(make_backend(o, dtype), *model,
                                               reranker ? &*reranker : nullptr, o.engine);
  spdlog::info("model '{}': L={} C={} H={}, reranker: {}, backend: {}, fingerprint {}",
               ctx.catalog.canonical(), ctx.engine->model().stack.layers, ctx.engine->channels(),
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
                 http.in_flight());
    ctx.ready = false;
    http.start_draining();
    while (http.in_flight() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
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

  ctx.options.limits.max_documents = ctx.options.limits.max_inputs;  // --max-inputs: both
  load_model(ctx);
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
