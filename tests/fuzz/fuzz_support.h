// What the fuzz targets share: an invariant check that libFuzzer reports as
// a crash (keeping the input), the checks of a loaded checkpoint, and the
// first steps of a route on a request body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "api/api_error.h"
#include "api/json_fields.h"
#include "api/limits.h"
#include "engine/io/checkpoint.h"

namespace rwkv::fuzz {

// Aborts when `ok` is false; libFuzzer then saves the input as crash-<sha1>.
inline void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  std::abort();
}

inline std::string_view bytes_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Every tensor of a loaded checkpoint holds as many values as its shape says.
inline void check_checkpoint(const io::Checkpoint& checkpoint) {
  for (const auto& [name, tensor] : checkpoint.tensors) {
    size_t numel = 1;
    for (int64_t d : tensor.shape) {
      check(d >= 0, "negative dimension");
      numel *= size_t(d);
    }
    check(numel == tensor.data.size(), "tensor size differs from its shape");
  }
}

// Limits far below the defaults, so that inputs of a few hundred bytes reach
// the 413 paths and the depth check too.
inline api::RequestLimits small_limits() {
  api::RequestLimits limits;
  limits.max_json_depth = 8;
  limits.max_inputs = 6;
  limits.max_documents = 6;
  limits.max_input_bytes = 64;
  limits.max_input_tokens = 12;
  return limits;
}

// A route's handling of `body`: parse_body, then `parse(json, limits)` (the
// endpoint's parser and whatever the caller checks on its result). A refusal
// must be an ApiError with a 4xx status whose OpenAI and Cohere error bodies
// serialize; any other exception escapes, and libFuzzer reports it.
template <typename Parse>
void parse_request(const uint8_t* data, size_t size, Parse parse) {
  const api::RequestLimits limits = small_limits();
  try {
    parse(api::parse_body(bytes_of(data, size), limits.max_json_depth), limits);
  } catch (const api::ApiError& e) {
    check(e.status >= 400 && e.status < 500, "a request was refused without a 4xx status");
    check(!api::openai_error_body(e).dump().empty(), "OpenAI error body");
    check(!api::cohere_error_body(e).dump().empty(), "Cohere error body");
  }
}

}  // namespace rwkv::fuzz
