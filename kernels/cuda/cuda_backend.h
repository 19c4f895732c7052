// The CUDA backend's entry points. Plain C++ (no CUDA headers), so server,
// tests and benchmarks can include it; the definitions exist only in builds
// with RWKV_EMB_WITH_CUDA.
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/backend.h"

namespace rwkv::kernels {

struct CudaOptions {
  // Weight matrices and matrix-product inputs (float32 accumulation and
  // output either way; elementwise ops and the recurrent state stay float32).
  MatmulDtype dtype = MatmulDtype::kFloat32;
  // Record repeated step shapes as CUDA graphs and replay them.
  bool graphs = false;
  // Sequences of at least this many tokens in a step take the chunked WKV
  // form, the others the sequential one; 0: always the sequential one.
  int wkv_chunked_min_tokens = 0;
};

// Number of usable CUDA devices; 0 when there is no driver or no GPU (never
// aborts: the CUDA runtime reports a missing driver as an error code).
int cuda_device_count();

// A backend running every op on one stream of `device`. Throws
// std::runtime_error when the device does not exist or cannot be initialized.
std::unique_ptr<Backend> make_cuda_backend(int device = 0, const CudaOptions& options = {});

// How many recorded steps `backend` has replayed as CUDA graphs (0 for a
// backend that is not a CUDA one), for tests and benchmarks.
int64_t cuda_graph_replays(const Backend& backend);

}  // namespace rwkv::kernels
