// Per-request size limits checked while parsing. They bound the work and
// memory one request can ask for; the server's config may override them.
#pragma once

#include <cstddef>

namespace rwkv::api {

struct RequestLimits {
  // Whole HTTP body. The route answers 413 beyond it before parsing. 32 MiB
  // holds 2048 inputs of ~16 KiB each (OpenAI's own cap is ~300k tokens).
  size_t max_body_bytes = size_t{32} << 20;

  // Bracket nesting of the JSON body. Real requests nest at most 4 levels
  // (`{"input": [[1, 2]]}`); the limit keeps a hostile body from driving a
  // recursive parser (or destructor) into a stack overflow.
  size_t max_json_depth = 64;

  // Inputs in one embeddings / embed request: OpenAI's documented cap.
  // (Cohere's is 96, but its SDK splits batches itself, so more is harmless.)
  size_t max_inputs = 2048;

  // Documents in one rerank request. Cohere recommends at most 1,000 and caps
  // documents x chunks at 10,000.
  size_t max_documents = 10000;

  // One text, query or document, in UTF-8 bytes. RWKV's state is constant in
  // size, so long texts cost time, not memory: 1 MiB is ~250k tokens.
  size_t max_input_bytes = size_t{1} << 20;

  // One token-id input (OpenAI's `int[]` form), same budget as a text.
  size_t max_input_tokens = size_t{256} << 10;
};

}  // namespace rwkv::api
