// `POST /v1/states` bodies: parse and validate; every client id that gets
// through must be a valid, distinct state id (they become file names).
#include <set>

#include "api/states_request.h"
#include "engine/states/state_store.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rwkv;
  fuzz::parse_request(data, size, [](const nlohmann::json& body, const api::RequestLimits& limits) {
    const api::CreateStatesRequest r = api::parse_create_states_request(body, limits);
    fuzz::check(!r.documents.empty() && r.documents.size() <= limits.max_inputs, "document count");
    fuzz::check(
        !r.ttl_seconds || (*r.ttl_seconds >= 1 && *r.ttl_seconds <= api::kMaxStateTtlSeconds),
        "ttl_seconds");
    std::set<std::string> ids;
    for (const api::StateDocument& d : r.documents) {
      fuzz::check(d.text.size() <= limits.max_input_bytes, "text bytes");
      if (d.id.empty()) continue;
      fuzz::check(states::valid_state_id(d.id), "invalid state id accepted");
      fuzz::check(d.id.find('/') == std::string::npos && d.id != "." && d.id != "..",
                  "state id is a path");
      fuzz::check(ids.insert(d.id).second, "duplicate state id accepted");
    }
  });
  return 0;
}
