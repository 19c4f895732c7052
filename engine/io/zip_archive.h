// A small read-only RAII wrapper over libzip: open an archive from a file or
// from bytes in memory, list its entries and read an entry fully.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct zip;

namespace rwkv::io {

// Any problem opening or reading an archive. Messages do not name the
// archive; callers add that context.
class ZipError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ZipArchive {
 public:
  static ZipArchive open_file(const std::string& path);
  // Reads `bytes` in place (no copy): they must outlive the archive.
  static ZipArchive open_memory(std::string_view bytes);

  ZipArchive(ZipArchive&& other) noexcept;
  ZipArchive& operator=(ZipArchive&& other) noexcept;
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;
  ~ZipArchive();

  // Entry names in archive order.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  // Uncompressed size of an entry.
  uint64_t size(const std::string& name) const;
  // The whole entry; throws when it is larger than `max_bytes`.
  std::string read(const std::string& name, uint64_t max_bytes) const;
  // Reads the whole entry into `dst`, which must be exactly its size.
  void read_into(const std::string& name, void* dst, uint64_t dst_size) const;

 private:
  ZipArchive(struct zip* handle, uint64_t archive_bytes);
  struct EntryInfo {
    uint64_t index;
    uint64_t size;
  };
  EntryInfo stat(const std::string& name) const;
  // Streams exactly `size` bytes of the entry into `dst`.
  void read_exact(const EntryInfo& entry, const std::string& name, char* dst) const;

  struct zip* zip_ = nullptr;
  uint64_t archive_bytes_ = 0;
};

}  // namespace rwkv::io
