// The state blob format (docs/state-format.md): exact float32 round trips,
// half-size dtypes within their rounding, every malformed blob refused with
// the right kind, the model fingerprint, the hash helpers, and offline
// reranking through blobs against the fixture's expectations.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "engine/pth_loader.h"
#include "engine/random_model.h"
#include "engine/state_blob.h"
#include "engine/templates.h"
#include "engine/tokenizer.h"
#include "tests/fixture_data.h"

namespace rwkv {
namespace {

constexpr StateShape kShape{2, 2, 128};

SequenceState random_state(StateShape s, uint32_t seed, float scale = 3.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  SequenceState st;
  st.shift.resize(size_t(s.layers) * 2 * s.channels);
  st.wkv.resize(size_t(s.layers) * s.heads * 64 * 64);
  for (float& x : st.shift) x = d(rng);
  for (float& x : st.wkv) x = d(rng);
  return st;
}

ModelFingerprint fingerprint(uint8_t fill) {
  ModelFingerprint f;
  f.bytes.fill(fill);
  return f;
}

void put_u32(std::string& b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, 4); }
void put_u16(std::string& b, size_t off, uint16_t v) { std::memcpy(b.data() + off, &v, 2); }
void put_u64(std::string& b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, 8); }
// Recomputes the trailing CRC, so only the edited field is wrong.
void reseal(std::string& b) {
  const size_t body = b.size() - 4;
  put_u32(b, body, crc32_of(std::string_view(b.data(), body)));
}

StateBlobError::Kind refusal(std::string_view blob, const ModelFingerprint& f = fingerprint(7),
                             StateShape shape = kShape) {
  try {
    decode_state(blob, f, shape);
  } catch (const StateBlobError& e) {
    EXPECT_GT(std::strlen(e.what()), 20u);
    return e.kind();
  }
  ADD_FAILURE() << "blob accepted";
  return StateBlobError::Kind::kMalformed;
}

TEST(StateBlob, Float32RoundTripIsExact) {
  const SequenceState st = random_state(kShape, 1);
  const std::string blob = encode_state(st, fingerprint(7), kShape, StateDtype::kFloat32, 1234);
  EXPECT_EQ(blob.size(), state_blob_size(kShape, StateDtype::kFloat32));
  EXPECT_EQ(blob.size(), 64 + (2 * 2 * 128 + 2 * 2 * 64 * 64) * 4 + 4);
  EXPECT_EQ(blob.substr(0, 8), "RWKVSTAT");
  StateBlobInfo info;
  const SequenceState back = decode_state(blob, fingerprint(7), kShape, &info);
  EXPECT_EQ(back.shift, st.shift);
  EXPECT_EQ(back.wkv, st.wkv);
  EXPECT_EQ(info.tokens, 1234u);
  EXPECT_EQ(info.shape, kShape);
  EXPECT_EQ(info.dtype, StateDtype::kFloat32);
  EXPECT_EQ(info.fingerprint, fingerprint(7));
  EXPECT_EQ(info.bytes, blob.size());
}

TEST(StateBlob, HalfDtypesHalveTheSizeWithinTheirRounding) {
  const SequenceState st = random_state(kShape, 2);
  const size_t f32 = state_blob_size(kShape, StateDtype::kFloat32);
  for (auto [dtype, rel] :
       {std::pair{StateDtype::kFloat16, 1.0 / 2048}, std::pair{StateDtype::kBfloat16, 1.0 / 256}}) {
    const std::string blob = encode_state(st, fingerprint(7), kShape, dtype, 5);
    EXPECT_EQ(blob.size() - 68, (f32 - 68) / 2) << state_dtype_name(dtype);
    const SequenceState back = decode_state(blob, fingerprint(7), kShape);
    double worst = 0;
    for (size_t i = 0; i < st.wkv.size(); ++i)
      worst = std::max(worst, std::abs(double(back.wkv[i]) - st.wkv[i]) /
                                  std::max(1e-3, double(std::abs(st.wkv[i]))));
    EXPECT_LE(worst, rel) << state_dtype_name(dtype);
  }
}

