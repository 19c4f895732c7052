// Whole checkpoint files as the server reads them (load_checkpoint: a zip
// holding a pickle and storages, or safetensors). Only CheckpointError may
// escape (and not one made from an unexpected exception, which the loader
// wraps), and every tensor loaded holds as many values as its shape says.
// Mutations inside a stored zip entry mostly fail its CRC: fuzz_pickle feeds
// the pickle VM directly.
#include "engine/io/checkpoint.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rwkv;
  try {
    fuzz::check_checkpoint(
        io::load_checkpoint_from_memory("fuzz", std::string(fuzz::bytes_of(data, size))));
  } catch (const io::CheckpointError& e) {
    fuzz::check(!std::string_view(e.what()).starts_with("fuzz: unexpected error: "),
                "the loader let an unexpected exception through");
  }
  return 0;
}
