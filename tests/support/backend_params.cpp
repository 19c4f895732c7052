#include "tests/support/backend_params.h"

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_int8.h"

#ifdef RWKV_EMB_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace rwkv::test {

bool backend_available(const std::string& name) {
#ifdef RWKV_EMB_WITH_CUDA
  if (name.starts_with("cuda")) return kernels::cuda_device_count() > 0;
#endif
  if (name == "cpu_bfloat16") return kernels::cpu::has_bf16();
  if (name == "cpu_int8") return kernels::cpu::has_vnni();
  return name == "cpu";
}

bool half_precision(const std::string& name) { return name.ends_with("16"); }

// `name` is unused in builds without CUDA.
std::unique_ptr<kernels::Backend> make_backend([[maybe_unused]] const std::string& name) {
#ifdef RWKV_EMB_WITH_CUDA
  if (name.starts_with("cuda")) {
    kernels::CudaOptions o;
    if (name == "cuda_float16") o.dtype = kernels::MatmulDtype::kFloat16;
    if (name == "cuda_bfloat16") o.dtype = kernels::MatmulDtype::kBFloat16;
    return kernels::make_cuda_backend(0, o);
  }
#endif
  if (name == "cpu_bfloat16") return kernels::make_cpu_backend(0, kernels::MatmulDtype::kBFloat16);
  if (name == "cpu_int8") return kernels::make_cpu_backend(0, kernels::MatmulDtype::kInt8);
  return kernels::make_cpu_backend();
}

}  // namespace rwkv::test
