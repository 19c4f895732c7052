// The backends that parameterized tests run on, by name: "cpu" always;
// "cpu_bfloat16" on CPUs with AVX512-BF16; "cpu_int8" on CPUs with VNNI;
// "cuda" (float32), "cuda_float16" and "cuda_bfloat16" in builds with CUDA
// on a machine with a device (the tests skip them loudly elsewhere).
#pragma once

#include <memory>
#include <string>

#include "kernels/backend.h"

namespace rwkv::test {

bool backend_available(const std::string& name);
// float16/bfloat16 matrix products: results only approximate float32 ones.
bool half_precision(const std::string& name);
std::unique_ptr<kernels::Backend> make_backend(const std::string& name);

}  // namespace rwkv::test

#define RWKV_REQUIRE_BACKEND(name)                                                            \
  do {                                                                                        \
    if (!::rwkv::test::backend_available(name))                                               \
      GTEST_SKIP() << "backend " << (name) << " not available here (no AVX512-BF16 or VNNI, " \
                   << "no CUDA build or no CUDA device)";                                     \
  } while (0)
