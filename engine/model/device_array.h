// An owned array in a backend's memory (host memory on the CPU backend).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/backend.h"

namespace rwkv::model {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(kernels::Backend& backend, size_t count)
      : backend_(&backend),
        data_(count ? static_cast<T*>(backend.allocate(count * sizeof(T))) : nullptr),
        size_(count) {}
  DeviceBuffer(kernels::Backend& backend, const std::vector<T>& host)
      : DeviceBuffer(backend, host.size()) {
    backend.to_device(data_, host.data(), host.size() * sizeof(T));
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_) backend_->release(data_);
  }

  T* get() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return data_ == nullptr; }
  std::vector<T> to_host() const {
    std::vector<T> out(size_);
    if (size_) backend_->to_host(out.data(), data_, size_ * sizeof(T));
    return out;
  }

 private:
  kernels::Backend* backend_ = nullptr;
  T* data_ = nullptr;
  size_t size_ = 0;
};

using DeviceArray = DeviceBuffer<float>;
using DeviceInts = DeviceBuffer<int32_t>;

}  // namespace rwkv::model
