// Cohere `POST /v1/embed` and `/v2/embed` bodies (each input is tried as
// both): parse and validate, then build the response of the parsed request
// in every requested embedding type.
#include <set>

#include "api/cohere_embed.h"
#include "api/response_bodies.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rwkv;
  for (int version : {1, 2}) {
    fuzz::parse_request(
        data, size, [version](const nlohmann::json& body, const api::RequestLimits& limits) {
          const api::CohereEmbedRequest r =
              api::parse_cohere_embed_request(body, version, 64, limits);
          fuzz::check(!r.texts.empty() && r.texts.size() <= limits.max_inputs, "text count");
          for (const std::string& text : r.texts)
            fuzz::check(text.size() <= limits.max_input_bytes, "text bytes");
          const std::set<api::EmbeddingType> distinct(r.embedding_types.begin(),
                                                      r.embedding_types.end());
          fuzz::check(!r.embedding_types.empty() && distinct.size() == r.embedding_types.size(),
                      "embedding types");
          fuzz::check(!r.text.input_type || *r.text.input_type != api::InputType::kSts,
                      "input type");
          fuzz::check(!r.max_tokens || *r.max_tokens > 0, "max_tokens");
          fuzz::check(!r.output_dimension || *r.output_dimension > 0, "output_dimension");
          // 8 dimensions: the binary types pack 8 per byte.
          const std::vector<std::vector<float>> vectors(
              r.texts.size(), {0.5f, -0.5f, 0.25f, 0, -0.25f, 0.5f, 0, 0});
          api::cohere_embed_response(r, vectors, 1).dump();
        });
  }
  return 0;
}
