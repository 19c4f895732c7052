// Per-request size limits, each checked where it applies: the JSON depth
// while parsing the body, the counts and sizes by the request parsers, and
// max_input_tokens also by the routes once texts are tokenized. They bound the
// work and memory one request can ask for; the server's flags set them. (The
// body size is the HTTP layer's: --max-body-bytes, answered 413 before any
// parsing.)
#pragma once

#include <cstddef>

namespace rwkv::api {

struct RequestLimits {
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

  // Tokens of one input (--max-input-tokens): a text's own tokens (before
  // the instruction and the EOS tokens of the input protocol), a token-id
  // input's ids as given. 400 beyond it.
  size_t max_input_tokens = 32768;
};

}  // namespace rwkv::api
