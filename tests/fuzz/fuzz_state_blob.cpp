// The cached-state blob decoder (PUT /v1/states/{id}, the disk and Redis
// stores). Each input is decoded as given, then again with its checksum made
// right, so the fuzzer gets past the CRC to the header, size and value checks.
// The model (fingerprint and shape) is the one the header names, so that a
// blob can decode; a decoded blob must re-encode to the same bytes (int8
// included: its decoder refuses rows the encoder cannot write).
#include "engine/states/state_blob.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace rwkv;

void decode_as_its_own_model(std::string_view blob) {
  try {
    const states::StateBlobInfo header = states::read_state_header(blob);
    states::StateBlobInfo info;
    const states::SequenceState state =
        states::decode_state(blob, header.fingerprint, header.shape, &info);
    fuzz::check(info.bytes == blob.size(), "decoded a blob of another size");
    const std::string again =
        states::encode_state(state, info.fingerprint, info.shape, info.dtype, info.tokens);
    // Float blobs are written as version 1; one read as version 2 differs in that field only.
    const uint16_t written =
        info.dtype == states::StateDtype::kInt8 ? states::kStateFormatVersion : 1;
    if (info.version == written)
      fuzz::check(again == blob, "a decoded blob does not re-encode to the same bytes");
    else
      fuzz::check(states::decode_state(again, info.fingerprint, info.shape).wkv == state.wkv,
                  "a version 2 float blob does not re-encode to the same values");
  } catch (const states::StateBlobError& e) {
    fuzz::check(e.kind() == states::StateBlobError::Kind::kMalformed,
                "shape or model error for its own model");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view blob = fuzz::bytes_of(data, size);
  decode_as_its_own_model(blob);
  if (size < states::kStateHeaderBytes + states::kStateTrailerBytes) return 0;
  std::string fixed(blob);
  const size_t body = size - states::kStateTrailerBytes;
  const uint32_t crc = states::crc32_of(std::string_view(fixed).substr(0, body));
  for (size_t i = 0; i < states::kStateTrailerBytes; ++i) fixed[body + i] = char(crc >> (8 * i));
  decode_as_its_own_model(fixed);
  return 0;
}
