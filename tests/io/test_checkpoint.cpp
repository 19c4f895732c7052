// Checkpoint loading: the golden .pth fixtures (checked against their raw
// storage bytes, read independently of the pickle), hand-built .pth and
// safetensors files, hostile inputs and a small deterministic fuzz run.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zip.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/checkpoint.h"
#include "engine/io/zip_archive.h"
#include "tests/support/fixture_data.h"

namespace {

using rwkv::io::Checkpoint;
using rwkv::io::CheckpointError;
using rwkv::io::HostTensor;
using rwkv::io::ZipArchive;
using Entries = std::vector<std::pair<std::string, std::string>>;
using namespace std::string_literals;

// ---- helpers ------------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string fixture(const std::string& file) { return rwkv::test::fixtures_dir() + "/" + file; }

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
std::string make_zip(const Entries& entries) {
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

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string le64(uint64_t v) {
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
std::string one_tensor_pth(const std::string& storage_type, int64_t numel, const std::string& data,
                           int64_t offset, const std::vector<int64_t>& size,
                           const std::vector<int64_t>& stride) {
  PickleWriter p;
  p.proto().op('}').mark().str("w").tensor(storage_type, "0", numel, offset, size, stride);
  p.op('u').stop();
  return make_zip({{"m/data.pkl", p.bytes()}, {"m/data/0", data}});
}

std::string floats_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}
std::string u16_bytes(const std::vector<uint16_t>& v) {
  std::string s;
  for (uint16_t x : v) s += {static_cast<char>(x & 0xff), static_cast<char>(x >> 8)};
  return s;
}

// The message of the CheckpointError thrown by `load` (a test failure if it
// throws anything else or nothing), checked to start with `name`.
std::string error_of(const std::function<void()>& load, const std::string& name) {
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

std::string memory_error(const std::string& name, const std::string& bytes) {
  return error_of([&] { rwkv::io::load_checkpoint_from_memory(name, bytes); }, name);
}

// Evaluates `text` once: it is usually a whole load.
#define EXPECT_CONTAINS(text, part)                                                     \
  do {                                                                                  \
    const std::string text_ = (text);                                                   \
    EXPECT_NE(text_.find(part), std::string::npos) << text_ << "\n  lacks: " << (part); \
  } while (0)

// ---- independent reads of the fixture archives ------------------------------------

// The "<prefix>/" of a torch zip, found without the loader.
std::string prefix_of(const ZipArchive& zip) {
  for (const std::string& name : zip.names())
    if (name.ends_with("/data.pkl")) return name.substr(0, name.size() - 8);
  ADD_FAILURE() << "no data.pkl";
  return "";
}

float raw_element(const std::string& storage, int64_t index, const std::string& dtype) {
  if (dtype == "bfloat16") {
    uint16_t half;
    std::memcpy(&half, storage.data() + 2 * index, 2);
    return std::bit_cast<float>(uint32_t{half} << 16);
  }
  float v;
  std::memcpy(&v, storage.data() + 4 * index, 4);
  return v;
}

size_t element_bytes(const std::string& dtype) { return dtype == "bfloat16" ? 2 : 4; }

bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

// Does `tensor` equal the view (offset, strides) of raw `storage`, bit for bit?
bool view_matches(const HostTensor& tensor, const std::string& storage, const std::string& dtype,
                  int64_t offset, const std::vector<int64_t>& stride) {
  const int64_t storage_elements = static_cast<int64_t>(storage.size() / element_bytes(dtype));
  for (int64_t flat = 0; flat < tensor.numel(); ++flat) {
    int64_t rest = flat, index = offset;
    for (size_t d = tensor.shape.size(); d-- > 0;) {
      index += (rest % tensor.shape[d]) * stride[d];
      rest /= tensor.shape[d];
    }
    if (index >= storage_elements) return false;
    if (!same_bits(tensor.data[static_cast<size_t>(flat)], raw_element(storage, index, dtype)))
      return false;
  }
  return true;
}

std::vector<int64_t> row_major_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> stride(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) stride[d - 1] = stride[d] * shape[d];
  return stride;
}

// Names of the storage records in which `matches` holds; expected: one.
std::vector<std::string> matching_storages(const std::string& file,
                                           const std::function<bool(const std::string&)>& matches) {
  const ZipArchive zip = ZipArchive::open_file(fixture(file));
  const std::string data_dir = prefix_of(zip) + "data/";
  std::vector<std::string> found;
  for (const std::string& name : zip.names()) {
    if (!name.starts_with(data_dir)) continue;
    if (matches(zip.read(name, uint64_t{1} << 30))) found.push_back(name);
  }
  return found;
}

std::map<std::string, std::vector<int64_t>> expected_shapes(const nlohmann::json& keys) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& entry : keys)
    out[entry.at(0).get<std::string>()] = entry.at(1).get<std::vector<int64_t>>();
  return out;
}

