// The pickle VM and the tensor views of a .pth: each input is the data.pkl
// of a torch zip whose storages "0" (16 float32), "1" (8 float16) and "2"
// (8 bfloat16) exist, so that the pickle's tensors can really load. Only
// CheckpointError may escape, and every tensor loaded holds as many values
// as its shape says.
#include <zip.h>

#include <memory>

#include "engine/io/pth_loader.h"
#include "engine/io/zip_archive.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// The archive with `pickle` as m/data.pkl, uncompressed (as torch.save writes).
std::string torch_zip(std::string_view pickle) {
  static const std::string storage(64, '\x3c');  // finite in every dtype
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* buffer = zip_source_buffer_create(nullptr, 0, 0, &error);
  zip_source_keep(buffer);
  zip_t* archive = zip_open_from_source(buffer, ZIP_TRUNCATE, &error);
  const std::pair<const char*, std::string_view> entries[] = {
      {"m/data.pkl", pickle},
      {"m/byteorder", "little"},
      {"m/data/0", storage},
      {"m/data/1", std::string_view(storage).substr(0, 16)},
      {"m/data/2", std::string_view(storage).substr(0, 16)}};
  for (const auto& [name, bytes] : entries) {
    zip_source_t* entry = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
    const zip_int64_t index = zip_file_add(archive, name, entry, 0);
    zip_set_file_compression(archive, zip_uint64_t(index), ZIP_CM_STORE, 0);
  }
  rwkv::fuzz::check(zip_close(archive) == 0, "libzip could not write the archive");
  zip_stat_t st;
  zip_source_stat(buffer, &st);
  std::string out(st.size, '\0');
  zip_source_open(buffer);
  zip_source_read(buffer, out.data(), st.size);
  zip_source_close(buffer);
  zip_source_free(buffer);
  zip_error_fini(&error);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rwkv;
  const std::string zip = torch_zip(fuzz::bytes_of(data, size));
  try {
    fuzz::check_checkpoint(io::load_pth(io::ZipArchive::open_memory(zip), "fuzz"));
  } catch (const io::CheckpointError&) {
  }
  return 0;
}
