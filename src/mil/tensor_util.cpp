#include "mil/tensor_util.h"

#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cstring>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/threads.h"

namespace sdpal::mil::detail {

Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& what) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r, 1);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(ErrorCode::kFormat, what + ": shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> row_major_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  const std::vector<int64_t> own = row_major_strides(s);
  std::vector<int64_t> st(out.size(), 0);
  const size_t off = out.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d) st[off + d] = s[d] == 1 ? 0 : own[d];
  return st;
}

Tensor strided_copy(const float* src, int64_t base, const std::vector<int64_t>& strides, const Shape& out_shape) {
  Tensor out = Tensor::empty(out_shape);
  const int64_t n = out.numel();
  if (n == 0) return out;
  // Drop unit axes and merge axes that are contiguous with each other in the source.
  std::vector<int64_t> dims, st;
  for (size_t d = 0; d < out_shape.size(); ++d) {
    if (out_shape[d] == 1) continue;
    if (!dims.empty() && st.back() == strides[d] * out_shape[d]) {
      dims.back() *= out_shape[d];
      st.back() = strides[d];
    } else {
      dims.push_back(out_shape[d]);
      st.push_back(strides[d]);
    }
  }
  float* o = out.f32();
  if (dims.empty()) {
    o[0] = src[base];
    return out;
  }
  const int r = int(dims.size());
  const int64_t inner = dims[size_t(r - 1)], istride = st[size_t(r - 1)];
  const int64_t rows = n / inner;
  parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        std::vector<int64_t> idx(size_t(r), 0);
        int64_t rem = r0, off = base;
        for (int d = r - 2; d >= 0; --d) {
          idx[size_t(d)] = rem % dims[size_t(d)];
          rem /= dims[size_t(d)];
          off += idx[size_t(d)] * st[size_t(d)];
        }
        for (int64_t row = r0; row < r1; ++row) {
          const float* s = src + off;
          float* dst = o + row * inner;
          if (istride == 1) {
            std::memcpy(dst, s, size_t(inner) * sizeof(float));
          } else if (istride == 0) {
            std::fill(dst, dst + inner, s[0]);
          } else {
            for (int64_t j = 0; j < inner; ++j) dst[j] = s[j * istride];
          }
          for (int d = r - 2; d >= 0; --d) {
            off += st[size_t(d)];
            if (++idx[size_t(d)] < dims[size_t(d)]) break;
            off -= st[size_t(d)] * dims[size_t(d)];
            idx[size_t(d)] = 0;
          }
        }
      },
      grain_for(inner));
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int>& perm) {
  const Shape& xs = x.shape();
  Shape out(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) out[d] = xs[size_t(perm[d])];
  int last = -1;
  bool noop = true;
  for (size_t d = 0; d < perm.size() && noop; ++d) {
    if (out[d] == 1) continue;
    if (perm[d] < last) noop = false;
    last = perm[d];
  }
  if (noop) return x.reshape(out);
  const std::vector<int64_t> own = row_major_strides(xs);
  std::vector<int64_t> st(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) st[d] = own[size_t(perm[d])];
  return strided_copy(x.f32(), 0, st, out);
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float* c, int64_t ldc, float beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  const dnnl_status_t st =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success)
    fail(ErrorCode::kInternal, "sgemm failed (status " + std::to_string(int(st)) + ") for M=" + std::to_string(m) +
                                   " N=" + std::to_string(n) + " K=" + std::to_string(k));
}

