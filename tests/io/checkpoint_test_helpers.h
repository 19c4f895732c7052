// Helpers the checkpoint tests share: scratch files, hand-built torch zips,
// pickle programs and safetensors files, and checks of CheckpointError messages.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>
#include <zip.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/checkpoint.h"
#include "engine/io/zip_archive.h"
#include "tests/support/fixture_data.h"

namespace rwkv::test {

using io::Checkpoint;
using io::CheckpointError;
using io::HostTensor;
using io::ZipArchive;
using Entries = std::vector<std::pair<std::string, std::string>>;
using namespace std::string_literals;

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::string fixture(const std::string& file) {
  return rwkv::test::fixtures_dir() + "/" + file;
}

// A unique scratch path, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("rwkv_ckpt_" + std::to_string(::getpid()) + "_" + name)) {}
  ~TempFile() { std::filesystem::remove(path_); }
  std::string write(const std::string& bytes) const {
    std::ofstream(path_, std::ios::binary) << bytes;
    return path_.string();
  }

 private:
  std::filesystem::path path_;
};

// Builds an uncompressed zip in memory with libzip (as torch.save does).
inline std::string make_zip(const Entries& entries) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(nullptr, 0, 0, &error);
  zip_t* archive = zip_open_from_source(source, ZIP_TRUNCATE, &error);
  EXPECT_NE(archive, nullptr);
  zip_source_keep(source);
  for (const auto& [name, data] : entries) {
    zip_source_t* entry = zip_source_buffer(archive, data.data(), data.size(), 0);
    const zip_int64_t index = zip_file_add(archive, name.c_str(), entry, ZIP_FL_OVERWRITE);
    EXPECT_GE(index, 0) << name;
    zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
  }
  EXPECT_EQ(zip_close(archive), 0);
  zip_stat_t st;
  zip_source_stat(source, &st);
  std::string out(st.size, '\0');
  zip_source_open(source);
  EXPECT_EQ(zip_source_read(source, out.data(), st.size), static_cast<zip_int64_t>(st.size));
  zip_source_close(source);
  zip_source_free(source);
  zip_error_fini(&error);
  return out;
}

inline std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
inline std::string le64(uint64_t v) {
  return le32(static_cast<uint32_t>(v)) + le32(static_cast<uint32_t>(v >> 32));
}

// Writes pickle programs opcode by opcode, the way torch.save lays them out.
class PickleWriter {
 public:
  PickleWriter& raw(const std::string& bytes) { return add(bytes); }
  PickleWriter& op(uint8_t opcode) { return add(std::string(1, static_cast<char>(opcode))); }
  PickleWriter& proto() { return add("\x80\x02"); }
  PickleWriter& global(const std::string& module, const std::string& name) {
    return add("c").add(module).add("\n").add(name).add("\n");
  }
  PickleWriter& str(const std::string& s) {
    return add("X").add(le32(static_cast<uint32_t>(s.size()))).add(s);
  }
  PickleWriter& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').op(static_cast<uint8_t>(v));
    if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max())
      return add("J").add(le32(static_cast<uint32_t>(v)));
    return add("\x8a\x08").add(le64(static_cast<uint64_t>(v)));
  }
  PickleWriter& ints(const std::vector<int64_t>& values) {
    mark();
    for (int64_t v : values) integer(v);
    return op('t');
  }
  PickleWriter& mark() { return op('('); }
  PickleWriter& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
  // _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False,
  // OrderedDict())
  PickleWriter& tensor(const std::string& storage_type, const std::string& key, int64_t numel,
                       int64_t offset, const std::vector<int64_t>& size,
                       const std::vector<int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").integer(numel);
    op('t').op('Q');
    integer(offset).ints(size).ints(stride).op(0x89).ordered_dict();
    return op('t').op('R');
  }
  PickleWriter& stop() { return op('.'); }
  const std::string& bytes() const { return bytes_; }

 private:
  PickleWriter& add(const std::string& s) {
    bytes_ += s;
    return *this;
  }
  std::string bytes_;
};

// A one-tensor checkpoint {"w": tensor} as a torch zip.
inline std::string one_tensor_pth(const std::string& storage_type, int64_t numel,
                                  const std::string& data, int64_t offset,
                                  const std::vector<int64_t>& size,
                                  const std::vector<int64_t>& stride) {
  PickleWriter p;
  p.proto().op('}').mark().str("w").tensor(storage_type, "0", numel, offset, size, stride);
  p.op('u').stop();
  return make_zip({{"m/data.pkl", p.bytes()}, {"m/data/0", data}});
}

inline std::string floats_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}
inline std::string u16_bytes(const std::vector<uint16_t>& v) {
  std::string s;
  for (uint16_t x : v) s += {static_cast<char>(x & 0xff), static_cast<char>(x >> 8)};
  return s;
}

// The message of the CheckpointError thrown by `load` (a test failure if it
// throws anything else or nothing), checked to start with `name`.
inline std::string error_of(const std::function<void()>& load, const std::string& name) {
  try {
    load();
  } catch (const CheckpointError& e) {
    const std::string message = e.what();
    EXPECT_TRUE(message.starts_with(name + ":")) << message;
    return message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a CheckpointError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no error for " << name;
  return "";
}

inline std::string memory_error(const std::string& name, const std::string& bytes) {
  return error_of([&] { rwkv::io::load_checkpoint_from_memory(name, bytes); }, name);
}

inline bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

inline std::string safetensors(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

}  // namespace rwkv::test

// Evaluates `text` once: it is usually a whole load.
#define EXPECT_CONTAINS(text, part)                                                     \
  do {                                                                                  \
    const std::string text_ = (text);                                                   \
    EXPECT_NE(text_.find(part), std::string::npos) << text_ << "\n  lacks: " << (part); \
  } while (0)
