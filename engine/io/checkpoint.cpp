#include "engine/io/checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string_view>

#include "engine/io/pth_loader.h"
#include "engine/io/safetensors_loader.h"
#include "engine/io/zip_archive.h"

namespace rwkv::io {
namespace {

// Local file header, or the end record of an empty archive.
bool is_zip(std::string_view head) {
  return head.starts_with(std::string_view("PK\x03\x04", 4)) ||
         head.starts_with(std::string_view("PK\x05\x06", 4));
}

// torch.save before 1.6 wrote a bare pickle starting with a magic number:
// PROTO 2, then LONG1 of 10 bytes.
bool is_legacy_torch(std::string_view head) {
  return head.starts_with(std::string_view("\x80\x02\x8a\x0a", 4));
}

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw CheckpointError(name + ": " + what);
}

// Converts anything a loader lets escape into a CheckpointError, so callers
// (and fuzzers) only ever see one exception type.
template <typename Load>
Checkpoint guarded(const std::string& name, Load load) {
  try {
    return load();
  } catch (const CheckpointError&) {
    throw;
  } catch (const ZipError& e) {
    fail(name, e.what());
  } catch (const std::bad_alloc&) {
    fail(name, "out of memory while loading");
  } catch (const std::exception& e) {
    fail(name, std::string("unexpected error: ") + e.what());
  }
}

Checkpoint load_unzipped(const std::string& name, std::string_view bytes) {
  if (is_legacy_torch(bytes))
    fail(name,
         "legacy (pre-1.6) torch.save format is not supported; re-save it with a newer torch");
  return load_safetensors(bytes, name);
}

// A read-only mapping of a whole file, so multi-GB safetensors files are not
// copied before conversion.
class MappedFile {
 public:
  MappedFile(int fd, size_t size) : size_(size) {
    addr_ = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr_ == MAP_FAILED) addr_ = nullptr;
  }
  ~MappedFile() {
    if (addr_) ::munmap(addr_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  bool ok() const { return addr_ != nullptr; }
  std::string_view bytes() const { return {static_cast<const char*>(addr_), size_}; }

 private:
  void* addr_ = nullptr;
  size_t size_;
};

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

const HostTensor& Checkpoint::at(const std::string& key) const {
  const auto it = tensors.find(key);
  if (it == tensors.end())
    throw CheckpointError(path + ": no tensor named '" + key + "' (the checkpoint has " +
                          std::to_string(tensors.size()) + " tensors)");
  return it->second;
}

Checkpoint load_checkpoint(const std::string& path) {
  const FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(file.get(), &st) != 0)
    fail(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  if (st.st_size == 0) fail(path, "file is empty");

  char head[8] = {};
  const ssize_t got = ::pread(file.get(), head, sizeof head, 0);
  if (got < 0) fail(path, std::string("cannot read: ") + std::strerror(errno));
  const std::string_view magic(head, static_cast<size_t>(got));

  return guarded(path, [&] {
    // Zip: libzip reads the file itself, one storage at a time.
    if (is_zip(magic)) return load_pth(ZipArchive::open_file(path), path);
    const MappedFile mapped(file.get(), static_cast<size_t>(st.st_size));
    if (!mapped.ok()) fail(path, std::string("cannot map file: ") + std::strerror(errno));
    return load_unzipped(path, mapped.bytes());
  });
}

Checkpoint load_checkpoint_from_memory(const std::string& name, const std::string& bytes) {
  return guarded(name, [&] {
    if (bytes.empty()) fail(name, "no data");
    if (is_zip(bytes)) return load_pth(ZipArchive::open_memory(bytes), name);
    return load_unzipped(name, bytes);
  });
}

}  // namespace rwkv::io