Tensor matmul(const Tensor& x, const Tensor& y, bool transpose_x, bool transpose_y, const std::string& what) {
  Shape xs = x.shape(), ys = y.shape();
  if (xs.empty() || ys.empty()) fail(ErrorCode::kFormat, what + ": matmul operands must have rank >= 1");
  const bool x_vec = xs.size() == 1, y_vec = ys.size() == 1;
  if (x_vec) {
    xs = {1, xs[0]};
    transpose_x = false;
  }
  if (y_vec) {
    ys = {ys[0], 1};
    transpose_y = false;
  }
  const size_t rx = xs.size(), ry = ys.size();
  const int64_t m = transpose_x ? xs[rx - 1] : xs[rx - 2];
  const int64_t k = transpose_x ? xs[rx - 2] : xs[rx - 1];
  const int64_t k2 = transpose_y ? ys[ry - 1] : ys[ry - 2];
  const int64_t n = transpose_y ? ys[ry - 2] : ys[ry - 1];
  if (k != k2)
    fail(ErrorCode::kFormat, what + ": inner dimensions differ: x " + shape_str(x.shape()) + ", y " +
                                 shape_str(y.shape()) + (transpose_x ? " (transpose_x)" : "") +
                                 (transpose_y ? " (transpose_y)" : ""));
  const Shape xb(xs.begin(), xs.end() - 2), yb(ys.begin(), ys.end() - 2);
  const Shape ob = broadcast_shapes(xb, yb, what);
  Shape out = ob;
  out.push_back(m);
  out.push_back(n);
  Tensor o = Tensor::empty(out);
  const int64_t batches = shape_numel(ob);
  const int64_t xmat = xs[rx - 2] * xs[rx - 1], ymat = ys[ry - 2] * ys[ry - 1];
  std::vector<int64_t> xst = broadcast_strides(xb, ob), yst = broadcast_strides(yb, ob);
  for (auto& s : xst) s *= xmat;
  for (auto& s : yst) s *= ymat;
  const float* X = x.f32();
  const float* Y = y.f32();
  float* O = o.f32();
  const bool y_shared = std::all_of(yst.begin(), yst.end(), [](int64_t s) { return s == 0; });
  if (batches > 1 && y_shared && !transpose_x && xb.size() == ob.size() && shape_numel(xb) == batches) {
    // y is one matrix for every batch and x's batches are contiguous rows: one GEMM.
    gemm(false, transpose_y, batches * m, n, k, X, k, Y, ys[ry - 1], O, n);
  } else {
    auto offsets = [&](int64_t b, int64_t& ox, int64_t& oy) {
      ox = 0;
      oy = 0;
      for (size_t d = ob.size(); d-- > 0;) {
        const int64_t i = b % ob[d];
        b /= ob[d];
        ox += i * xst[d];
        oy += i * yst[d];
      }
    };
    auto run = [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        int64_t ox, oy;
        offsets(b, ox, oy);
        gemm(transpose_x, transpose_y, m, n, k, X + ox, xs[rx - 1], Y + oy, ys[ry - 1], O + b * m * n, n);
      }
    };
    // Many small products: one single-threaded GEMM per batch on every thread (oneDNN runs
    // sequentially inside a parallel region). Large products: each GEMM uses all threads.
    if (batches >= 2 * int64_t(num_threads()) && m * n * k <= (int64_t(1) << 22))
      parallel_for(batches, run);
    else
      run(0, batches);
  }
  if (x_vec) out.erase(out.end() - 2);
  if (y_vec) out.erase(out.end() - 1);
  return o.reshape(out);
}

namespace {

__attribute__((target("avx,f16c"))) void round_fp16_f16c(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) x[i] = f16_to_f32(f32_to_f16(x[i]));
}

void round_fp16_portable(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = f16_to_f32(f32_to_f16(x[i]));
}

}  // namespace

void round_span_to_fp16(float* x, int64_t n) {
  static const bool f16c = cpu_features().f16c;
  if (f16c)
    round_fp16_f16c(x, n);
  else
    round_fp16_portable(x, n);
}

void round_to_fp16(float* x, int64_t n) {
  const bool f16c = cpu_features().f16c;
  parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        if (f16c)
          round_fp16_f16c(x + b, e - b);
        else
          round_fp16_portable(x + b, e - b);
      },
      1 << 18);
}

void round_to_bf16(float* x, int64_t n) {
  parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x[i] = bf16_to_f32(f32_to_bf16(x[i]));
      },
      1 << 18);
}

AxisSplit split_at_axis(const Shape& s, int axis) {
  AxisSplit a;
  for (int d = 0; d < int(s.size()); ++d) {
    if (d < axis) a.outer *= s[size_t(d)];
    else if (d == axis) a.len = s[size_t(d)];
    else a.inner *= s[size_t(d)];
  }
  return a;
}

int normalize_axis(int64_t axis, int rank, const std::string& what) {
  if (axis < -rank || axis >= rank)
    fail(ErrorCode::kFormat, what + ": axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return int(axis < 0 ? axis + rank : axis);
}

}  // namespace sdpal::mil::detail
