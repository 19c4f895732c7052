// A dense float32 tensor in host memory, row-major. Every checkpoint tensor is
// converted to this form at load time, whatever its stored dtype and strides.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rwkv::io {

struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  std::string shape_string() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

}  // namespace rwkv::io
