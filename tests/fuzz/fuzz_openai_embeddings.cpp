// OpenAI `POST /v1/embeddings` bodies: parse and validate, then build the
// response of the parsed request (its model name is echoed).
#include <algorithm>

#include "api/openai_embeddings.h"
#include "api/response_bodies.h"
#include "engine/text/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rwkv;
  fuzz::parse_request(data, size, [](const nlohmann::json& body, const api::RequestLimits& limits) {
    const api::EmbeddingsRequest r = api::parse_embeddings_request(body, limits);
    fuzz::check(!r.inputs.empty() && r.inputs.size() <= limits.max_inputs, "input count");
    for (const api::EmbeddingInput& input : r.inputs) {
      fuzz::check(input.text.size() <= limits.max_input_bytes, "text bytes");
      fuzz::check(input.tokens.size() <= limits.max_input_tokens, "token count");
      for (int32_t id : input.tokens)
        fuzz::check(id >= 0 && id < text::Tokenizer::kVocabSize, "token id");
    }
    fuzz::check(!r.dimensions || *r.dimensions > 0, "dimensions");
    fuzz::check(!r.text.instruction || std::none_of(r.inputs.begin(), r.inputs.end(),
                                                    [](const auto& in) { return in.is_tokens; }),
                "instruction on ids");
    const std::vector<std::vector<float>> vectors(r.inputs.size(), {0.5f, -0.25f});
    api::embeddings_response(vectors, r.base64, r.model, 1).dump();
  });
  return 0;
}
