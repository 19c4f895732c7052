// The state blob format (docs/state-format.md): exact float32 round trips,
// half-size dtypes within their rounding, every malformed blob refused with
// the right kind, the model fingerprint and the hash helpers. Reranking
// through blobs with the model is in tests/model/test_state_blob_rerank.cpp.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>

#include "engine/common/dtype.h"
#include "engine/io/fingerprint.h"
#include "engine/io/random_model.h"
#include "engine/states/state_blob.h"

namespace rwkv {
namespace {

constexpr states::StateShape kShape{2, 2, 128};

states::SequenceState random_state(states::StateShape s, uint32_t seed, float scale = 3.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  states::SequenceState st;
  st.shift.resize(size_t(s.layers) * 2 * s.channels);
  st.wkv.resize(size_t(s.layers) * s.heads * 64 * 64);
  for (float& x : st.shift) x = d(rng);
  for (float& x : st.wkv) x = d(rng);
  return st;
}

io::ModelFingerprint fingerprint(uint8_t fill) {
  io::ModelFingerprint f;
  f.bytes.fill(fill);
  return f;
}

void put_u32(std::string& b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, 4); }
void put_u16(std::string& b, size_t off, uint16_t v) { std::memcpy(b.data() + off, &v, 2); }
void put_u64(std::string& b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, 8); }
// Recomputes the trailing CRC, so only the edited field is wrong.
void reseal(std::string& b) {
  const size_t body = b.size() - 4;
  put_u32(b, body, states::crc32_of(std::string_view(b.data(), body)));
}

states::StateBlobError::Kind refusal(std::string_view blob,
                                     const io::ModelFingerprint& f = fingerprint(7),
                                     states::StateShape shape = kShape) {
  try {
    states::decode_state(blob, f, shape);
  } catch (const states::StateBlobError& e) {
    EXPECT_GT(std::strlen(e.what()), 20u);
    return e.kind();
  }
  ADD_FAILURE() << "blob accepted";
  return states::StateBlobError::Kind::kMalformed;
}

TEST(StateBlob, Float32RoundTripIsExact) {
  const states::SequenceState st = random_state(kShape, 1);
  const std::string blob =
      states::encode_state(st, fingerprint(7), kShape, states::StateDtype::kFloat32, 1234);
  EXPECT_EQ(blob.size(), states::state_blob_size(kShape, states::StateDtype::kFloat32));
  EXPECT_EQ(blob.size(), 64 + (2 * 2 * 128 + 2 * 2 * 64 * 64) * 4 + 4);
  EXPECT_EQ(blob.substr(0, 8), "RWKVSTAT");
  states::StateBlobInfo info;
  const states::SequenceState back = states::decode_state(blob, fingerprint(7), kShape, &info);
  EXPECT_EQ(back.shift, st.shift);
  EXPECT_EQ(back.wkv, st.wkv);
  EXPECT_EQ(info.tokens, 1234u);
  EXPECT_EQ(info.shape, kShape);
  EXPECT_EQ(info.dtype, states::StateDtype::kFloat32);
  EXPECT_EQ(info.fingerprint, fingerprint(7));
  EXPECT_EQ(info.bytes, blob.size());
}

TEST(StateBlob, HalfDtypesHalveTheSizeWithinTheirRounding) {
  const states::SequenceState st = random_state(kShape, 2);
  const size_t f32 = states::state_blob_size(kShape, states::StateDtype::kFloat32);
  for (auto [dtype, rel] : {std::pair{states::StateDtype::kFloat16, 1.0 / 2048},
                            std::pair{states::StateDtype::kBfloat16, 1.0 / 256}}) {
    const std::string blob = states::encode_state(st, fingerprint(7), kShape, dtype, 5);
    EXPECT_EQ(blob.size() - 68, (f32 - 68) / 2) << states::state_dtype_name(dtype);
    const states::SequenceState back = states::decode_state(blob, fingerprint(7), kShape);
    double worst = 0;
    for (size_t i = 0; i < st.wkv.size(); ++i)
      worst = std::max(worst, std::abs(double(back.wkv[i]) - st.wkv[i]) /
                                  std::max(1e-3, double(std::abs(st.wkv[i]))));
    EXPECT_LE(worst, rel) << states::state_dtype_name(dtype);
  }
}

