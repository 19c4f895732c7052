#include "server/server_options.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "kernels/cpu/gemm.h"

namespace rwkv::server {

uint64_t default_state_cache_bytes() {
  uint64_t memory = uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGE_SIZE));
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");  // "max" when unlimited
  uint64_t limit = 0;
  if (cgroup >> limit && limit > 0) memory = std::min(memory, limit);
  return memory / 16;
}

std::string Device::name() const {
  return kind == Kind::kCpu ? "cpu" : "cuda:" + std::to_string(index);
}

std::optional<Device> parse_device(std::string_view text) {
  if (text == "cpu") return Device{};
  if (text == "cuda") return Device{Device::Kind::kCuda, 0};
  if (!text.starts_with("cuda:")) return std::nullopt;
  const std::string_view n = text.substr(5);
  if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  return Device{Device::Kind::kCuda, std::stoi(std::string(n))};
}

kernels::MatmulDtype resolve_dtype(DtypeChoice choice, const Device& device) {
  using kernels::MatmulDtype;
  const bool cpu = device.kind == Device::Kind::kCpu;
  switch (choice) {
    case DtypeChoice::kUnset:
      return cpu ? MatmulDtype::kFloat32 : MatmulDtype::kFloat16;
    case DtypeChoice::kAuto:
      return !cpu                       ? MatmulDtype::kFloat16
             : kernels::cpu::has_bf16() ? MatmulDtype::kBFloat16
                                        : MatmulDtype::kFloat32;
    case DtypeChoice::kFloat32:
      return MatmulDtype::kFloat32;
    case DtypeChoice::kFloat16:
      return MatmulDtype::kFloat16;
    case DtypeChoice::kBfloat16:
      return MatmulDtype::kBFloat16;
    case DtypeChoice::kInt8:
      return MatmulDtype::kInt8;
  }
  return MatmulDtype::kFloat32;
}

}  // namespace rwkv::server
