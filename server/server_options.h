// The serve command's options, parsed and checked once at start (serve_command.cpp):
// every choice an enum or a struct, every number within its range.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/input_protocol.h"
#include "api/limits.h"
#include "engine/model/engine.h"
#include "engine/scheduling/scheduler.h"
#include "engine/states/state_blob.h"
#include "engine/states/state_store.h"
#include "kernels/backend.h"

namespace rwkv::server {

enum class LogFormat { kText, kJson };
enum class DemoShape { kSmall, k01b };  // 0.1b: the released 0.1B shape, for benchmarks

// --dtype as given. Unset and auto are resolved against the device at start.
enum class DtypeChoice { kUnset, kAuto, kFloat32, kFloat16, kBfloat16, kInt8 };

// --device: cpu, cuda (device 0) or cuda:N.
struct Device {
  enum class Kind { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  int index = 0;
  std::string name() const;  // "cpu", "cuda:1"
};
// nullopt for anything but cpu, cuda and cuda:N (N of at most 3 digits).
std::optional<Device> parse_device(std::string_view text);

// 1/16 of the memory this process may use: the machine's, or its cgroup's
// limit (a container's) when lower.
uint64_t default_state_cache_bytes();

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string model_path;       // empty: the random demo model; tiny|base|large: released
  std::string reranker_path;    // empty: no reranker (demo: a random one)
  std::string model_cache_dir;  // where released checkpoints are downloaded to
  std::string hf_endpoint;      // where they are downloaded from
  DemoShape demo_shape = DemoShape::kSmall;     // the random model without --model
  std::vector<std::string> served_model_names;  // first is the canonical name
  Device device;
  DtypeChoice dtype = DtypeChoice::kUnset;  // as asked; resolve_dtype() gives the one used
  bool cuda_graphs = false;                 // replay repeated step shapes as CUDA graphs
  int wkv_chunked_min_tokens = 0;           // chunked WKV for sequences this long; 0: never
  int threads = 0;
  model::EngineOptions engine;
  scheduling::SchedulerOptions scheduler;
  // Per request, for the parsers and the services alike: --max-inputs (texts
  // or documents: max_documents follows max_inputs) and --max-input-tokens
  // (a text's own tokens or a token-id input's ids, before truncation).
  api::RequestLimits limits{.max_documents = api::RequestLimits{}.max_inputs};
  size_t max_body_bytes = 16 << 20;
  api::EosProtocol eos_protocol = api::EosProtocol::kChunked;  // of text embeddings
  // Default instruction description per input type (api::InputType order); "" = none.
  std::array<std::string, api::kAllInputTypes.size()> instructions;
  // NAME=INPUT_TYPE: model names that imply an input type; empty: <model>-query=search_query.
  std::vector<std::string> input_type_models;
  int http_threads = 128;
  int read_timeout_seconds = 10;
  double heartbeat_seconds = 0;  // computing longer: 200 at once, then spaces; 0: never
  std::vector<std::string> api_keys;
  LogFormat log_format = LogFormat::kText;                        // of the access log
  states::StateStoreOptions states;                               // /v1/states backend
  states::StateDtype state_dtype = states::StateDtype::kFloat32;  // how new states are stored
  uint64_t state_cache_bytes = default_state_cache_bytes();       // decoded states; 0: no cache
};

// The matrix-product dtype `choice` means on `device`. Unset: float32 on the CPU
// (the reference's accuracy), float16 on CUDA. auto: the fastest within the
// half-precision bounds, which int8 misses (bench/README.md), so bfloat16 where
// the CPU has AVX512-BF16.
kernels::MatmulDtype resolve_dtype(DtypeChoice choice, const Device& device);

}  // namespace rwkv::server