TEST(StateBlob, HalfStorageSaturatesInsteadOfOverflowing) {
  states::SequenceState st = random_state(kShape, 3);
  st.wkv[0] = 1e6f;
  st.wkv[1] = -1e6f;
  const states::SequenceState back = states::decode_state(
      states::encode_state(st, fingerprint(7), kShape, states::StateDtype::kFloat16, 0),
      fingerprint(7), kShape);
  EXPECT_EQ(back.wkv[0], 65504.0f);
  EXPECT_EQ(back.wkv[1], -65504.0f);
}

// The 0.1B shape: int8 takes 0.27x the float32 bytes (the bound: 0.30x).
TEST(StateBlob, Int8IsAQuarterOfFloat32) {
  const states::StateShape base{12, 12, 768};
  EXPECT_EQ(states::state_blob_size(base, states::StateDtype::kFloat32), 2433092u);
  EXPECT_EQ(states::state_blob_size(base, states::StateDtype::kFloat16), 1216580u);
  // 24 shift rows + 12*12*64 WKV rows, a float32 absmax each, then a byte a value.
  EXPECT_EQ(states::state_blob_size(base, states::StateDtype::kInt8),
            68u + 9240 * 4 + 18432 + 589824);
  EXPECT_LE(double(states::state_blob_size(base, states::StateDtype::kInt8)),
            0.30 * double(states::state_blob_size(base, states::StateDtype::kFloat32)));
}

// Every value within half a step (absmax/254) of its row; the largest of
// each row exact; decoding and encoding again give the same bytes.
TEST(StateBlob, Int8RoundTripIsWithinHalfAStepAndCanonical) {
  states::SequenceState st = random_state(kShape, 11);
  std::fill(st.wkv.begin() + 64, st.wkv.begin() + 128, 0.0f);         // an all-zero row
  std::fill(st.wkv.begin() + 128, st.wkv.begin() + 192, 1e-38f);      // below 2^-119: zeros
  std::fill(st.wkv.begin() + 192, st.wkv.begin() + 256, -0x1p-119f);  // just at the limit
  const std::string blob =
      states::encode_state(st, fingerprint(7), kShape, states::StateDtype::kInt8, 9);
  EXPECT_EQ(blob.size(), states::state_blob_size(kShape, states::StateDtype::kInt8));
  EXPECT_EQ(blob[8], 2);  // int8 needs format version 2
  states::StateBlobInfo info;
  const states::SequenceState back = states::decode_state(blob, fingerprint(7), kShape, &info);
  EXPECT_EQ(info.dtype, states::StateDtype::kInt8);
  EXPECT_EQ(info.tokens, 9u);
  const auto check_rows = [](const std::vector<float>& want, const std::vector<float>& got,
                             size_t row) {
    for (size_t r = 0; r * row < want.size(); ++r) {
      float absmax = 0;
      for (size_t i = 0; i < row; ++i) absmax = std::max(absmax, std::abs(want[r * row + i]));
      if (absmax < 0x1p-119f) absmax = 0;
      for (size_t i = 0; i < row; ++i) {
        const float w = want[r * row + i], g = got[r * row + i];
        if (absmax == 0) {
          ASSERT_EQ(g, 0.0f) << "row " << r;
        } else {
          ASSERT_LE(std::abs(double(g) - w), absmax / 254.0 * (1 + 1e-6)) << "row " << r;
          if (std::abs(w) == absmax) {
            ASSERT_EQ(std::abs(g), absmax) << "row " << r;
          }
        }
      }
    }
  };
  check_rows(st.shift, back.shift, kShape.channels);
  check_rows(st.wkv, back.wkv, 64);
  EXPECT_EQ(states::encode_state(back, fingerprint(7), kShape, states::StateDtype::kInt8, 9), blob);
  for (uint32_t seed = 12; seed < 40; ++seed) {  // other magnitudes
    const states::SequenceState other =
        random_state(kShape, seed, std::ldexp(1.0f, int(seed) - 26));
    const std::string b =
        states::encode_state(other, fingerprint(7), kShape, states::StateDtype::kInt8, 0);
    ASSERT_EQ(states::encode_state(states::decode_state(b, fingerprint(7), kShape), fingerprint(7),
                                   kShape, states::StateDtype::kInt8, 0),
              b)
        << "seed " << seed;
  }
}

