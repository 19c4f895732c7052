// `POST /tokenize` and `/detokenize` bodies (each input is tried as both):
// parse and validate, then run the tokenizer as the routes do.
#include "api/tokenize_request.h"
#include "engine/text/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rwkv;
  const text::Tokenizer& tokenizer = text::Tokenizer::world();
  fuzz::parse_request(data, size, [&](const nlohmann::json& body, const api::RequestLimits&) {
    const api::TokenizeRequest r = api::parse_tokenize_request(body);
    fuzz::check(r.was_list || r.texts.size() == 1, "a single text gives one list");
    for (const std::string& text : r.texts) {
      const std::vector<int32_t> ids = tokenizer.encode(text, r.add_eos);
      fuzz::check(tokenizer.decode(ids) == text, "decode(encode(text)) != text");
    }
  });
  fuzz::parse_request(data, size, [&](const nlohmann::json& body, const api::RequestLimits&) {
    const std::vector<int32_t> ids = api::parse_detokenize_request(body);
    for (int32_t id : ids) fuzz::check(tokenizer.is_known(id), "unknown id accepted");
    tokenizer.decode(ids);  // throws TokenizerError (escaping) on an unknown id
  });
  return 0;
}