// Tensor shapes, plus int lists with their values: expected.json lists
// `reranker_layer_idx` among the keys as [name, value].
std::map<std::string, std::vector<int64_t>> loaded_shapes(const Checkpoint& ckpt) {
  std::map<std::string, std::vector<int64_t>> out(ckpt.int_lists.begin(), ckpt.int_lists.end());
  for (const auto& [name, tensor] : ckpt.tensors) {
    out[name] = tensor.shape;
    EXPECT_EQ(tensor.data.size(), static_cast<size_t>(tensor.numel())) << name;
  }
  return out;
}

// ---- fixtures -----------------------------------------------------------------------

TEST(CheckpointFixtures, EmbeddingKeysAndShapes) {
  RWKV_REQUIRE_FIXTURES();
  const auto& model = rwkv::test::expected()["model"];
  const Checkpoint ckpt = rwkv::io::load_checkpoint(fixture(model["file"]));
  EXPECT_EQ(ckpt.path, fixture(model["file"]));
  EXPECT_EQ(loaded_shapes(ckpt), expected_shapes(model["keys"]));
  EXPECT_TRUE(ckpt.int_lists.empty());
}

TEST(CheckpointFixtures, RerankerKeysShapesAndLayerIdx) {
  RWKV_REQUIRE_FIXTURES();
  for (const auto& reranker : rwkv::test::expected()["rerankers"]) {
    SCOPED_TRACE(reranker["file"].get<std::string>());
    const Checkpoint ckpt = rwkv::io::load_checkpoint(fixture(reranker["file"]));
    EXPECT_EQ(loaded_shapes(ckpt), expected_shapes(reranker["keys"]));
    const auto& idx = reranker["reranker_layer_idx"];
    if (idx.is_null()) {
      EXPECT_EQ(ckpt.int_lists.count("reranker_layer_idx"), 0u);
    } else {
      ASSERT_EQ(ckpt.int_lists.count("reranker_layer_idx"), 1u);
      EXPECT_EQ(ckpt.int_lists.at("reranker_layer_idx"), idx.get<std::vector<int64_t>>());
    }
  }
  // Spelled out, as the model code relies on it.
  const Checkpoint idx = rwkv::io::load_checkpoint(fixture("reranker_idx.pth"));
  EXPECT_EQ(idx.int_lists.at("reranker_layer_idx"), (std::vector<int64_t>{0, 2}));
  const Checkpoint full = rwkv::io::load_checkpoint(fixture("reranker_full.pth"));
  EXPECT_FALSE(full.int_lists.count("reranker_layer_idx"));
}

TEST(CheckpointFixtures, NonContiguousTensorMatchesRawStorage) {
  RWKV_REQUIRE_FIXTURES();
  const auto& model = rwkv::test::expected()["model"];
  const auto& info = model["non_contiguous_tensor"];
  const std::string dtype = model["storage_dtype"];
  const Checkpoint ckpt = rwkv::io::load_checkpoint(fixture(model["file"]));
  const HostTensor& t = ckpt.at(info["key"]);
  ASSERT_EQ(t.shape, info["shape"].get<std::vector<int64_t>>());
  const auto stride = info["stride"].get<std::vector<int64_t>>();
  ASSERT_NE(stride, row_major_strides(t.shape));

  // Exactly one storage holds the tensor under the listed strides ...
  const auto found = matching_storages(model["file"], [&](const std::string& raw) {
    return raw.size() == static_cast<size_t>(t.numel()) * element_bytes(dtype) &&
           view_matches(t, raw, dtype, 0, stride);
  });
  ASSERT_EQ(found.size(), 1u);
  // ... and reading it row-major would give something else.
  const auto row_major = matching_storages(model["file"], [&](const std::string& raw) {
    return view_matches(t, raw, dtype, 0, row_major_strides(t.shape));
  });
  EXPECT_TRUE(row_major.empty());
}

