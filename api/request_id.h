// Response ids for the Cohere-shaped APIs (whose SDK joins the ids of
// parallel batches with ", ", so they must be strings).
#pragma once

#include <string>

namespace rwkv::api {

// A random UUID (version 4) in the canonical 8-4-4-4-12 hex form. Unique in
// practice; not a secret (the generator is not cryptographic).
std::string random_uuid();

}  // namespace rwkv::api
