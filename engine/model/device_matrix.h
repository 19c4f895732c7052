// A weight matrix in backend memory, stored in the dtype its backend picks
// for it (float32 on the CPU; float16 or bfloat16 on a GPU when asked for).
#pragma once

#include <cstddef>
#include <vector>

#include "engine/model/device_array.h"
#include "kernels/backend.h"

namespace rwkv::model {

class DeviceMatrix {
 public:
  DeviceMatrix() = default;
  // host holds rows * cols floats, row-major.
  DeviceMatrix(kernels::Backend& backend, const std::vector<float>& host, int rows, int cols,
               kernels::MatrixInput input);

  const kernels::Matrix& view() const { return view_; }
  int rows() const { return view_.rows; }
  int cols() const { return view_.cols; }

 private:
  DeviceBuffer<std::byte> storage_;
  kernels::Matrix view_;
};

}  // namespace rwkv::model
