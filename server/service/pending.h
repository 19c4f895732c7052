// The outcome of a service call that runs in the scheduler: wait for it (the
// caller watches its client meanwhile), then get() the typed result.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "engine/scheduling/scheduler.h"

namespace rwkv::server::service {

template <class T>
class Pending {
 public:
  using Finish = std::function<T(std::vector<model::Engine::Result>&)>;
  Pending(std::shared_ptr<scheduling::PendingRequest> request, Finish finish)
      : request_(std::move(request)), finish_(std::move(finish)) {}

  // True once the outcome is known (done, failed or cancelled).
  bool wait_for(std::chrono::milliseconds timeout) { return request_->wait_for(timeout); }
  void cancel() { request_->cancel(); }
  // The result; throws what failed the request (scheduling::Cancelled once cancelled).
  T get() {
    std::vector<model::Engine::Result> results = request_->wait();
    return finish_(results);
  }

 private:
  std::shared_ptr<scheduling::PendingRequest> request_;
  Finish finish_;
};

}  // namespace rwkv::server::service
