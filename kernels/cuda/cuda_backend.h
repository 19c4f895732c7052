// The CUDA backend's entry points. Plain C++ (no CUDA headers), so server,
// tests and benchmarks can include it; the definitions exist only in builds
// with RWKV_EMB_WITH_CUDA.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace rwkv::kernels {

// Number of usable CUDA devices; 0 when there is no driver or no GPU (never
// aborts: the CUDA runtime reports a missing driver as an error code).
int cuda_device_count();

// A backend running every op on one stream of `device`. Throws
// std::runtime_error when the device does not exist or cannot be initialized.
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

}  // namespace rwkv::kernels
