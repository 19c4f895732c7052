#include "api/encoding.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace rwkv::api {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Alphabet index of `c`, or -1.
int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// The float's bytes, little-endian whatever the host order.
void append_le(std::string& out, float value) {
  auto bits = std::bit_cast<uint32_t>(value);
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>(bits & 0xFF));
    bits >>= 8;
  }
}

int quantize_one(float value, float scale) {
  if (std::isnan(value)) return 0;
  return static_cast<int>(std::clamp(std::round(value * scale), -127.0f, 127.0f));
}

void require_multiple_of_8(size_t size) {
  if (size % 8 != 0) {
    throw std::invalid_argument("binary embeddings need a dimension that is a multiple of 8, got " +
                                std::to_string(size));
  }
}

}  // namespace

// ---- base64 ----

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t group = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    out += kAlphabet[group >> 18 & 63];
    out += kAlphabet[group >> 12 & 63];
    out += kAlphabet[group >> 6 & 63];
    out += kAlphabet[group & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    const uint32_t group = at(i) << 16 | (rest == 2 ? at(i + 1) << 8 : 0);
    out += kAlphabet[group >> 18 & 63];
    out += kAlphabet[group >> 12 & 63];
    out += rest == 2 ? kAlphabet[group >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  // Strip up to two '=' of padding; the rest must be alphabet characters.
  size_t padding = 0;
  while (padding < 2 && !text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++padding;
  }
  if (text.size() % 4 == 1) return std::nullopt;  // no byte count gives this length
  if (padding > 0 && (text.size() + padding) % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const int value = base64_value(c);
    if (value < 0) return std::nullopt;
    buffer = buffer << 6 | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>(buffer >> bits & 0xFF));
    }
  }
  // Leftover bits must be zero, so that each byte string has one encoding.
  if ((buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string floats_to_base64(std::span<const float> values) {
  std::string bytes;
  bytes.reserve(values.size() * 4);
  for (const float v : values) append_le(bytes, v);
  return base64_encode(bytes);
}

// ---- JSON floats ----

double json_number(float value) {
  if (!std::isfinite(value)) return value;
  char buffer[32];
  const auto written = std::to_chars(buffer, buffer + sizeof(buffer), value);
  double out = value;
  std::from_chars(buffer, written.ptr, out);
  return out;
}

nlohmann::json float_array(std::span<const float> values) {
  nlohmann::json out = nlohmann::json::array();
  auto& array = out.get_ref<nlohmann::json::array_t&>();
  array.reserve(values.size());
  for (const float v : values) array.emplace_back(json_number(v));
  return out;
}

// ---- Cohere types ----

std::vector<int8_t> quantize_int8(std::span<const float> values, float scale) {
  std::vector<int8_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    out[i] = static_cast<int8_t>(quantize_one(values[i], scale));
  }
  return out;
}

std::vector<uint8_t> quantize_uint8(std::span<const float> values, float scale) {
  std::vector<uint8_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    out[i] = static_cast<uint8_t>(quantize_one(values[i], scale) + 128);
  }
  return out;
}

std::vector<uint8_t> pack_ubinary(std::span<const float> values) {
  require_multiple_of_8(values.size());
  std::vector<uint8_t> out(values.size() / 8, 0);
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] >= 0.0f) out[i / 8] |= static_cast<uint8_t>(0x80u >> (i % 8));
  }
  return out;
}

std::vector<int8_t> pack_binary(std::span<const float> values) {
  const auto packed = pack_ubinary(values);
  std::vector<int8_t> out(packed.size());
  for (size_t i = 0; i < packed.size(); ++i) out[i] = static_cast<int8_t>(packed[i] - 128);
  return out;
}

}  // namespace rwkv::api