TEST(StateBlob, HalfStorageSaturatesInsteadOfOverflowing) {
  SequenceState st = random_state(kShape, 3);
  st.wkv[0] = 1e6f;
  st.wkv[1] = -1e6f;
  const SequenceState back = decode_state(
      encode_state(st, fingerprint(7), kShape, StateDtype::kFloat16, 0), fingerprint(7), kShape);
  EXPECT_EQ(back.wkv[0], 65504.0f);
  EXPECT_EQ(back.wkv[1], -65504.0f);
}

TEST(StateBlob, TruncatedAndOversizedBlobsAreRefused) {
  const std::string blob =
      encode_state(random_state(kShape, 4), fingerprint(7), kShape, StateDtype::kFloat32, 0);
  for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(40), size_t(63), size_t(64),
                   size_t(67), size_t(1000), blob.size() - 4, blob.size() - 1})
    EXPECT_EQ(refusal(blob.substr(0, n)), StateBlobError::Kind::kMalformed) << n << " bytes";
  EXPECT_EQ(refusal(blob + "x"), StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(blob + blob), StateBlobError::Kind::kMalformed);
  try {
    decode_state(blob.substr(0, 1000), fingerprint(7), kShape);
  } catch (const StateBlobError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(StateBlob, CorruptedBytesAreRefused) {
  const std::string blob =
      encode_state(random_state(kShape, 5), fingerprint(7), kShape, StateDtype::kFloat16, 0);
  for (size_t at : {size_t(3), size_t(20), size_t(50), size_t(64), blob.size() / 2, blob.size() - 5,
                    blob.size() - 1}) {
    std::string bad = blob;
    bad[at] ^= 0x10;
    EXPECT_EQ(refusal(bad), StateBlobError::Kind::kMalformed) << "byte " << at;
  }
  try {
    std::string bad = blob;
    bad[blob.size() / 2] ^= 1;
    decode_state(bad, fingerprint(7), kShape);
  } catch (const StateBlobError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
}

TEST(StateBlob, BadHeaderFieldsAreRefusedEvenWithAValidChecksum) {
  const std::string blob =
      encode_state(random_state(kShape, 6), fingerprint(7), kShape, StateDtype::kFloat32, 0);
  const auto edited = [&](auto edit) {
    std::string b = blob;
    edit(b);
    reseal(b);
    return b;
  };
  EXPECT_EQ(refusal(edited([](std::string& b) { b[0] = 'X'; })), StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u16(b, 8, 2); })),
            StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u16(b, 10, 128); })),
            StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 12, 9); })),
            StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 32, 0); })),
            StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 44, 32); })),
            StateBlobError::Kind::kMalformed);
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u64(b, 56, 12); })),
            StateBlobError::Kind::kMalformed);
  // Shape fields that disagree with the payload size.
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 32, 3); })),
            StateBlobError::Kind::kMalformed);
  // dtype float16 on float32 data: sizes disagree.
  EXPECT_EQ(refusal(edited([](std::string& b) { put_u32(b, 12, 1); })),
            StateBlobError::Kind::kMalformed);
  // Non-finite values.
  EXPECT_EQ(refusal(edited([](std::string& b) {
              const float nan = NAN;
              std::memcpy(b.data() + 64 + 8, &nan, 4);
            })),
            StateBlobError::Kind::kMalformed);
}

TEST(StateBlob, AnotherShapeOrModelIsRefusedWithItsOwnKind) {
  const StateShape other{3, 2, 128};
  const std::string blob =
      encode_state(random_state(other, 7), fingerprint(7), other, StateDtype::kFloat32, 0);
  EXPECT_EQ(refusal(blob), StateBlobError::Kind::kShape);
  const std::string mine =
      encode_state(random_state(kShape, 7), fingerprint(8), kShape, StateDtype::kFloat32, 0);
  EXPECT_EQ(refusal(mine), StateBlobError::Kind::kModel);
  EXPECT_NO_THROW(inspect_state_blob(mine));  // valid as a blob, just not for this model
}

TEST(StateBlob, EncodeChecksTheStateSizes) {
  SequenceState st = random_state(kShape, 8);
  st.wkv.pop_back();
  EXPECT_THROW(encode_state(st, fingerprint(7), kShape, StateDtype::kFloat32, 0),
               std::invalid_argument);
}

