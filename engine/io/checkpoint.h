// Model checkpoints: PyTorch .pth (zip + pickle) and safetensors, read into
// float32 host tensors plus the few non-tensor values upstream stores.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/io/host_tensor.h"

namespace rwkv::io {

// Every loading problem: the message names the file and what is wrong with it.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Checkpoint {
  std::string path;
  std::map<std::string, HostTensor> tensors;
  // Top-level values that are lists of ints (e.g. `reranker_layer_idx`).
  std::map<std::string, std::vector<int64_t>> int_lists;

  bool has(const std::string& key) const { return tensors.count(key) != 0; }
  // The tensor under `key`; throws CheckpointError naming the file when absent.
  const HostTensor& at(const std::string& key) const;
};

// Reads a checkpoint, choosing the format from the file's first bytes
// (zip: .pth, otherwise safetensors). Throws CheckpointError.
Checkpoint load_checkpoint(const std::string& path);

// The same from bytes already in memory; `name` is used in error messages.
Checkpoint load_checkpoint_from_memory(const std::string& name, const std::string& bytes);

}  // namespace rwkv::io
