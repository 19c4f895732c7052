// The RWKV-7 head size: every layer's channels split into heads of 64, each
// with a [64, 64] WKV state. Checked at load; the kernels, the weights and
// the state format all rely on it.
#pragma once

namespace rwkv::common {

inline constexpr int kHeadSize = 64;

}  // namespace rwkv::common
