// safetensors checkpoints: header JSON, offsets, dtypes. Only CheckpointError
// may escape, and every tensor loaded holds as many values as its shape says.
#include "engine/io/safetensors_loader.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rwkv;
  try {
    fuzz::check_checkpoint(io::load_safetensors(fuzz::bytes_of(data, size), "fuzz"));
  } catch (const io::CheckpointError&) {
  }
  return 0;
}
