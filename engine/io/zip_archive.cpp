#include "engine/io/zip_archive.h"

#include <zip.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>

namespace rwkv::io {
namespace {

// Deflate cannot expand data by more than about 1032:1; a larger claimed
// size is a corrupt (or hostile) directory entry, caught before allocating.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr uint64_t kReadChunk = uint64_t{64} << 20;

std::string libzip_error_string(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

std::string quoted(const std::string& name) { return "'" + name + "'"; }

// Closes an entry handle on every path out of a read.
struct FileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

}  // namespace

ZipArchive::ZipArchive(struct zip* handle, uint64_t archive_bytes)
    : zip_(handle), archive_bytes_(archive_bytes) {}

ZipArchive::ZipArchive(ZipArchive&& other) noexcept
    : zip_(std::exchange(other.zip_, nullptr)), archive_bytes_(other.archive_bytes_) {}

ZipArchive& ZipArchive::operator=(ZipArchive&& other) noexcept {
  if (this != &other) {
    if (zip_) zip_discard(zip_);
    zip_ = std::exchange(other.zip_, nullptr);
    archive_bytes_ = other.archive_bytes_;
  }
  return *this;
}

// Read-only archives are discarded: zip_close would try to write changes.
ZipArchive::~ZipArchive() {
  if (zip_) zip_discard(zip_);
}

ZipArchive ZipArchive::open_file(const std::string& path) {
  std::error_code ec;
  const uint64_t bytes = std::filesystem::file_size(path, ec);
  if (ec) throw ZipError("cannot open: " + ec.message());
  int code = 0;
  zip_t* handle = zip_open(path.c_str(), ZIP_RDONLY, &code);
  if (!handle) throw ZipError("not a readable zip archive: " + libzip_error_string(code));
  return ZipArchive(handle, bytes);
}

ZipArchive ZipArchive::open_memory(std::string_view bytes) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  if (!source) {
    std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw ZipError("cannot create zip source: " + message);
  }
  zip_t* handle = zip_open_from_source(source, ZIP_RDONLY, &error);
  if (!handle) {
    zip_source_free(source);  // still ours when the open fails
    std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw ZipError("not a readable zip archive: " + message);
  }
  zip_error_fini(&error);
  return ZipArchive(handle, bytes.size());
}

std::vector<std::string> ZipArchive::names() const {
  const zip_int64_t count = zip_get_num_entries(zip_, 0);
  if (count < 0) throw ZipError("cannot list entries");
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(count));
  for (zip_int64_t i = 0; i < count; ++i) {
    const char* name = zip_get_name(zip_, static_cast<zip_uint64_t>(i), 0);
    if (!name) throw ZipError("entry " + std::to_string(i) + " has no readable name");
    out.emplace_back(name);
  }
  return out;
}

bool ZipArchive::contains(const std::string& name) const {
  return zip_name_locate(zip_, name.c_str(), 0) >= 0;
}

uint64_t ZipArchive::size(const std::string& name) const { return stat(name).size; }

ZipArchive::EntryInfo ZipArchive::stat(const std::string& name) const {
  const zip_int64_t index = zip_name_locate(zip_, name.c_str(), 0);
  if (index < 0) throw ZipError("missing entry " + quoted(name));
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(zip_, static_cast<zip_uint64_t>(index), 0, &st) != 0)
    throw ZipError("cannot stat entry " + quoted(name) + ": " + zip_strerror(zip_));
  const zip_uint64_t needed = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
  if ((st.valid & needed) != needed)
    throw ZipError("entry " + quoted(name) + " has no size information");
  if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
    throw ZipError("entry " + quoted(name) + " is encrypted");
  if (st.comp_size > archive_bytes_)
    throw ZipError("entry " + quoted(name) + " claims " + std::to_string(st.comp_size) +
                   " compressed bytes in a " + std::to_string(archive_bytes_) + "-byte archive");
  if (st.comp_method == ZIP_CM_STORE) {
    if (st.size != st.comp_size)
      throw ZipError("stored entry " + quoted(name) + " has inconsistent sizes");
  } else if (st.comp_method == ZIP_CM_DEFLATE) {
    if (st.size / kMaxDeflateRatio > st.comp_size)
      throw ZipError("entry " + quoted(name) + " claims an impossible uncompressed size");
  } else {
    throw ZipError("entry " + quoted(name) + " uses unsupported compression method " +
                   std::to_string(st.comp_method));
  }
  return {static_cast<uint64_t>(index), st.size};
}

void ZipArchive::read_exact(const EntryInfo& entry, const std::string& name, char* dst) const {
  std::unique_ptr<zip_file_t, FileCloser> file(zip_fopen_index(zip_, entry.index, 0));
  if (!file) throw ZipError("cannot open entry " + quoted(name) + ": " + zip_strerror(zip_));
  uint64_t done = 0;
  while (done < entry.size) {
    const uint64_t want = std::min(kReadChunk, entry.size - done);
    const zip_int64_t got = zip_fread(file.get(), dst + done, want);
    if (got < 0)
      throw ZipError("cannot read entry " + quoted(name) + ": " + zip_file_strerror(file.get()));
    if (got == 0) throw ZipError("entry " + quoted(name) + " is truncated");
    done += static_cast<uint64_t>(got);
  }
  // A final read reaches the end of the data, where libzip checks the CRC.
  char extra;
  const zip_int64_t tail = zip_fread(file.get(), &extra, 1);
  if (tail < 0)
    throw ZipError("cannot read entry " + quoted(name) + ": " + zip_file_strerror(file.get()));
  if (tail > 0) throw ZipError("entry " + quoted(name) + " is longer than its directory says");
}

std::string ZipArchive::read(const std::string& name, uint64_t max_bytes) const {
  const EntryInfo entry = stat(name);
  if (entry.size > max_bytes)
    throw ZipError("entry " + quoted(name) + " is " + std::to_string(entry.size) +
                   " bytes, more than the limit of " + std::to_string(max_bytes));
  std::string out(entry.size, '\0');
  read_exact(entry, name, out.data());
  return out;
}

void ZipArchive::read_into(const std::string& name, void* dst, uint64_t dst_size) const {
  const EntryInfo entry = stat(name);
  if (entry.size != dst_size)
    throw ZipError("entry " + quoted(name) + " is " + std::to_string(entry.size) +
                   " bytes, expected " + std::to_string(dst_size));
  read_exact(entry, name, static_cast<char*>(dst));
}

}  // namespace rwkv::io