TEST(CheckpointFixtures, SharedStorageViewsMatchRawStorage) {
  RWKV_REQUIRE_FIXTURES();
  const auto& model = rwkv::test::expected()["model"];
  const std::string dtype = model["storage_dtype"];
  const Checkpoint ckpt = rwkv::io::load_checkpoint(fixture(model["file"]));
  const auto& views = model["shared_storage_tensors"];
  ASSERT_GE(views.size(), 2u);
  for (const auto& view : views)
    EXPECT_EQ(ckpt.at(view["key"]).shape, view["shape"].get<std::vector<int64_t>>());
  const auto found = matching_storages(model["file"], [&](const std::string& raw) {
    for (const auto& view : views) {
      const HostTensor& t = ckpt.at(view["key"]);
      if (!view_matches(t, raw, dtype, view["storage_offset"], row_major_strides(t.shape)))
        return false;
    }
    return true;
  });
  EXPECT_EQ(found.size(), 1u);
  EXPECT_NE(ckpt.at(views[0]["key"]).data, ckpt.at(views[1]["key"]).data);
}

TEST(CheckpointFixtures, Bfloat16ConversionIsExact) {
  RWKV_REQUIRE_FIXTURES();
  const Checkpoint ckpt = rwkv::io::load_checkpoint(fixture("embedding.pth"));
  const HostTensor& emb = ckpt.at("rwkv.emb.weight");
  const auto found = matching_storages("embedding.pth", [&](const std::string& raw) {
    if (raw.size() != static_cast<size_t>(emb.numel()) * 2) return false;
    // A few spread-out elements, decoded by hand: bf16 is the top half of a float32.
    for (int64_t i :
         {int64_t{0}, int64_t{1}, int64_t{127}, int64_t{4097}, emb.numel() / 2, emb.numel() - 1}) {
      uint16_t bits;
      std::memcpy(&bits, raw.data() + 2 * i, 2);
      if (std::bit_cast<uint32_t>(emb.data[static_cast<size_t>(i)]) != uint32_t{bits} << 16)
        return false;
    }
    return true;
  });
  EXPECT_EQ(found.size(), 1u);
  for (const auto& [name, tensor] : ckpt.tensors)
    for (float v : tensor.data) {
      ASSERT_EQ(std::bit_cast<uint32_t>(v) & 0xffffu, 0u) << name << " is not bf16-exact";
      ASSERT_TRUE(std::isfinite(v)) << name;
    }
}

TEST(CheckpointFixtures, Float32TensorMatchesRawStorage) {
  RWKV_REQUIRE_FIXTURES();
  const Checkpoint ckpt = rwkv::io::load_checkpoint(fixture("reranker_full.pth"));
  const HostTensor& t = ckpt.at("reranker.head.0.weight");
  const auto found = matching_storages("reranker_full.pth", [&](const std::string& raw) {
    return raw.size() == static_cast<size_t>(t.numel()) * 4 &&
           view_matches(t, raw, "float32", 0, row_major_strides(t.shape));
  });
  EXPECT_EQ(found.size(), 1u);
}

TEST(CheckpointFixtures, MemoryAndFileLoadsAgree) {
  RWKV_REQUIRE_FIXTURES();
  const Checkpoint from_file = rwkv::io::load_checkpoint(fixture("reranker_idx.pth"));
  const Checkpoint from_memory = rwkv::io::load_checkpoint_from_memory(
      "reranker_idx.pth", read_file(fixture("reranker_idx.pth")));
  EXPECT_EQ(from_memory.path, "reranker_idx.pth");
  ASSERT_EQ(from_file.tensors.size(), from_memory.tensors.size());
  for (const auto& [name, tensor] : from_file.tensors) {
    EXPECT_EQ(tensor.shape, from_memory.at(name).shape) << name;
    EXPECT_EQ(tensor.data, from_memory.at(name).data) << name;
  }
  EXPECT_EQ(from_file.int_lists, from_memory.int_lists);
}

