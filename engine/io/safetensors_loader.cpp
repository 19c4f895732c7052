#include "engine/io/safetensors_loader.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/io/pth_loader.h"

namespace rwkv::io {
namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB too.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;
// Real headers nest three levels; a cap keeps hostile nesting away from the
// JSON library's recursion.
constexpr int kMaxJsonDepth = 64;
constexpr size_t kMaxDims = 64;

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

// Maximum bracket nesting outside strings, stopping early past `limit`.
int json_depth(std::string_view text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) break;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

class SafetensorsLoader {
 public:
  SafetensorsLoader(std::string_view bytes, const std::string& name) : bytes_(bytes), name_(name) {}
  Checkpoint run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointError(name_ + ": " + what);
  }
  json parse_header();
  Entry parse_entry(const std::string& key, const json& value) const;
  DType parse_dtype(const std::string& key, const json& value) const;
  void check_overlaps(std::vector<Entry>& entries) const;

  std::string_view bytes_;
  std::string name_;
  std::string_view data_;  // the byte buffer after the header
};

json SafetensorsLoader::parse_header() {
  if (bytes_.size() < 8)
    fail("too short for a safetensors file (" + std::to_string(bytes_.size()) + " bytes)");
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= uint64_t{static_cast<uint8_t>(bytes_[i])} << (8 * i);
  if (length > bytes_.size() - 8)
    fail("safetensors header length " + std::to_string(length) + " exceeds the file size " +
         std::to_string(bytes_.size()));
  if (length > kMaxHeaderBytes)
    fail("safetensors header length " + std::to_string(length) + " is over the 100 MB limit");
  const std::string_view text = bytes_.substr(8, length);
  data_ = bytes_.substr(8 + length);
  if (json_depth(text, kMaxJsonDepth) > kMaxJsonDepth) fail("safetensors header nests too deeply");
  json header;
  try {
    header = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail(std::string("safetensors header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("safetensors header is not a JSON object");
  return header;
}

DType SafetensorsLoader::parse_dtype(const std::string& key, const json& value) const {
  if (!value.is_string()) fail("tensor '" + key + "' has no string 'dtype'");
  const std::string dtype = value.get<std::string>();
  if (dtype == "F32") return DType::kFloat32;
  if (dtype == "F16") return DType::kFloat16;
  if (dtype == "BF16") return DType::kBFloat16;
  static constexpr std::array<const char*, 13> kKnown = {"F64", "I64",     "I32",    "I16", "I8",
                                                         "U8",  "U16",     "U32",    "U64", "BOOL",
                                                         "C64", "F8_E4M3", "F8_E5M2"};
  for (const char* known : kKnown)
    if (dtype == known)
      fail("tensor '" + key + "' has unsupported dtype " + dtype + " (supported: F32, F16, BF16)");
  fail("tensor '" + key + "' has unknown dtype '" + dtype + "'");
}

Entry SafetensorsLoader::parse_entry(const std::string& key, const json& value) const {
  if (!value.is_object()) fail("header entry '" + key + "' is not an object");
  const auto dtype = value.find("dtype");
  const auto shape = value.find("shape");
  const auto offsets = value.find("data_offsets");
  if (dtype == value.end() || shape == value.end() || offsets == value.end())
    fail("tensor '" + key + "' lacks dtype, shape or data_offsets");
  Entry entry{key, parse_dtype(key, *dtype), {}, 0, 0};

  if (!shape->is_array() || shape->size() > kMaxDims) fail("tensor '" + key + "' has a bad shape");
  uint64_t numel = 1;
  for (const json& dim : *shape) {
    if (!dim.is_number_unsigned())
      fail("tensor '" + key + "' has a non-integer or negative dimension");
    const uint64_t n = dim.get<uint64_t>();
    if (n > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, n, &numel))
      fail("tensor '" + key + "' has a shape that overflows");
    entry.shape.push_back(static_cast<int64_t>(n));
  }

  if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned())
    fail("tensor '" + key + "' needs data_offsets [begin, end]");
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.begin > entry.end || entry.end > data_.size())
    fail("tensor '" + key + "' data_offsets [" + std::to_string(entry.begin) + ", " +
         std::to_string(entry.end) + "] are outside the " + std::to_string(data_.size()) +
         "-byte data section");
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, dtype_size(entry.dtype), &bytes) ||
      bytes != entry.end - entry.begin)
    fail("tensor '" + key + "' has " + std::to_string(entry.end - entry.begin) +
         " bytes of data but its shape " + shape->dump() + " needs " + std::to_string(numel) +
         " elements of " + std::to_string(dtype_size(entry.dtype)) + " bytes");
  return entry;
}

void SafetensorsLoader::check_overlaps(std::vector<Entry>& entries) const {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;  // empty tensors occupy nothing
    if (previous && e.begin < previous->end)
      fail("tensors '" + previous->name + "' and '" + e.name + "' overlap");
    previous = &e;
  }
}

Checkpoint SafetensorsLoader::run() {
  const json header = parse_header();
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail("__metadata__ is not an object");
      continue;
    }
    entries.push_back(parse_entry(key, value));
  }
  check_overlaps(entries);

  Checkpoint out;
  out.path = name_;
  for (Entry& e : entries) {
    HostTensor& tensor = out.tensors[e.name];
    tensor.shape = std::move(e.shape);
    tensor.data.resize((e.end - e.begin) / dtype_size(e.dtype));
    convert_to_float32(e.dtype, data_.data() + e.begin, tensor.data.size(), tensor.data.data());
  }
  return out;
}

}  // namespace

Checkpoint load_safetensors(std::string_view bytes, const std::string& name) {
  try {
    return SafetensorsLoader(bytes, name).run();
  } catch (const json::exception& e) {
    // Only reachable through a checked type mismatch; still the file's fault.
    throw CheckpointError(name + ": malformed safetensors header: " + e.what());
  }
}

}  // namespace rwkv::io
