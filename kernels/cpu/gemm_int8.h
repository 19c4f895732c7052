// int8 matrix products y[M, N] = x[M, K] · Wᵀ on the CPU, with VNNI's
// vpdpbusd (4 unsigned × signed byte products summed into int32 per lane).
//
// W is quantized once per output channel, symmetric: w ≈ q_w · s_w with
// q_w in [-127, 127] and s_w = absmax / 127. Each row of x is quantized when
// multiplied, asymmetric (the row's range, zero included, onto 0..255):
// x ≈ (q_x - z) · s_x. vpdpbusd wants an unsigned operand, which q_x is;
// the zero point comes off exactly in int32 as z · Σ_k q_w (stored per column):
//   y = fma(float(Σ_k q_x q_w - z · Σ_k q_w), s_x · s_w, y0).
// The integer sums are exact, so their order does not matter, and the rescale
// is that one expression per element in every kernel, so every kernel gives
// the same bits, and a row's result never depends on the other rows, its
// offset or the thread count.
//
// Overflow: every integer above (the running sums, z · Σ q_w and their
// difference) is at most 255 · 127 · K in magnitude, which fits int32 for
// K <= kMaxInt8Depth (65,536; the FFN of C = 4096 is 16,384 wide).
//
// Why not oneDNN: its int8 matmul takes dynamic per-row source scales and zero
// points only in some versions and ISAs, and nothing in it promises that a
// row's result does not depend on M (it picks kernels and blockings by shape,
// and its float32 epilogue may reorder with them). Integer sums make the
// products themselves order-free, so our own kernels keep the promise with a
// few dozen lines per ISA.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rwkv::kernels::cpu {

constexpr int kMaxInt8Depth = 65536;

enum class Int8Isa { kPortable, kAvxVnni, kAvx512Vnni };
const char* int8_isa_name(Int8Isa isa);
// Whether this CPU runs the kernel (checked at run time).
bool cpu_runs(Int8Isa isa);
// The fastest int8 kernel this CPU runs (checked at run time); kPortable
// when it has no VNNI, where int8 products would be slower than float32.
Int8Isa best_int8_isa();
bool has_vnni();

// How a row of x was quantized: x ≈ (q - zero) · scale.
struct RowQuant {
  float scale = 0;
  int32_t zero = 0;
};

// K rounded up to a multiple of 4 (the depth of one vpdpbusd).
int int8_depth(int K);
// Bytes of a packed [rows, cols] int8 matrix with its per-column scales and sums.
size_t packed_int8_bytes(int rows, int cols);
// Quantizes w (float32, row-major [rows, cols]: torch Linear [out, in]) per
// row and packs it for gemm_int8.
void pack_weights_int8(const float* w, int rows, int cols, void* packed);

// out[M, int8_depth(K)] = x[M, K] quantized per row (0 pads the depth), and
// each row's scale and zero point. Every ISA gives the same bytes (for finite x).
void quantize_rows(int M, int K, const float* x, uint8_t* out, RowQuant* rows,
                   Int8Isa isa = best_int8_isa());

// y[M, N] = x · Wᵀ (+ y when accumulate), x and rows from quantize_rows, W
// from pack_weights_int8 of [N, K]. Uses the OpenMP threads of the caller.
void gemm_int8(int M, int N, int K, const uint8_t* x, const RowQuant* rows, const void* packed,
               float* y, bool accumulate, Int8Isa isa = best_int8_isa());

}  // namespace rwkv::kernels::cpu