TEST(CheckpointFixtures, AtNamesTheFileForAMissingKey) {
  RWKV_REQUIRE_FIXTURES();
  const Checkpoint ckpt = rwkv::io::load_checkpoint(fixture("reranker_idx.pth"));
  EXPECT_TRUE(ckpt.has("reranker.emb.weight"));
  EXPECT_FALSE(ckpt.has("reranker.token.weight"));
  const std::string message =
      error_of([&] { ckpt.at("no.such.key"); }, fixture("reranker_idx.pth"));
  EXPECT_CONTAINS(message, "no.such.key");
}

// ---- hand-built .pth files -------------------------------------------------------------

TEST(CheckpointPth, HandBuiltArchiveWithViewsParameterAndIntList) {
  // Storage 0: six float16 values; storage 1: two bfloat16 values.
  const std::vector<uint16_t> halves = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00};
  const std::vector<float> half_values = {1.0f,     -2.0f, 65504.0f,
                                          0x1p-24f, -0.0f, std::numeric_limits<float>::infinity()};
  PickleWriter p;
  p.proto().op('}').mark();
  p.str("dense").tensor("HalfStorage", "0", 6, 0, {2, 3}, {3, 1});
  p.str("view").tensor("HalfStorage", "0", 6, 1, {2, 2}, {1, 3});  // offset + transpose
  p.str("param").global("torch._utils", "_rebuild_parameter");
  p.mark().tensor("BFloat16Storage", "1", 2, 0, {2}, {1}).op(0x89).ordered_dict().op('t').op('R');
  p.str("scalar").tensor("HalfStorage", "0", 6, 2, {}, {});
  p.str("idx").op(']').mark().integer(3).integer(-1).integer(int64_t{1} << 40).op('e');
  p.str("note").str("ignored");
  p.op('u').stop();
  const std::string bytes = make_zip({{"weird.prefix-1/data.pkl", p.bytes()},
                                      {"weird.prefix-1/data/0", u16_bytes(halves)},
                                      {"weird.prefix-1/data/1", u16_bytes({0x3f80, 0xc040})},
                                      {"weird.prefix-1/version", "3\n"},
                                      {"weird.prefix-1/byteorder", "little"}});
  const Checkpoint ckpt = rwkv::io::load_checkpoint_from_memory("hand.pth", bytes);

  ASSERT_EQ(ckpt.tensors.size(), 4u);
  EXPECT_EQ(ckpt.at("dense").shape, (std::vector<int64_t>{2, 3}));
  for (size_t i = 0; i < 6; ++i)
    EXPECT_TRUE(same_bits(ckpt.at("dense").data[i], half_values[i])) << i;
  // view[i][j] = storage[1 + i + 3j]
  const std::vector<float> view = {half_values[1], half_values[4], half_values[2], half_values[5]};
  EXPECT_EQ(ckpt.at("view").data, view);
  EXPECT_EQ(ckpt.at("param").data, (std::vector<float>{1.0f, -3.0f}));
  EXPECT_TRUE(ckpt.at("scalar").shape.empty());
  EXPECT_EQ(ckpt.at("scalar").data, (std::vector<float>{65504.0f}));
  EXPECT_EQ(ckpt.int_lists.at("idx"), (std::vector<int64_t>{3, -1, int64_t{1} << 40}));
  EXPECT_FALSE(ckpt.int_lists.count("note"));
}

TEST(CheckpointPth, StateDictWithMetadataAttribute) {
  // module.state_dict() is an OrderedDict carrying `_metadata`, set by BUILD.
  PickleWriter p;
  p.proto().ordered_dict().mark().str("w").tensor("FloatStorage", "0", 2, 0, {2}, {1}).op('u');
  p.op('}').str("_metadata").ordered_dict().str("").op('}').str("version").integer(1).op('s');
  p.op('s').op('s').op('b').stop();
  const std::string bytes =
      make_zip({{"archive/data.pkl", p.bytes()}, {"archive/data/0", floats_bytes({0.5f, -4.0f})}});
  const Checkpoint ckpt = rwkv::io::load_checkpoint_from_memory("sd.pth", bytes);
  EXPECT_EQ(ckpt.at("w").data, (std::vector<float>{0.5f, -4.0f}));
}

