// Checkpoint loading from the golden .pth fixtures, checked against their raw
// storage bytes, read independently of the pickle. Hand-built files:
// test_checkpoint_pth.cpp and test_checkpoint_safetensors.cpp; hostile inputs
// at random: test_checkpoint_fuzz.cpp.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tests/io/checkpoint_test_helpers.h"

namespace {

using namespace rwkv::test;

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

}  // namespace
