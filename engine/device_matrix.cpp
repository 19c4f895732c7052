#include "engine/device_matrix.h"

#include <cstdint>
#include <stdexcept>

#include "engine/state_blob.h"

namespace rwkv {

using kernels::MatmulDtype;

DeviceMatrix::DeviceMatrix(kernels::Backend& backend, const std::vector<float>& host, int rows,
                           int cols, kernels::MatrixInput input) {
  if (host.size() != size_t(rows) * cols)
    throw std::logic_error("DeviceMatrix: host data does not match [rows, cols]");
  const MatmulDtype dtype = backend.matrix_dtype(rows, cols, input);
  storage_ = DeviceBuffer<std::byte>(backend, host.size() * kernels::matmul_dtype_size(dtype));
  view_ = {storage_.get(), rows, cols, dtype};
  if (dtype == MatmulDtype::kFloat32) {
    backend.to_device(storage_.get(), host.data(), host.size() * sizeof(float));
    return;
  }
  // Converted once here, on the host, rounding to nearest even.
  std::vector<uint16_t> half(host.size());
  for (size_t i = 0; i < host.size(); ++i)
    half[i] = dtype == MatmulDtype::kFloat16 ? float_to_half(host[i]) : float_to_bfloat16(host[i]);
  backend.to_device(storage_.get(), half.data(), half.size() * sizeof(uint16_t));
}

}  // namespace rwkv