TEST(CheckpointErrors, MissingFileAndDirectory) {
  const std::string path = "/nonexistent-dir/missing.pth";
  EXPECT_CONTAINS(error_of([&] { rwkv::io::load_checkpoint(path); }, path), "cannot open");
  const std::string dir = std::filesystem::temp_directory_path().string();
  EXPECT_CONTAINS(error_of([&] { rwkv::io::load_checkpoint(dir); }, dir), "not a regular file");
  TempFile empty("empty.pth");
  const std::string empty_path = empty.write("");
  EXPECT_CONTAINS(error_of([&] { rwkv::io::load_checkpoint(empty_path); }, empty_path), "empty");
  EXPECT_CONTAINS(memory_error("nothing.pth", ""), "no data");
}

TEST(CheckpointErrors, TruncatedPth) {
  RWKV_REQUIRE_FIXTURES();
  const std::string bytes = read_file(fixture("reranker_idx.pth"));
  for (size_t keep : {size_t{1}, size_t{4}, size_t{30}, size_t{100}, size_t{5000}, bytes.size() / 2,
                      bytes.size() - 100, bytes.size() - 22, bytes.size() - 1}) {
    SCOPED_TRACE(keep);
    memory_error("reranker_idx.pth", bytes.substr(0, keep));
    TempFile file("truncated.pth");
    const std::string path = file.write(bytes.substr(0, keep));
    error_of([&] { rwkv::io::load_checkpoint(path); }, path);
  }
}

TEST(CheckpointErrors, CorruptedPickleBytesInArchive) {
  RWKV_REQUIRE_FIXTURES();
  const std::string bytes = read_file(fixture("reranker_idx.pth"));
  // The pickle follows its local header name; the zip CRC must catch flips.
  const size_t start = bytes.find("reranker_idx/data.pkl");
  ASSERT_NE(start, std::string::npos);
  const size_t pickle = bytes.find("\x80\x02", start);
  ASSERT_NE(pickle, std::string::npos);
  for (size_t offset : {size_t{0}, size_t{1}, size_t{2}, size_t{50}, size_t{777}, size_t{3000}}) {
    std::string corrupt = bytes;
    corrupt[pickle + offset] = static_cast<char>(corrupt[pickle + offset] ^ 0x5a);
    memory_error("reranker_idx.pth", corrupt);
  }
}

TEST(CheckpointErrors, NonWhitelistedGlobalsAreRejected) {
  const std::vector<std::string> programs = {
      PickleWriter()
          .proto()
          .global("os", "system")
          .str("echo pwned")
          .op(0x85)
          .op('R')
          .stop()
          .bytes(),
      PickleWriter().proto().str("builtins").str("eval").op(0x93).stop().bytes(),
      PickleWriter().proto().global("torch._utils", "_rebuild_tensor").stop().bytes(),
      PickleWriter().proto().global("torch", "Tensor").stop().bytes(),
  };
  const std::vector<std::string> names = {"os.system", "builtins.eval",
                                          "torch._utils._rebuild_tensor", "torch.Tensor"};
  for (size_t i = 0; i < programs.size(); ++i) {
    const std::string message =
        memory_error("evil.pth", make_zip({{"evil/data.pkl", programs[i]}}));
    EXPECT_CONTAINS(message, "'" + names[i] + "' is not allowed");
  }
}

TEST(CheckpointErrors, StorageTooSmallForTensorExtent) {
  const std::string data = floats_bytes({1, 2, 3, 4});
  EXPECT_CONTAINS(memory_error("small.pth", one_tensor_pth("FloatStorage", 4, data, 0, {8}, {1})),
                  "tensor 'w' storage 'm/data/0' has 16 bytes but offset+extent needs 32");
  EXPECT_CONTAINS(
      memory_error("small.pth", one_tensor_pth("FloatStorage", 4, data, 2, {2, 2}, {2, 1})),
      "needs 24");
  EXPECT_CONTAINS(memory_error("small.pth", one_tensor_pth("FloatStorage", 8, data, 0, {2}, {1})),
                  "has 16 bytes but 8 float32 elements are declared");
  EXPECT_CONTAINS(
      memory_error("huge.pth", one_tensor_pth("FloatStorage", 4, data, 0,
                                              {int64_t{1} << 40, int64_t{1} << 40}, {1, 1})),
      "overflows");
  // One element broadcast a billion times: far more output than storage.
  EXPECT_CONTAINS(
      memory_error("bomb.pth", one_tensor_pth("FloatStorage", 4, data, 0, {1 << 30}, {0})),
      "overlapping views");
  PickleWriter p;
  p.proto().op('}').str("w").tensor("FloatStorage", "7", 1, 0, {1}, {1}).op('s').stop();
  EXPECT_CONTAINS(memory_error("lost.pth", make_zip({{"m/data.pkl", p.bytes()}})),
                  "storage record 'm/data/7' is missing");
}

