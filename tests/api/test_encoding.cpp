// api/encoding.h and api/request_id.h: base64, float and quantized
// embedding encodings on the wire, and the random ids of responses.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "api/request_id.h"
#include "tests/api/api_test_helpers.h"

namespace rwkv::api {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------
// Encodings

TEST(ApiEncoding, Base64Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain);
  }
  // Every byte value survives, and uses + and /.
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
}

TEST(ApiEncoding, Base64DecodeIsStrict) {
  EXPECT_EQ(base64_decode("Zg"), "f");  // padding may be omitted
  EXPECT_EQ(base64_decode("Zm8"), "fo");
  EXPECT_EQ(base64_decode("Zm9v!"), std::nullopt);
  EXPECT_EQ(base64_decode("Zm9v YmFy"), std::nullopt);  // whitespace
  EXPECT_EQ(base64_decode("Z"), std::nullopt);          // impossible length
  EXPECT_EQ(base64_decode("Zg="), std::nullopt);        // wrong padding
  EXPECT_EQ(base64_decode("Z=g="), std::nullopt);       // padding in the middle
  EXPECT_EQ(base64_decode("Zh=="), std::nullopt);       // non-zero leftover bits
  EXPECT_EQ(base64_decode("-_8="), std::nullopt);       // URL-safe alphabet
}

TEST(ApiEncoding, FloatsToBase64MatchesNumpy) {
  // np.array([1.0, -2.0], '<f4').tobytes() == 00 00 80 3f 00 00 00 c0
  const std::vector<float> values = {1.0f, -2.0f};
  EXPECT_EQ(floats_to_base64(values), "AACAPwAAAMA=");
  EXPECT_EQ(base64_decode("AACAPwAAAMA="), std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8));
  EXPECT_EQ(floats_to_base64(std::vector<float>{}), "");
  // 0.5 = 00 00 00 3f -> "AAAAPw=="
  EXPECT_EQ(floats_to_base64(std::vector<float>{0.5f}), "AAAAPw==");
}

TEST(ApiEncoding, FloatsBase64RoundTripIsBitExact) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> values(1027);
  for (auto& v : values) v = normal(rng);
  values[0] = -0.0f;
  values[1] = std::numeric_limits<float>::denorm_min();
  values[2] = std::numeric_limits<float>::infinity();
  const auto back = base64_to_floats(floats_to_base64(values));
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), values.size());
  EXPECT_EQ(std::memcmp(back->data(), values.data(), values.size() * sizeof(float)), 0);
  EXPECT_EQ(base64_to_floats("AAA="), std::nullopt);  // 2 bytes: not a float
}

TEST(ApiEncoding, JsonNumberIsShortestAndRoundTrips) {
  EXPECT_EQ(json(json_number(0.1f)).dump(), "0.1");
  EXPECT_EQ(json(json_number(1.0f / 3.0f)).dump(), "0.33333334");
  EXPECT_EQ(json(json_number(-1e-8f)).dump(), "-1e-08");
  EXPECT_EQ(json(json_number(std::numeric_limits<float>::quiet_NaN())).dump(), "null");
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 100000; ++i) {
    float f;
    const uint32_t b = bits(rng);
    std::memcpy(&f, &b, 4);
    if (!std::isfinite(f)) continue;
    const double parsed = json::parse(json(json_number(f)).dump()).get<double>();
    ASSERT_EQ(static_cast<float>(parsed), f) << b;
  }
}

TEST(ApiEncoding, FloatArray) {
  const std::vector<float> values = {0.25f, -1.5f};
  EXPECT_EQ(float_array(values), json({0.25, -1.5}));
  EXPECT_EQ(float_array(std::vector<float>{}), json::array());
}

TEST(ApiEncoding, Int8AndUint8Quantization) {
  const std::vector<float> values = {1.0f, -1.0f,  0.5f,
                                     0.0f, 0.004f, -0.004f,
                                     2.0f, -3.0f,  std::numeric_limits<float>::quiet_NaN()};
  // round(v * 127), clamped to [-127, 127]: 63.5 -> 64, 0.508 -> 1, NaN -> 0.
  EXPECT_EQ(quantize_int8(values), (std::vector<int8_t>{127, -127, 64, 0, 1, -1, 127, -127, 0}));
  // uint8 = int8 + 128.
  EXPECT_EQ(quantize_uint8(values),
            (std::vector<uint8_t>{255, 1, 192, 128, 129, 127, 255, 1, 128}));
  EXPECT_EQ(quantize_int8(values, 10.0f)[2], 5);
}

TEST(ApiEncoding, BinaryPacking) {
  // Signs 1 0 1 1 0 1 0 1 (0 counts as positive) = 0b10110101 = 181; 181 - 128 = 53.
  const std::vector<float> first = {0.1f, -0.2f, 0.3f, 0.0f, -0.5f, 0.6f, -0.7f, 0.8f};
  EXPECT_EQ(pack_ubinary(first), std::vector<uint8_t>{181});
  EXPECT_EQ(pack_binary(first), std::vector<int8_t>{53});
  // MSB first: only dimension 7 positive -> 0b00000001; only dimension 8 -> next byte 0x80.
  std::vector<float> sixteen(16, -1.0f);
  sixteen[7] = 1.0f;
  sixteen[8] = 1.0f;
  EXPECT_EQ(pack_ubinary(sixteen), (std::vector<uint8_t>{1, 128}));
  EXPECT_EQ(pack_binary(sixteen), (std::vector<int8_t>{-127, 0}));
  EXPECT_EQ(pack_ubinary(std::vector<float>(8, -1.0f)), std::vector<uint8_t>{0});
  EXPECT_EQ(pack_binary(std::vector<float>(8, -1.0f)), std::vector<int8_t>{-128});
  EXPECT_EQ(pack_binary(std::vector<float>(8, 1.0f)), std::vector<int8_t>{127});
  EXPECT_THROW(pack_ubinary(std::vector<float>(7, 1.0f)), std::invalid_argument);
  EXPECT_THROW(pack_binary(std::vector<float>(12, 1.0f)), std::invalid_argument);
}

TEST(ApiEncoding, RandomUuids) {
  const std::regex form("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = random_uuid();
    ASSERT_TRUE(std::regex_match(id, form)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace rwkv::api