// int8 rows that encode_state cannot write are refused, even with a valid checksum.
TEST(StateBlob, NonCanonicalInt8RowsAreRefused) {
  const std::string blob = states::encode_state(random_state(kShape, 13), fingerprint(7), kShape,
                                                states::StateDtype::kInt8, 0);
  const size_t rows = 2 * 2 + 2 * 2 * 64, scales = 64, values = 64 + rows * 4;
  const auto edited = [&](auto edit) {
    std::string b = blob;
    edit(b);
    reseal(b);
    return b;
  };
  const auto set_scale = [](std::string& b, size_t row, float v) {
    std::memcpy(b.data() + scales + 4 * row, &v, 4);
  };
  // Row 0 is shift row 0 (C values); row 4 is the first WKV row (64 values).
  const size_t wkv_row0 = values + 2 * 2 * 128;
  for (float bad : {-1.0f, float(NAN), float(INFINITY), 1e-38f, 1e-44f})
    EXPECT_EQ(refusal(edited([&](std::string& b) { set_scale(b, 4, bad); })),
              states::StateBlobError::Kind::kMalformed)
        << bad;
  EXPECT_EQ(refusal(edited([&](std::string& b) { b[wkv_row0 + 3] = char(-128); })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([&](std::string& b) {  // no ±127 left in the row
              for (size_t i = 0; i < 64; ++i)
                b[wkv_row0 + i] = char(std::clamp(int(int8_t(b[wkv_row0 + i])), -126, 126));
            })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([&](std::string& b) { set_scale(b, 0, 0.0f); })),  // 0 with values
            states::StateBlobError::Kind::kMalformed);
  // int8 does not exist in version 1.
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u16(b, 8, 1); })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_NO_THROW(states::decode_state(edited([](std::string&) {}), fingerprint(7), kShape));
}

// A version 1 blob built by hand, as servers before int8 wrote it, still
// loads; float blobs are still written as version 1, and as version 2 they load too.
TEST(StateBlob, Version1BlobsStillLoad) {
  const states::SequenceState st = random_state(kShape, 14);
  std::string v1(64, '\0');
  std::memcpy(v1.data(), "RWKVSTAT", 8);
  put_u16(v1, 8, 1);
  put_u16(v1, 10, 64);
  put_u32(v1, 12, 0);
  std::memset(v1.data() + 16, 7, 16);
  put_u32(v1, 32, kShape.layers);
  put_u32(v1, 36, kShape.heads);
  put_u32(v1, 40, kShape.channels);
  put_u32(v1, 44, 64);
  put_u64(v1, 48, 5);
  put_u64(v1, 56, (st.shift.size() + st.wkv.size()) * 4);
  v1.append(reinterpret_cast<const char*>(st.shift.data()), st.shift.size() * 4);
  v1.append(reinterpret_cast<const char*>(st.wkv.data()), st.wkv.size() * 4);
  v1.append(4, '\0');
  reseal(v1);
  const states::SequenceState back = states::decode_state(v1, fingerprint(7), kShape);
  EXPECT_EQ(back.shift, st.shift);
  EXPECT_EQ(back.wkv, st.wkv);
  EXPECT_EQ(states::encode_state(st, fingerprint(7), kShape, states::StateDtype::kFloat32, 5), v1);
  std::string v2 = v1;
  put_u16(v2, 8, 2);
  reseal(v2);
  EXPECT_EQ(states::decode_state(v2, fingerprint(7), kShape).wkv, st.wkv);
  put_u16(v2, 8, 3);
  reseal(v2);
  EXPECT_EQ(refusal(v2), states::StateBlobError::Kind::kMalformed);
}