TEST(CheckpointErrors, UnsupportedDtype) {
  EXPECT_CONTAINS(memory_error("f64.pth", one_tensor_pth("DoubleStorage", 1, std::string(8, '\0'),
                                                         0, {1}, {1})),
                  "tensor 'w' has unsupported dtype float64");
  EXPECT_CONTAINS(
      memory_error("i64.pth", one_tensor_pth("LongStorage", 1, std::string(8, '\0'), 0, {1}, {1})),
      "unsupported dtype int64");
}

TEST(CheckpointErrors, MalformedPicklesAndArchives) {
  const auto pth = [](const std::string& program) { return make_zip({{"x/data.pkl", program}}); };
  EXPECT_CONTAINS(memory_error("op.pth", pth("\x80\x02\xff")), "opcode 0xff");
  EXPECT_CONTAINS(memory_error("op.pth", pth("\x80\x02\xff")), "offset 2");
  EXPECT_CONTAINS(memory_error("nostop.pth", pth("\x80\x02}")), "end of data");
  EXPECT_CONTAINS(memory_error("list.pth", pth("\x80\x02].")), "top-level object has type list");
  EXPECT_CONTAINS(memory_error("memo.pth", pth("\x80\x02j\xff\xff\xff\xff.")), "memo");
  EXPECT_CONTAINS(memory_error("str.pth", pth("\x80\x02X\xff\xff\xff\xff")), "past the end");
  EXPECT_CONTAINS(
      memory_error("long.pth", pth(std::string("\x80\x02\x8a\x09", 4) + std::string(9, 'x'))),
      "64 bits");
  EXPECT_CONTAINS(memory_error("under.pth", pth("\x80\x02(a.")), "underflow");
  EXPECT_CONTAINS(memory_error("key.pth", pth("\x80\x02}K\x01K\x02s.")), "key has type int");
  EXPECT_CONTAINS(memory_error("nopkl.pth", make_zip({{"x/version", "3"}})),
                  "no <prefix>/data.pkl");
  EXPECT_CONTAINS(memory_error("two.pth", make_zip({{"a/data.pkl", "}."}, {"b/data.pkl", "}."}})),
                  "ambiguous");
  EXPECT_CONTAINS(memory_error("big.pth", make_zip({{"x/data.pkl", "}."}, {"x/byteorder", "big"}})),
                  "byte order");
  EXPECT_CONTAINS(memory_error("legacy.pth", std::string("\x80\x02\x8a\x0a", 4) + "rest"),
                  "legacy");

  // Self-reference and very deep nesting are fine for an arena VM: no crash.
  memory_error("cycle.pth", pth("\x80\x02]q\x00h\x00"s + "a."));
  memory_error("deep.pth",
               pth("\x80\x02" + std::string(500000, ']') + std::string(499999, 'a') + "."));
  EXPECT_CONTAINS(memory_error("stack.pth", pth("\x80\x02" + std::string(1100000, ')'))), "stack");
}

// ---- safetensors -----------------------------------------------------------------------

