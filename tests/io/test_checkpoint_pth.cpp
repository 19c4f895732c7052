// Hand-built .pth files: views, parameters and int lists load; missing,
// truncated, corrupted and hostile files are refused with a CheckpointError
// naming the file.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/io/checkpoint_test_helpers.h"

namespace {

using namespace rwkv::test;

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

}  // namespace
