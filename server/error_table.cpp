#include "server/error_table.h"

#include <spdlog/spdlog.h>

#include "engine/model/engine.h"
#include "engine/scheduling/scheduler.h"
#include "engine/states/state_blob.h"
#include "engine/states/state_store.h"

namespace rwkv::server {

http::Failure failure_of(std::exception_ptr failure, const std::string& request) {
  const auto log_fault = [&](const char* what) { spdlog::error("{}: {}", request, what); };
  try {
    std::rethrow_exception(failure);
  } catch (const api::ApiError& e) {
    return {e};
  } catch (const model::InvalidTokens& e) {
    return {api::ApiError::bad_request(e.what())};
  } catch (const scheduling::QueueFull& e) {
    return {api::ApiError::too_many_requests(std::string(e.what()) + "; retry later"), "1"};
  } catch (const scheduling::ShuttingDown& e) {
    return {api::ApiError::unavailable(e.what()), "5"};
  } catch (const states::StateStoreUnavailable& e) {
    log_fault(e.what());
    return {api::ApiError::unavailable(
                "the state store is unavailable (see the server log); retry later"),
            "5"};
  } catch (const states::StateStoreFull& e) {
    return {api::ApiError(507, e.what())};
  } catch (const states::StateBlobError& e) {
    switch (e.kind()) {
      case states::StateBlobError::Kind::kMalformed:
        return {api::ApiError::bad_request(e.what())};
      case states::StateBlobError::Kind::kShape:
        return {api::ApiError::unprocessable(e.what())};
      case states::StateBlobError::Kind::kModel:
        return {api::ApiError(409, e.what(), std::nullopt, "state_model_mismatch")};
    }
  } catch (const scheduling::Cancelled&) {
    return {api::ApiError(499, "the client went away")};
  } catch (const std::exception& e) {
    log_fault(e.what());
  } catch (...) {
    log_fault("an exception of unknown type");
  }
  return {api::ApiError::internal("internal error (see the server log)")};
}

}  // namespace rwkv::server
