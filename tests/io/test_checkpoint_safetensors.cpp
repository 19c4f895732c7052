// Hand-built safetensors files: every dtype loads at any offset; malformed
// headers and data are refused with a CheckpointError naming the file.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/io/checkpoint_test_helpers.h"

namespace {

using namespace rwkv::test;

// ---- safetensors -----------------------------------------------------------------------

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

}  // namespace
