// The CPU a benchmark ran on, for the first line of its table: the model name,
// family and model numbers (they tell apart CPUs /proc/cpuinfo names alike,
// e.g. "AMD EPYC" for Zen 4 (family 25) and Zen 5 (family 26)), the vector
// features the kernels dispatch on, and OPENBLAS_CORETYPE (which picks the
// yardstick sgemm's kernels).
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

namespace rwkv::bench {

// "AMD EPYC (family 25 model 17) [avx2 fma avx512f ...], OPENBLAS_CORETYPE=(unset)".
inline std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name = "unknown CPU", family, model, flags;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (line.starts_with("model name") && name == "unknown CPU") name = value;
    if (line.starts_with("cpu family") && family.empty()) family = value;
    if (line.starts_with("model\t") && model.empty()) model = value;
    if (line.starts_with("flags") && flags.empty()) flags = " " + value + " ";
  }
  std::string features;
  for (const char* f :
       {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8"})
    if (flags.find(std::string(" ") + f + " ") != std::string::npos)
      features += std::string(" ") + f;
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  return name + " (family " + family + " model " + model + ") [" +
         features.substr(features.empty() ? 0 : 1) +
         "], OPENBLAS_CORETYPE=" + (coretype ? coretype : "(unset)");
}

}  // namespace rwkv::bench
