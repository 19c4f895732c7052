// Error checks of CUDA runtime calls that throw: host code only, so that the
// CUDA backend's C++ files (compiled without nvcc) can use them too.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace rwkv::kernels::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* what, const char* file,
                                          int line) {
  throw std::runtime_error(std::string("CUDA error: ") + what +
                           " failed: " + cudaGetErrorString(err) + " (" + file + ":" +
                           std::to_string(line) + ")");
}

#define RWKV_CUDA_CHECK(call)                                                        \
  do {                                                                               \
    const cudaError_t rwkv_err_ = (call);                                            \
    if (rwkv_err_ != cudaSuccess)                                                    \
      ::rwkv::kernels::cuda::throw_cuda_error(rwkv_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports bad launch configurations at once (errors of
// the running kernel surface at the next synchronizing call).
#define RWKV_CUDA_CHECK_LAUNCH() RWKV_CUDA_CHECK(cudaGetLastError())

}  // namespace rwkv::kernels::cuda
