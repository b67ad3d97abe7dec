// Plain row-major fp32 tensor helpers for the MIL interpreter: numpy broadcasting, permutes and
// strided copies, GEMM (oneDNN's sgemm) and numpy-style batched matmul, fp16 rounding.
// Internal to src/mil.
#pragma once
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sdpal::mil::detail {

// numpy broadcasting of two shapes; throws Error(kFormat) "<what>: shapes [..] and [..] do not broadcast".
Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& what);

// Element strides of a row-major shape.
std::vector<int64_t> row_major_strides(const Shape& s);

// Strides of `s` (rank <= out.size()) read as if broadcast to `out` (0 on broadcast axes).
std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out);

// out[i] = src[base + sum_d i_d * strides[d]] over `out_shape` (strides may be 0 or negative).
Tensor strided_copy(const float* src, int64_t base, const std::vector<int64_t>& strides, const Shape& out_shape);

// np.transpose(x, perm). Returns a reshape sharing storage when the permutation keeps every
// non-unit axis in order.
Tensor permute(const Tensor& x, const std::vector<int>& perm);

// C[M,N] = op(A) op(B) (+ beta C), row-major; lda/ldb/ldc are row strides as stored.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float* c, int64_t ldc, float beta = 0.0f);

// np.matmul(x', y') where x' / y' are x / y with their last two axes swapped when transpose_x /
// transpose_y (no effect on rank-1 operands). Batch axes broadcast. `what` names the op in errors.
Tensor matmul(const Tensor& x, const Tensor& y, bool transpose_x, bool transpose_y, const std::string& what);

// Round every element to the nearest fp16 / bf16 value (round to nearest even), in place, on all
// threads; round_span_to_fp16 on the calling thread only (for loops that round as they write).
void round_to_fp16(float* x, int64_t n);
void round_to_bf16(float* x, int64_t n);
void round_span_to_fp16(float* x, int64_t n);

// exp(x) within a few ulp (Cody-Waite reduction, degree-7 Taylor polynomial on |r| <= ln2 / 2):
// 0 below -87.3, inf above 88.7, NaN stays NaN. Branch-free, so loops calling it vectorize.
inline float exp_fast(float x) {
  const float lo = -87.3365f, hi = 88.7228f;
  const float xc = std::min(std::max(x, lo), hi);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (xc * 1.44269504088896341f + magic) - magic;
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t ni = int32_t(n);
  const int32_t n1 = ni >> 1, n2 = ni - n1;  // 2^n in two factors: n can reach 128
  const float s1 = std::bit_cast<float>(uint32_t(n1 + 127) << 23), s2 = std::bit_cast<float>(uint32_t(n2 + 127) << 23);
  float y = p * s1 * s2;
  y = x < lo ? 0.0f : y;
  y = x > hi ? std::numeric_limits<float>::infinity() : y;
  return y;
}

// parallel_for grain for items of `work` elements each: some 128K elements per thread at least, so
// small tensors stay on the calling thread (waking the pool costs more than they do).
inline int64_t grain_for(int64_t work) { return std::max<int64_t>(1, (int64_t(1) << 17) / std::max<int64_t>(work, 1)); }

// Splits `axis` of `s`: outer = prod(s[:axis]), len = s[axis], inner = prod(s[axis+1:]).
struct AxisSplit {
  int64_t outer = 1, len = 1, inner = 1;
};
AxisSplit split_at_axis(const Shape& s, int axis);

// An axis argument in [-rank, rank) made non-negative; throws Error(kFormat) naming `what` otherwise.
int normalize_axis(int64_t axis, int rank, const std::string& what);

}  // namespace sdpal::mil::detail