TEST(StateBlob, FingerprintCoversNamesShapesAndEveryValue) {
  const ModelShape demo = ModelShape::demo();
  const Checkpoint a = make_random_embedding_checkpoint(demo, 1);
  const ModelFingerprint fa = model_fingerprint(a);
  EXPECT_EQ(fa, model_fingerprint(make_random_embedding_checkpoint(demo, 1)));
  EXPECT_NE(fa, model_fingerprint(make_random_embedding_checkpoint(demo, 2)));
  EXPECT_EQ(fa.hex().size(), 32u);

  Checkpoint b = a;
  b.tensors.begin()->second.data.back() += 1e-6f;  // one value of one tensor
  EXPECT_NE(fa, model_fingerprint(b));
  b = a;
  auto node = b.tensors.extract("rwkv.ln_out.bias");
  node.key() = "rwkv.ln_out.bias2";
  b.tensors.insert(std::move(node));
  EXPECT_NE(fa, model_fingerprint(b));
  b = a;
  auto& t = b.tensors.at("rwkv.blocks.0.att.r_k");
  std::swap(t.shape[0], t.shape[1]);
  EXPECT_NE(fa, model_fingerprint(b));
}

TEST(StateBlob, Crc32IsZlibs) {
  EXPECT_EQ(crc32_of("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32_of(""), 0u);
  EXPECT_EQ(crc32_of("6789", crc32_of("12345")), 0xCBF43926u);
}

TEST(StateBlob, HalfAndBfloat16RoundToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // rounds up to Inf (encode_state saturates)
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);         // tie: to even
  EXPECT_EQ(float_to_half(std::ldexp(3.0f, -26)), 0x0001);         // above the tie
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie: to even
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie: to even (up)
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
  for (uint32_t h = 0; h < 0x10000; ++h) {  // every half survives the round trip
    const float f = half_to_float(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), h) << h;
  }
  EXPECT_EQ(float_to_bfloat16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bfloat16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie: to even
  EXPECT_EQ(float_to_bfloat16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie: to even (up)
  EXPECT_EQ(float_to_bfloat16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(NAN))));
}

// The fixture's offline flow through blobs: document states are encoded,
// decoded and used as initial states; the logits equal the reference.
TEST(StateBlob, OfflineRerankThroughBlobsMatchesTheFixture) {
  RWKV_REQUIRE_FIXTURES();
  const auto& c = test::expected()["rerank_offline"];
  const Checkpoint model = load_checkpoint(test::fixtures_dir() + "/embedding.pth");
  const Checkpoint reranker = load_checkpoint(test::fixtures_dir() + "/reranker_idx.pth");
  Engine engine(kernels::make_cpu_backend(), model, &reranker);
  const ModelFingerprint fp = model_fingerprint(model);
  const StateShape shape = state_shape_of(engine.model());
  EXPECT_EQ(shape, (StateShape{3, 2, 128}));

  std::vector<std::vector<int32_t>> docs;
  for (const auto& d : c["documents"])
    docs.push_back(Tokenizer::world().encode(rerank_document_text(d.get<std::string>()), false));
  std::vector<Engine::Sequence> doc_seqs(docs.begin(), docs.end());
  Engine::Wanted state_only;
  state_only.heads = {false, false, false};
  state_only.state = true;
  const auto cached = engine.run(doc_seqs, state_only);
  const auto query = Tokenizer::world().encode(rerank_query_text(c["query"].get<std::string>()));
  const std::vector<float> want = test::to_floats(c["scores"]["rr_idx"]["logits"]);

  for (auto [dtype, tol] :
       {std::pair{StateDtype::kFloat32, 1e-4}, std::pair{StateDtype::kFloat16, 1e-2},
        std::pair{StateDtype::kBfloat16, 5e-2}}) {
    std::vector<SequenceState> decoded;
    for (size_t i = 0; i < cached.size(); ++i)
      decoded.push_back(
          decode_state(encode_state(cached[i].state, fp, shape, dtype, docs[i].size()), fp, shape));
    std::vector<Engine::Sequence> queries;
    for (const auto& s : decoded) queries.push_back({query, &s});
    Engine::Wanted wanted;
    wanted.heads = {false, false, false};
    wanted.rerank = true;
    const auto results = engine.run(queries, wanted);
    ASSERT_EQ(results.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(results[i].logit, want[i], tol) << state_dtype_name(dtype) << " document " << i;
  }
}

}  // namespace
}  // namespace rwkv
