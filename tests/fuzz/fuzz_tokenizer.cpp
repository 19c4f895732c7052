// The World tokenizer on arbitrary bytes: as text, encoding must round-trip
// exactly (every byte is a token); as little-endian 16-bit ids, decoding must
// refuse exactly the ids outside the vocabulary, and its bytes round-trip.
#include <algorithm>
#include <cstring>

#include "engine/text/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using rwkv::fuzz::check;
using rwkv::text::Tokenizer;

void check_encode(const Tokenizer& tokenizer, std::string_view text) {
  const std::vector<int32_t> ids = tokenizer.encode(text, false);
  check(ids.size() <= text.size(), "more tokens than bytes");
  for (int32_t id : ids)
    check(tokenizer.is_known(id) && id != Tokenizer::kEos && id != Tokenizer::kEndOfText,
          "encode produced a special or unknown id");
  check(tokenizer.decode(ids) == text, "decode(encode(text)) != text");

  std::vector<int32_t> with_eos = tokenizer.encode(text, true);
  check(!with_eos.empty() && with_eos.back() == Tokenizer::kEos, "add_eos without EOS");
  with_eos.pop_back();
  check(with_eos == ids, "add_eos changed the ids");

  std::vector<int32_t> appended = {Tokenizer::kEos};
  tokenizer.encode_into(text, appended);
  check(std::equal(appended.begin() + 1, appended.end(), ids.begin(), ids.end()),
        "encode_into differs from encode");
}

void check_decode(const Tokenizer& tokenizer, std::string_view bytes) {
  std::vector<int32_t> ids(bytes.size() / 2);
  for (size_t i = 0; i < ids.size(); ++i) {
    uint16_t id;
    std::memcpy(&id, bytes.data() + 2 * i, 2);
    ids[i] = id;
  }
  const bool all_known =
      std::all_of(ids.begin(), ids.end(), [&](int32_t id) { return tokenizer.is_known(id); });
  std::string text;
  try {
    text = tokenizer.decode(ids);
  } catch (const rwkv::text::TokenizerError&) {
    check(!all_known, "decode refused known ids");
    return;
  }
  check(all_known, "decode accepted an unknown id");
  check(tokenizer.decode(tokenizer.encode(text)) == text, "decoded bytes do not round-trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizer& tokenizer = Tokenizer::world();
  const std::string_view bytes = rwkv::fuzz::bytes_of(data, size);
  check_encode(tokenizer, bytes);
  check_decode(tokenizer, bytes);
  return 0;
}
