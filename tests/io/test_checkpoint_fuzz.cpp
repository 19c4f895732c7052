// A small deterministic fuzz run over the loaders: mutated archives, pickles
// and safetensors files either load or throw a CheckpointError, nothing else.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/io/checkpoint_test_helpers.h"

namespace {

using namespace rwkv::test;

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