TEST(StateBlob, ConversionBetweenDtypes) {
  const states::SequenceState st = random_state(kShape, 15);
  const std::string f32 =
      states::encode_state(st, fingerprint(9), kShape, states::StateDtype::kFloat32, 3);
  EXPECT_EQ(states::convert_state_blob(f32, states::StateDtype::kFloat32), f32);
  for (states::StateDtype dtype :
       {states::StateDtype::kFloat16, states::StateDtype::kBfloat16, states::StateDtype::kInt8}) {
    const std::string to = states::convert_state_blob(f32, dtype);
    EXPECT_EQ(to, states::encode_state(st, fingerprint(9), kShape, dtype, 3))
        << states::state_dtype_name(dtype);
    // Back to float32: the values the smaller dtype holds, exactly.
    EXPECT_EQ(states::decode_state(states::convert_state_blob(to, states::StateDtype::kFloat32),
                                   fingerprint(9), kShape)
                  .wkv,
              states::decode_state(to, fingerprint(9), kShape).wkv);
  }
  std::string bad = f32;
  bad[100] ^= 1;
  EXPECT_THROW(states::convert_state_blob(bad, states::StateDtype::kInt8), states::StateBlobError);
}

TEST(StateBlob, TruncatedAndOversizedBlobsAreRefused) {
  const std::string blob = states::encode_state(random_state(kShape, 4), fingerprint(7), kShape,
                                                states::StateDtype::kFloat32, 0);
  for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(40), size_t(63), size_t(64),
                   size_t(67), size_t(1000), blob.size() - 4, blob.size() - 1})
    EXPECT_EQ(refusal(blob.substr(0, n)), states::StateBlobError::Kind::kMalformed)
        << n << " bytes";
  EXPECT_EQ(refusal(blob + "x"), states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(blob + blob), states::StateBlobError::Kind::kMalformed);
  try {
    states::decode_state(blob.substr(0, 1000), fingerprint(7), kShape);
  } catch (const states::StateBlobError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(StateBlob, TheHeaderIsReadFromItsOwnBytes) {
  // The disk store reads only a file's first kStateHeaderBytes to list it.
  const std::string blob = states::encode_state(random_state(kShape, 4), fingerprint(7), kShape,
                                                states::StateDtype::kFloat16, 5);
  const states::StateBlobInfo info =
      states::read_state_header(blob.substr(0, states::kStateHeaderBytes));
  EXPECT_EQ(info.bytes, blob.size());
  EXPECT_EQ(info.tokens, 5u);
  EXPECT_EQ(info.dtype, states::StateDtype::kFloat16);
  try {
    states::read_state_header(blob.substr(0, states::kStateHeaderBytes - 1));
    ADD_FAILURE() << "a header one byte short was read";
  } catch (const states::StateBlobError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated: 63 bytes, shorter than the 64-byte header"),
              std::string::npos)
        << e.what();
  }
}

TEST(StateBlob, CorruptedBytesAreRefused) {
  const std::string blob = states::encode_state(random_state(kShape, 5), fingerprint(7), kShape,
                                                states::StateDtype::kFloat16, 0);
  for (size_t at : {size_t(3), size_t(20), size_t(50), size_t(64), blob.size() / 2, blob.size() - 5,
                    blob.size() - 1}) {
    std::string bad = blob;
    bad[at] ^= 0x10;
    EXPECT_EQ(refusal(bad), states::StateBlobError::Kind::kMalformed) << "byte " << at;
  }
  try {
    std::string bad = blob;
    bad[blob.size() / 2] ^= 1;
    states::decode_state(bad, fingerprint(7), kShape);
  } catch (const states::StateBlobError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
}

TEST(StateBlob, BadHeaderFieldsAreRefusedEvenWithAValidChecksum) {
  const std::string blob = states::encode_state(random_state(kShape, 6), fingerprint(7), kShape,
                                                states::StateDtype::kFloat32, 0);
  const auto edited = [&](auto edit) {
    std::string b = blob;
    edit(b);
    reseal(b);
    return b;
  };
  EXPECT_EQ(refusal(edited([](std::string& b) { b[0] = 'X'; })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u16(b, 8, 3); })),  // not yet
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u16(b, 8, 0); })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u16(b, 10, 128); })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 12, 9); })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 32, 0); })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 44, 32); })),
            states::StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u64(b, 56, 12); })),
            states::StateBlobError::Kind::kMalformed);
  // Shape fields that disagree with the payload size.
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 32, 3); })),
            states::StateBlobError::Kind::kMalformed);
  // dtype float16 on float32 data: sizes disagree.
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 12, 1); })),
            states::StateBlobError::Kind::kMalformed);
  // Non-finite values.
  EXPECT_EQ(refusal(edited([](std::string& b) {
              const float nan = NAN;
              std::memcpy(b.data() + 64 + 8, &nan, 4);
            })),
            states::StateBlobError::Kind::kMalformed);
}

