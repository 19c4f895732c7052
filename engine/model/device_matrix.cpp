#include "engine/model/device_matrix.h"

#include <cstdint>
#include <stdexcept>

#include "engine/common/dtype.h"

namespace rwkv::model {

using kernels::MatmulDtype;

DeviceMatrix::DeviceMatrix(kernels::Backend& backend, const std::vector<float>& host, int rows,
                           int cols, kernels::MatrixInput input) {
  if (host.size() != size_t(rows) * cols)
    throw std::logic_error("DeviceMatrix: host data does not match [rows, cols]");
  const MatmulDtype dtype = backend.matrix_dtype(rows, cols, input);
  storage_ = DeviceBuffer<std::byte>(backend, backend.matrix_bytes(rows, cols, dtype));
  view_ = {storage_.get(), rows, cols, dtype};
  if (dtype == MatmulDtype::kFloat32 ||
      dtype == MatmulDtype::kInt8) {  // int8: the backend quantizes
    backend.upload_matrix(storage_.get(), host.data(), rows, cols, dtype);
    return;
  }
  // Converted once here, on the host, rounding to nearest even.
  std::vector<uint16_t> half(host.size());
  for (size_t i = 0; i < host.size(); ++i)
    half[i] = dtype == MatmulDtype::kFloat16 ? common::float_to_half(host[i])
                                             : common::float_to_bfloat16(host[i]);
  backend.upload_matrix(storage_.get(), half.data(), rows, cols, dtype);
}

}  // namespace rwkv::model