std::string safetensors(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

TEST(CheckpointSafetensors, HandBuiltFileLoads) {
  // F16 at 0, BF16 at 8, then F32 at the unaligned offset 14.
  const std::string header = R"({"__metadata__":{"format":"pt"},
    "h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},
    "b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]},
    "f":{"dtype":"F32","shape":[2,3],"data_offsets":[14,38]},
    "s":{"dtype":"F32","shape":[],"data_offsets":[38,42]},
    "e":{"dtype":"F16","shape":[0,4],"data_offsets":[42,42]}})";
  const std::vector<float> f = {1.5f, -2.25f, 0.0f, 1e-30f, 3.0e38f, -7.0f};
  const std::string data = u16_bytes({0x3c00, 0xc000, 0x7bff, 0x0001}) +
                           u16_bytes({0x3f80, 0xc040, 0x4049}) + floats_bytes(f) +
                           floats_bytes({42.0f});
  const std::string bytes = safetensors(header, data);

  TempFile file("model.safetensors");
  const std::string path = file.write(bytes);
  for (const Checkpoint& ckpt : {rwkv::io::load_checkpoint_from_memory("model.safetensors", bytes),
                                 rwkv::io::load_checkpoint(path)}) {
    ASSERT_EQ(ckpt.tensors.size(), 5u);
    EXPECT_EQ(ckpt.at("h").shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(ckpt.at("h").data, (std::vector<float>{1.0f, -2.0f, 65504.0f, 0x1p-24f}));
    EXPECT_EQ(ckpt.at("b").data, (std::vector<float>{1.0f, -3.0f, 3.140625f}));
    EXPECT_EQ(ckpt.at("f").shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(ckpt.at("f").data, f);
    EXPECT_TRUE(ckpt.at("s").shape.empty());
    EXPECT_EQ(ckpt.at("s").data, (std::vector<float>{42.0f}));
    EXPECT_EQ(ckpt.at("e").shape, (std::vector<int64_t>{0, 4}));
    EXPECT_TRUE(ckpt.at("e").data.empty());
  }
}

// Found by fuzz_safetensors: an empty float32 tensor copied 0 bytes to a null
// pointer, undefined behaviour that the UBSan build of these tests reports.
TEST(CheckpointSafetensors, EmptyFloat32TensorLoads) {
  const std::string bytes =
      safetensors(R"({"e":{"dtype":"F32","shape":[3,0],"data_offsets":[0,0]}})", "");
  const Checkpoint ckpt = rwkv::io::load_checkpoint_from_memory("empty.safetensors", bytes);
  EXPECT_EQ(ckpt.at("e").shape, (std::vector<int64_t>{3, 0}));
  EXPECT_TRUE(ckpt.at("e").data.empty());
}

TEST(CheckpointSafetensors, MalformedFilesAreRejected) {
  const std::string name = "bad.safetensors";
  const auto one = [](const std::string& dtype, const std::string& shape,
                      const std::string& offsets) {
    return R"({"t":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" +
           offsets + "}}";
  };
  const std::string data(16, '\0');
  EXPECT_CONTAINS(memory_error(name, "abc"), "too short");
  EXPECT_CONTAINS(memory_error(name, le64(uint64_t{1} << 62) + "{}"), "exceeds the file size");
  EXPECT_CONTAINS(memory_error(name, le64(100) + "{}"), "exceeds the file size");
  EXPECT_CONTAINS(memory_error(name, safetensors("{\"t\": [1,", data)), "not valid JSON");
  EXPECT_CONTAINS(memory_error(name, safetensors("[1,2]", data)), "not a JSON object");
  EXPECT_CONTAINS(memory_error(name, safetensors(one("F32", "[4]", "[0,20]"), data)), "outside");
  EXPECT_CONTAINS(memory_error(name, safetensors(one("F32", "[1]", "[8,4]"), data)), "outside");
  EXPECT_CONTAINS(memory_error(name, safetensors(one("F32", "[3]", "[0,16]"), data)),
                  "needs 3 elements");
  EXPECT_CONTAINS(memory_error(name, safetensors(one("F32", "[-1]", "[0,4]"), data)), "negative");
  EXPECT_CONTAINS(memory_error(name, safetensors(one("F32", "[1.5]", "[0,4]"), data)),
                  "non-integer");
  EXPECT_CONTAINS(memory_error(name, safetensors(one("F64", "[2]", "[0,16]"), data)),
                  "unsupported dtype F64");
  EXPECT_CONTAINS(memory_error(name, safetensors(one("Q7", "[2]", "[0,16]"), data)),
                  "unknown dtype");
  EXPECT_CONTAINS(
      memory_error(name, safetensors(one("F32", "[4294967296,4294967296]", "[0,16]"), data)),
      "overflows");
  EXPECT_CONTAINS(memory_error(name, safetensors(R"({"t":{"dtype":"F32","shape":[2]}})", data)),
                  "lacks");
  EXPECT_CONTAINS(
      memory_error(name,
                   safetensors(R"({"t":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", data)),
      "dtype");
  EXPECT_CONTAINS(memory_error(name, safetensors(R"({"__metadata__":3})", data)), "__metadata__");
  EXPECT_CONTAINS(
      memory_error(name, safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                                                      "b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                     data)),
      "overlap");
  EXPECT_CONTAINS(
      memory_error(name, safetensors(std::string(100000, '[') + std::string(100000, ']'), data)),
      "nests too deeply");
}

// ---- fuzzing -------------------------------------------------------------------------

// Random flips, overwrites, truncations and insertions.
std::string mutate(const std::string& input, std::mt19937& rng) {
  std::string out = input;
  const auto pos = [&](size_t size) { return size ? rng() % size : 0; };
  switch (rng() % 4) {
    case 0:
      for (unsigned n = 1 + rng() % 4; n-- > 0 && !out.empty();)
        out[pos(out.size())] ^= 1 << (rng() % 8);
      break;
    case 1:  // a random 32-bit value over what may be a length or offset field
      if (out.size() >= 4) {
        const size_t at = pos(out.size() - 3);
        const uint32_t value = rng() % 2 ? rng() : rng() % 256;
        for (int i = 0; i < 4; ++i) out[at + i] = static_cast<char>(value >> (8 * i));
      }
      break;
    case 2:
      out.resize(pos(out.size()));
      break;
    default: {
      std::string extra(1 + rng() % 8, '\0');
      for (char& c : extra) c = static_cast<char>(rng());
      out.insert(pos(out.size() + 1), extra);
    }
  }
  return out;
}

// Loads or throws CheckpointError; anything else (or a crash) fails the test.
void expect_load_or_checkpoint_error(const std::string& name, const std::string& bytes,
                                     int& loaded) {
  try {
    rwkv::io::load_checkpoint_from_memory(name, bytes);
    ++loaded;
  } catch (const CheckpointError& e) {
    ASSERT_TRUE(std::string(e.what()).starts_with(name + ":")) << e.what();
  } catch (const std::exception& e) {
    FAIL() << "unexpected exception type: " << e.what();
  }
}

TEST(CheckpointFuzz, MutatedArchiveBytes) {
  RWKV_REQUIRE_FIXTURES();
  const std::string bytes = read_file(fixture("reranker_idx.pth"));
  std::mt19937 rng(20240601);
  int loaded = 0;
  for (int i = 0; i < 300; ++i) {
    SCOPED_TRACE(i);
    expect_load_or_checkpoint_error("fuzz.pth", mutate(bytes, rng), loaded);
  }
  RecordProperty("loaded", loaded);
}

// The zip CRC rejects raw flips inside data.pkl, so mutate the pickle itself
// and re-zip it to exercise the pickle VM and the tensor validation.
TEST(CheckpointFuzz, MutatedPickleInValidArchive) {
  RWKV_REQUIRE_FIXTURES();
  const ZipArchive original = ZipArchive::open_file(fixture("reranker_idx.pth"));
  Entries entries;
  size_t pickle_index = 0;
  for (const std::string& name : original.names()) {
    if (name.ends_with("/data.pkl")) pickle_index = entries.size();
    entries.emplace_back(name, original.read(name, uint64_t{1} << 30));
  }
  const std::string program = entries[pickle_index].second;
  std::mt19937 rng(7);
  int loaded = 0;
  for (int i = 0; i < 300; ++i) {
    SCOPED_TRACE(i);
    entries[pickle_index].second = mutate(program, rng);
    expect_load_or_checkpoint_error("fuzz.pth", make_zip(entries), loaded);
  }
  RecordProperty("loaded", loaded);
}

TEST(CheckpointFuzz, MutatedSafetensors) {
  const std::string bytes = safetensors(
      R"({"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
      std::string(16, '\x3c'));
  int loaded = 0;
  expect_load_or_checkpoint_error("fuzz.safetensors", bytes, loaded);
  ASSERT_EQ(loaded, 1);
  std::mt19937 rng(99);
  for (int i = 0; i < 300; ++i) {
    SCOPED_TRACE(i);
    expect_load_or_checkpoint_error("fuzz.safetensors", mutate(bytes, rng), loaded);
  }
}

}  // namespace