TEST(StateBlob, AnotherShapeOrModelIsRefusedWithItsOwnKind) {
  const states::StateShape other{3, 2, 128};
  const std::string blob = states::encode_state(random_state(other, 7), fingerprint(7), other,
                                                states::StateDtype::kFloat32, 0);
  EXPECT_EQ(refusal(blob), states::StateBlobError::Kind::kShape);
  const std::string mine = states::encode_state(random_state(kShape, 7), fingerprint(8), kShape,
                                                states::StateDtype::kFloat32, 0);
  EXPECT_EQ(refusal(mine), states::StateBlobError::Kind::kModel);
  EXPECT_NO_THROW(states::inspect_state_blob(mine));  // valid as a blob, just not for this model
}

TEST(StateBlob, EncodeChecksTheStateSizes) {
  states::SequenceState st = random_state(kShape, 8);
  st.wkv.pop_back();
  EXPECT_THROW(states::encode_state(st, fingerprint(7), kShape, states::StateDtype::kFloat32, 0),
               std::invalid_argument);
}

TEST(StateBlob, FingerprintCoversNamesShapesAndEveryValue) {
  const io::ModelShape demo = io::ModelShape::demo();
  const io::Checkpoint a = io::make_random_embedding_checkpoint(demo, 1);
  const io::ModelFingerprint fa = io::model_fingerprint(a);
  EXPECT_EQ(fa, io::model_fingerprint(io::make_random_embedding_checkpoint(demo, 1)));
  EXPECT_NE(fa, io::model_fingerprint(io::make_random_embedding_checkpoint(demo, 2)));
  EXPECT_EQ(fa.hex().size(), 32u);

  io::Checkpoint b = a;
  b.tensors.begin()->second.data.back() += 1e-6f;  // one value of one tensor
  EXPECT_NE(fa, io::model_fingerprint(b));
  b = a;
  auto node = b.tensors.extract("rwkv.ln_out.bias");
  node.key() = "rwkv.ln_out.bias2";
  b.tensors.insert(std::move(node));
  EXPECT_NE(fa, io::model_fingerprint(b));
  b = a;
  auto& t = b.tensors.at("rwkv.blocks.0.att.r_k");
  std::swap(t.shape[0], t.shape[1]);
  EXPECT_NE(fa, io::model_fingerprint(b));
}

TEST(StateBlob, Crc32IsZlibs) {
  EXPECT_EQ(states::crc32_of("123456789"), 0xCBF43926u);
  EXPECT_EQ(states::crc32_of(""), 0u);
  EXPECT_EQ(states::crc32_of("6789", states::crc32_of("12345")), 0xCBF43926u);
}

TEST(StateBlob, HalfAndBfloat16RoundToNearestEven) {
  EXPECT_EQ(common::float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(common::float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(common::float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(common::float_to_half(65520.0f), 0x7c00);  // rounds up to Inf (encode_state saturates)
  EXPECT_EQ(common::float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(common::float_to_half(std::ldexp(1.0f, -25)), 0x0000);         // tie: to even
  EXPECT_EQ(common::float_to_half(std::ldexp(3.0f, -26)), 0x0001);         // above the tie
  EXPECT_EQ(common::float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie: to even
  EXPECT_EQ(common::float_to_half(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie: to even (up)
  EXPECT_EQ(common::float_to_half(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(common::half_to_float(common::float_to_half(NAN))));
  for (uint32_t h = 0; h < 0x10000; ++h) {  // every half survives the round trip
    const float f = common::half_to_float(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(common::float_to_half(f), h) << h;
  }
  EXPECT_EQ(common::float_to_bfloat16(1.0f), 0x3f80);
  EXPECT_EQ(common::float_to_bfloat16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie: to even
  EXPECT_EQ(common::float_to_bfloat16(std::bit_cast<float>(0x3f818000u)),
            0x3f82);  // tie: to even (up)
  EXPECT_EQ(common::float_to_bfloat16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(common::bfloat16_to_float(common::float_to_bfloat16(NAN))));
}

}  // namespace
}  // namespace rwkv
