// Shape and data-movement ops: reshape, transpose, expand_dims, squeeze, concat, split, stack,
// slicing, gathers, tile, pad, range_1d, fill, band_part, upsample_nearest_neighbor, shape, ...
// Semantics from coremltools mil/ops/defs/iOS15..iOS17 tensor_transformation.py,
// tensor_operation.py, scatter_gather.py and image_resizing.py.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "mil/ops.h"
#include "mil/tensor_util.h"

namespace sdpal::mil::detail {

namespace {

using Outs = std::vector<Tensor>;

std::string ints_str(const std::vector<int64_t>& v) { return shape_str(Shape(v.begin(), v.end())); }

Outs reshape(OpContext& c) {
  const Tensor x = c.tensor("x");
  std::vector<int64_t> s = c.ints("shape");
  const Shape& xs = x.shape();
  const int rank = x.rank(), k = int(s.size());
  if (std::count(s.begin(), s.end(), 0) > 0) {
    if (c.opset_version() >= 17) {  // each 0 copies the x dimension at the same place counted from the right
      for (int i = 0; i < k; ++i)
        if (s[size_t(i)] == 0) {
          const int j = rank - (k - i);
          s[size_t(i)] = j >= 0 ? xs[size_t(j)] : 1;
        }
    } else {
      if (k != rank) c.fail("shape " + ints_str(c.ints("shape")) + " has a 0 but not the rank of x " + shape_str(xs));
      for (int i = 0; i < k; ++i)
        if (s[size_t(i)] == 0) s[size_t(i)] = xs[size_t(i)];
    }
  }
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < k; ++i) {
    if (s[size_t(i)] == -1) {
      if (infer >= 0) c.fail("shape " + ints_str(s) + " has more than one -1");
      infer = i;
    } else if (s[size_t(i)] < 0) {
      c.fail("shape " + ints_str(s) + " has a negative dimension");
    } else {
      known *= s[size_t(i)];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0) c.fail("cannot reshape " + shape_str(xs) + " to " + ints_str(c.ints("shape")));
    s[size_t(infer)] = x.numel() / known;
  }
  const Shape out(s.begin(), s.end());
  if (shape_numel(out) != x.numel()) c.fail("cannot reshape " + shape_str(xs) + " to " + shape_str(out));
  return {x.reshape(out)};
}

std::vector<int> perm_of(OpContext& c, const std::vector<int64_t>& p, int rank) {
  if (int(p.size()) != rank) c.fail("perm " + ints_str(p) + " must have " + std::to_string(rank) + " entries");
  std::vector<int> perm(static_cast<size_t>(rank));
  std::vector<bool> seen(size_t(rank), false);
  for (int i = 0; i < rank; ++i) {
    const int a = normalize_axis(p[size_t(i)], rank, c.where());
    if (seen[size_t(a)]) c.fail("perm " + ints_str(p) + " is not a permutation");
    seen[size_t(a)] = true;
    perm[size_t(i)] = a;
  }
  return perm;
}

Outs transpose(OpContext& c) {
  const Tensor x = c.tensor("x");
  return {permute(x, perm_of(c, c.ints("perm"), x.rank()))};
}

Outs expand_dims(OpContext& c) {
  const Tensor x = c.tensor("x");
  const auto axes = c.ints("axes");
  const int out_rank = x.rank() + int(axes.size());
  std::vector<int> ax;
  for (int64_t a : axes) ax.push_back(normalize_axis(a, out_rank, c.where()));
  std::sort(ax.begin(), ax.end());
  if (std::adjacent_find(ax.begin(), ax.end()) != ax.end()) c.fail("axes " + ints_str(axes) + " repeat an axis");
  Shape s = x.shape();
  for (int a : ax) s.insert(s.begin() + a, 1);
  return {x.reshape(s)};
}

Outs squeeze(OpContext& c) {
  const Tensor x = c.tensor("x");
  Shape s;
  if (auto axes = c.optional_ints("axes")) {
    std::vector<bool> drop(size_t(x.rank()), false);
    for (int64_t a : *axes) drop[size_t(normalize_axis(a, x.rank(), c.where()))] = true;
    for (int d = 0; d < x.rank(); ++d)
      if (!(drop[size_t(d)] && x.dim(d) == 1)) s.push_back(x.dim(d));  // non-unit axes are kept (PyTorch)
  } else {
    for (int64_t d : x.shape())
      if (d != 1) s.push_back(d);
  }
  return {x.reshape(s)};
}

// Copies x[outer, [begin, begin + len), inner] along the split axis.
Tensor slice_axis(const Tensor& x, int axis, int64_t begin, int64_t len) {
  Shape s = x.shape();
  s[size_t(axis)] = len;
  const auto st = row_major_strides(x.shape());
  return strided_copy(x.f32(), begin * st[size_t(axis)], st, s);
}

Tensor concat_tensors(OpContext& c, const std::vector<Tensor>& vals, int64_t axis_arg, bool interleave) {
  if (vals.empty()) c.fail("concat needs at least one value");
  const int rank = vals[0].rank();
  if (rank == 0) c.fail("cannot concatenate scalars");
  const int axis = normalize_axis(axis_arg, rank, c.where());
  Shape out = vals[0].shape();
  out[size_t(axis)] = 0;
  for (const Tensor& v : vals) {
    bool ok = v.rank() == rank;
    for (int d = 0; ok && d < rank; ++d) ok = d == axis || v.dim(d) == out[size_t(d)];
    if (ok && interleave) ok = v.shape() == vals[0].shape();
    if (!ok)
      c.fail(std::string("values ") + shape_str(vals[0].shape()) + " and " + shape_str(v.shape()) + " cannot be " +
             (interleave ? "interleaved" : "concatenated") + " along axis " + std::to_string(axis));
    out[size_t(axis)] += v.dim(axis);
  }
  Tensor y = Tensor::empty(out);
  const AxisSplit os = split_at_axis(out, axis);
  float* Y = y.f32();
  const int64_t n = int64_t(vals.size());
  parallel_for(os.outer, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      if (!interleave) {
        int64_t off = 0;
        for (const Tensor& v : vals) {
          const int64_t len = v.dim(axis) * os.inner;
          std::memcpy(Y + o * os.len * os.inner + off, v.f32() + o * len, size_t(len) * sizeof(float));
          off += len;
        }
      } else {
        const int64_t len = vals[0].dim(axis);
        for (int64_t i = 0; i < len; ++i)
          for (int64_t j = 0; j < n; ++j)
            std::memcpy(Y + (o * os.len + i * n + j) * os.inner, vals[size_t(j)].f32() + (o * len + i) * os.inner,
                        size_t(os.inner) * sizeof(float));
      }
    }
  }, grain_for(os.len * os.inner));
  return y;
}

Outs concat(OpContext& c) {
  return {concat_tensors(c, c.tensors("values"), c.int_scalar("axis"), c.bool_or("interleave", false))};
}

Outs stack(OpContext& c) {
  std::vector<Tensor> vals = c.tensors("values");
  if (vals.empty()) c.fail("stack needs at least one value");
  const int rank = vals[0].rank();
  const int axis = normalize_axis(c.int_scalar("axis"), rank + 1, c.where());
  const Shape first = vals[0].shape();
  for (Tensor& v : vals) {
    if (v.shape() != first) c.fail("stacked values differ in shape: " + shape_str(first) + " and " + shape_str(v.shape()));
    Shape s = v.shape();
    s.insert(s.begin() + axis, 1);
    v = v.reshape(s);
  }
  return {concat_tensors(c, vals, axis, false)};
}

Outs split(OpContext& c) {
  const Tensor x = c.tensor("x");
  if (x.rank() == 0) c.fail("cannot split a scalar");
  const int axis = normalize_axis(c.int_scalar("axis"), x.rank(), c.where());
  const int64_t len = x.dim(axis);
  std::vector<int64_t> sizes;
  if (auto ss = c.optional_ints("split_sizes")) {
    sizes = *ss;
    int64_t sum = 0;
    for (int64_t v : sizes) {
      if (v < 0) c.fail("negative split size in " + ints_str(sizes));
      sum += v;
    }
    if (sum != len) c.fail("split_sizes " + ints_str(sizes) + " do not add up to " + std::to_string(len) + " (axis " + std::to_string(axis) + ")");
  } else if (c.has("num_splits")) {
    const int64_t n = c.int_scalar("num_splits");
    if (n <= 0 || len % n != 0) c.fail("dimension " + std::to_string(len) + " cannot be split into " + std::to_string(n) + " equal parts");
    sizes.assign(size_t(n), len / n);
  } else {
    c.fail("split needs split_sizes or num_splits");
  }
  if (sizes.size() != c.num_outputs())
    c.fail("splits into " + std::to_string(sizes.size()) + " parts but declares " + std::to_string(c.num_outputs()) + " outputs");
  Outs outs;
  int64_t off = 0;
  for (int64_t s : sizes) {
    outs.push_back(slice_axis(x, axis, off, s));
    off += s;
  }
  return outs;
}

// Python slice semantics (slice.indices): start, step and count of x[b:e:s] over a dimension of n.
struct Range1 {
  int64_t start = 0, step = 1, count = 0;
};

Range1 py_slice(int64_t n, std::optional<int64_t> b, std::optional<int64_t> e, int64_t s) {
  Range1 r;
  r.step = s;
  int64_t lo, hi;
  if (s > 0) {
    lo = b ? (*b < 0 ? std::max<int64_t>(*b + n, 0) : std::min(*b, n)) : 0;
    hi = e ? (*e < 0 ? std::max<int64_t>(*e + n, 0) : std::min(*e, n)) : n;
    r.start = lo;
    r.count = hi > lo ? (hi - lo + s - 1) / s : 0;
  } else {
    lo = b ? (*b < 0 ? std::max<int64_t>(*b + n, -1) : std::min(*b, n - 1)) : n - 1;
    hi = e ? (*e < 0 ? std::max<int64_t>(*e + n, -1) : std::min(*e, n - 1)) : -1;
    r.start = lo;
    r.count = lo > hi ? (lo - hi + (-s) - 1) / (-s) : 0;
  }
  return r;
}

Outs slice_by_index(OpContext& c) {
  const Tensor x = c.tensor("x");
  const int rank = x.rank();
  const auto begin = c.ints("begin");
  const auto end = c.ints("end");
  if (int(begin.size()) != rank || int(end.size()) != rank)
    c.fail("begin " + ints_str(begin) + " and end " + ints_str(end) + " must have " + std::to_string(rank) + " entries");
  std::vector<int64_t> stride(size_t(rank), 1);
  if (auto s = c.optional_ints("stride")) {
    if (int(s->size()) != rank) c.fail("stride " + ints_str(*s) + " must have " + std::to_string(rank) + " entries");
    stride = *s;
  }
  const auto bmask = c.bools_or("begin_mask", size_t(rank), false);
  const auto emask = c.bools_or("end_mask", size_t(rank), false);
  const auto smask = c.bools_or("squeeze_mask", size_t(rank), false);
  const auto xst = row_major_strides(x.shape());
  Shape full, out;
  std::vector<int64_t> st;
  int64_t base = 0;
  for (int d = 0; d < rank; ++d) {
    const int64_t n = x.dim(d);
    if (smask[size_t(d)]) {
      int64_t i = begin[size_t(d)];
      if (i < 0) i += n;
      if (i < 0 || i >= n) c.fail("squeezed index " + std::to_string(begin[size_t(d)]) + " is outside dimension " + std::to_string(d) + " of " + shape_str(x.shape()));
      base += i * xst[size_t(d)];
      continue;
    }
    if (stride[size_t(d)] == 0) c.fail("stride 0 on axis " + std::to_string(d));
    const Range1 r = py_slice(n, bmask[size_t(d)] ? std::nullopt : std::optional<int64_t>(begin[size_t(d)]),
                              emask[size_t(d)] ? std::nullopt : std::optional<int64_t>(end[size_t(d)]), stride[size_t(d)]);
    if (r.count > 0) base += r.start * xst[size_t(d)];
    out.push_back(r.count);
    st.push_back(r.step * xst[size_t(d)]);
  }
  return {strided_copy(x.f32(), base, st, out)};
}

Outs slice_by_size(OpContext& c) {
  const Tensor x = c.tensor("x");
  const int rank = x.rank();
  const auto begin = c.ints("begin");
  const auto size = c.ints("size");
  if (int(begin.size()) != rank || int(size.size()) != rank)
    c.fail("begin " + ints_str(begin) + " and size " + ints_str(size) + " must have " + std::to_string(rank) + " entries");
  const auto xst = row_major_strides(x.shape());
  Shape out(static_cast<size_t>(rank));
  int64_t base = 0;
  for (int d = 0; d < rank; ++d) {
    const int64_t n = x.dim(d);
    int64_t b = begin[size_t(d)];
    if (b < 0) b += n;
    const int64_t len = size[size_t(d)] < 0 ? n - b : size[size_t(d)];
    if (b < 0 || b > n || len < 0 || b + len > n)
      c.fail("slice begin " + ints_str(begin) + " size " + ints_str(size) + " is outside " + shape_str(x.shape()));
    base += b * xst[size_t(d)];
    out[size_t(d)] = len;
  }
  return {strided_copy(x.f32(), base, xst, out)};
}

int64_t checked_index(OpContext& c, float v, int64_t n, const char* what) {
  const int64_t i = int64_t(v);
  if (float(i) != v || i < -n || i >= n)
    c.fail(std::string(what) + " " + std::to_string(v) + " is out of range for a dimension of " + std::to_string(n));
  return i < 0 ? i + n : i;
}

Outs gather(OpContext& c) {
  const Tensor x = c.tensor("x");
  const Tensor idx = c.tensor("indices");
  const int rank = x.rank();
  if (rank == 0) c.fail("cannot gather from a scalar");
  const int axis = normalize_axis(c.int_or("axis", 0), rank, c.where());
  int64_t bd = c.int_or("batch_dims", 0);
  if (bd < 0) bd += idx.rank();
  if (bd < 0 || bd > axis || bd > idx.rank()) c.fail("batch_dims " + std::to_string(bd) + " is out of range");
  for (int d = 0; d < bd; ++d)
    if (x.dim(d) != idx.dim(d)) c.fail("batch dimensions of x " + shape_str(x.shape()) + " and indices " + shape_str(idx.shape()) + " differ");
  Shape out(x.shape().begin(), x.shape().begin() + axis);
  out.insert(out.end(), idx.shape().begin() + bd, idx.shape().end());
  out.insert(out.end(), x.shape().begin() + axis + 1, x.shape().end());
  int64_t batch = 1, pre = 1, inner = 1, count = 1;
  for (int d = 0; d < bd; ++d) batch *= x.dim(d);
  for (int d = int(bd); d < axis; ++d) pre *= x.dim(d);
  for (int d = axis + 1; d < rank; ++d) inner *= x.dim(d);
  for (int d = int(bd); d < idx.rank(); ++d) count *= idx.dim(d);
  const int64_t n = x.dim(axis);
  Tensor y = Tensor::empty(out);
  const float *X = x.f32(), *I = idx.f32();
  float* Y = y.f32();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t k = 0; k < count; ++k) checked_index(c, I[b * count + k], n, "index");
  parallel_for(batch * pre, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / pre;
      for (int64_t k = 0; k < count; ++k) {
        int64_t i = int64_t(I[b * count + k]);
        if (i < 0) i += n;
        std::memcpy(Y + (r * count + k) * inner, X + (r * n + i) * inner, size_t(inner) * sizeof(float));
      }
    }
  }, grain_for(count * inner));
  return {y};
}

Outs gather_nd(OpContext& c) {
  const Tensor x = c.tensor("x");
  const Tensor idx = c.tensor("indices");
  const int64_t bd = c.int_or("batch_dims", 0);
  if (idx.rank() < 1) c.fail("indices must have rank >= 1");
  const int64_t k = idx.dim(-1);
  if (bd < 0 || bd + k > x.rank() || bd >= idx.rank())
    c.fail("indices " + shape_str(idx.shape()) + " with batch_dims " + std::to_string(bd) + " do not fit x " + shape_str(x.shape()));
  for (int d = 0; d < bd; ++d)
    if (x.dim(d) != idx.dim(d)) c.fail("batch dimensions of x " + shape_str(x.shape()) + " and indices " + shape_str(idx.shape()) + " differ");
  Shape out(idx.shape().begin(), idx.shape().end() - 1);
  out.insert(out.end(), x.shape().begin() + bd + k, x.shape().end());
  int64_t batch = 1, per_batch = 1, inner = 1, xbatch = 1;
  for (int d = 0; d < bd; ++d) batch *= x.dim(d);
  for (int d = int(bd); d + 1 < idx.rank(); ++d) per_batch *= idx.dim(d);
  for (int d = int(bd + k); d < x.rank(); ++d) inner *= x.dim(d);
  for (int d = int(bd); d < x.rank(); ++d) xbatch *= x.dim(d);
  const auto xst = row_major_strides(x.shape());
  Tensor y = Tensor::empty(out);
  const float *X = x.f32(), *I = idx.f32();
  float* Y = y.f32();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t p = 0; p < per_batch; ++p) {
      const float* t = I + (b * per_batch + p) * k;
      int64_t off = b * xbatch;
      for (int64_t j = 0; j < k; ++j) off += checked_index(c, t[j], x.dim(int(bd + j)), "index") * xst[size_t(bd + j)];
      std::memcpy(Y + (b * per_batch + p) * inner, X + off, size_t(inner) * sizeof(float));
    }
  return {y};
}

Outs gather_along_axis(OpContext& c) {
  const Tensor x = c.tensor("x");
  const Tensor idx = c.tensor("indices");
  if (idx.rank() != x.rank()) c.fail("indices " + shape_str(idx.shape()) + " must have the rank of x " + shape_str(x.shape()));
  const int axis = normalize_axis(c.int_or("axis", 0), x.rank(), c.where());
  for (int d = 0; d < x.rank(); ++d)
    if (d != axis && idx.dim(d) != x.dim(d)) c.fail("indices " + shape_str(idx.shape()) + " and x " + shape_str(x.shape()) + " differ off the axis");
  const AxisSplit is = split_at_axis(idx.shape(), axis);
  const int64_t n = x.dim(axis);
  Tensor y = Tensor::empty(idx.shape());
  const float *X = x.f32(), *I = idx.f32();
  float* Y = y.f32();
  for (int64_t o = 0; o < is.outer; ++o)
    for (int64_t a = 0; a < is.len; ++a)
      for (int64_t i = 0; i < is.inner; ++i) {
        const int64_t p = (o * is.len + a) * is.inner + i;
        Y[p] = X[(o * n + checked_index(c, I[p], n, "index")) * is.inner + i];
      }
  return {y};
}

Outs tile(OpContext& c) {
  const Tensor x = c.tensor("x");
  const auto reps = c.ints("reps");
  if (int(reps.size()) != x.rank()) c.fail("reps " + ints_str(reps) + " must have " + std::to_string(x.rank()) + " entries");
  Shape out(x.shape());
  for (size_t d = 0; d < out.size(); ++d) {
    if (reps[d] < 0) c.fail("negative reps " + ints_str(reps));
    out[d] *= reps[d];
  }
  Tensor y = Tensor::empty(out);
  if (y.numel() == 0) return {y};
  if (x.rank() == 0) {
    y.f32()[0] = x.f32()[0];
    return {y};
  }
  const int r = x.rank();
  const int64_t last = x.dim(-1), olast = out.back();
  const auto xst = row_major_strides(x.shape());
  const float* X = x.f32();
  float* Y = y.f32();
  const int64_t rows = y.numel() / olast;
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      int64_t rem = row, off = 0;
      for (int d = r - 2; d >= 0; --d) {
        const int64_t i = rem % out[size_t(d)];
        rem /= out[size_t(d)];
        off += (i % x.dim(d)) * xst[size_t(d)];
      }
      for (int64_t j = 0; j < olast; j += last) std::memcpy(Y + row * olast + j, X + off, size_t(last) * sizeof(float));
    }
  }, grain_for(olast));
  return {y};
}

Outs pad(OpContext& c) {
  const Tensor x = c.tensor("x");
  const auto p = c.ints("pad");
  const std::string mode = c.string_or("mode", "constant");
  const float value = float(c.float_or("constant_val", 0.0));
  const int rank = x.rank();
  if (p.size() % 2 != 0 || int(p.size() / 2) > rank || rank == 0)
    c.fail("pad " + ints_str(p) + " must hold a (before, after) pair for each of the last dimensions of " + shape_str(x.shape()));
  if (mode != "constant" && mode != "reflect" && mode != "replicate")
    c.fail("unknown pad mode '" + mode + "' (constant, reflect or replicate)");
  std::vector<int64_t> before(size_t(rank), 0), after(size_t(rank), 0);
  const int first = rank - int(p.size() / 2);
  for (int d = first; d < rank; ++d) {
    before[size_t(d)] = p[size_t(2 * (d - first))];
    after[size_t(d)] = p[size_t(2 * (d - first) + 1)];
    const int64_t n = x.dim(d);
    if (before[size_t(d)] < 0 || after[size_t(d)] < 0) c.fail("negative padding " + ints_str(p));
    if (mode == "reflect" && (before[size_t(d)] > n - 1 || after[size_t(d)] > n - 1))
      c.fail("reflect padding " + ints_str(p) + " must be smaller than the padded dimensions of " + shape_str(x.shape()));
    if (mode == "replicate" && n == 0) c.fail("cannot replicate-pad an empty dimension");
  }
  Shape out(x.shape());
  for (int d = 0; d < rank; ++d) out[size_t(d)] += before[size_t(d)] + after[size_t(d)];
  // Source index along dimension d for output index i, or -1 outside x (constant mode).
  auto src = [&](int d, int64_t i) -> int64_t {
    const int64_t n = x.dim(d);
    int64_t s = i - before[size_t(d)];
    if (s >= 0 && s < n) return s;
    if (mode == "constant") return -1;
    if (mode == "replicate") return s < 0 ? 0 : n - 1;
    return s < 0 ? -s : 2 * (n - 1) - s;  // reflect
  };
  Tensor y = Tensor::empty(out);
  if (y.numel() == 0) return {y};
  const int64_t olast = out.back();
  std::vector<int64_t> last_map(static_cast<size_t>(olast));
  for (int64_t j = 0; j < olast; ++j) last_map[size_t(j)] = src(rank - 1, j);
  const auto xst = row_major_strides(x.shape());
  const float* X = x.f32();
  float* Y = y.f32();
  parallel_for(y.numel() / olast, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      int64_t rem = row, off = 0;
      bool inside = true;
      for (int d = rank - 2; d >= 0; --d) {
        const int64_t s = src(d, rem % out[size_t(d)]);
        rem /= out[size_t(d)];
        if (s < 0) inside = false;
        else off += s * xst[size_t(d)];
      }
      float* o = Y + row * olast;
      if (!inside) {
        std::fill(o, o + olast, value);
        continue;
      }
      for (int64_t j = 0; j < olast; ++j) o[j] = last_map[size_t(j)] < 0 ? value : X[off + last_map[size_t(j)]];
    }
  }, grain_for(olast));
  return {y};
}

Outs range_1d(OpContext& c) {
  const double start = c.float_scalar("start"), end = c.float_scalar("end"), step = c.float_scalar("step");
  if (step == 0.0) c.fail("step must not be 0");
  const double n = std::ceil((end - start) / step);
  const int64_t count = n > 0 ? int64_t(n) : 0;
  Tensor y = Tensor::empty({count});
  for (int64_t i = 0; i < count; ++i) y.f32()[i] = float(start + double(i) * step);
  return {y};
}

Outs fill(OpContext& c) {
  const auto s = c.ints("shape");
  for (int64_t d : s)
    if (d < 0) c.fail("negative dimension in shape " + ints_str(s));
  Tensor y = Tensor::empty(Shape(s.begin(), s.end()));
  std::fill(y.f32(), y.f32() + y.numel(), float(c.float_or("value", 0.0)));
  return {y};
}

Outs band_part(OpContext& c) {
  const Tensor x = c.tensor("x");
  if (x.rank() < 2) c.fail("x must have rank >= 2, got " + shape_str(x.shape()));
  const int64_t lower = c.int_or("lower", -1), upper = c.int_or("upper", -1);
  const int64_t rows = x.dim(-2), cols = x.dim(-1);
  Tensor y = x.clone();
  float* Y = y.f32();
  const int64_t mats = x.numel() / std::max<int64_t>(rows * cols, 1);
  for (int64_t b = 0; b < mats; ++b)
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t n = 0; n < cols; ++n)
        if (!((lower < 0 || m - n <= lower) && (upper < 0 || n - m <= upper))) Y[(b * rows + m) * cols + n] = 0.0f;
  return {y};
}

Outs upsample_nearest_neighbor(OpContext& c) {
  const Tensor x = c.tensor("x");
  if (x.rank() < 3) c.fail("x must have rank >= 3, got " + shape_str(x.shape()));
  const double sh = c.float_or("scale_factor_height", 1.0), sw = c.float_or("scale_factor_width", 1.0);
  if (!(sh > 0) || !(sw > 0)) c.fail("scale factors must be positive");
  const int64_t h = x.dim(-2), w = x.dim(-1);
  const int64_t oh = int64_t(std::floor(double(h) * sh)), ow = int64_t(std::floor(double(w) * sw));
  Shape out = x.shape();
  out[out.size() - 2] = oh;
  out[out.size() - 1] = ow;
  std::vector<int64_t> ys(static_cast<size_t>(oh)), xs(static_cast<size_t>(ow));
  for (int64_t i = 0; i < oh; ++i) ys[size_t(i)] = std::min(h - 1, int64_t(std::floor(double(i) / sh)));
  for (int64_t j = 0; j < ow; ++j) xs[size_t(j)] = std::min(w - 1, int64_t(std::floor(double(j) / sw)));
  Tensor y = Tensor::empty(out);
  const float* X = x.f32();
  float* Y = y.f32();
  const int64_t planes = x.numel() / std::max<int64_t>(h * w, 1);
  parallel_for(planes * oh, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t p = r / oh, i = r % oh;
      const float* src = X + (p * h + ys[size_t(i)]) * w;
      float* dst = Y + r * ow;
      for (int64_t j = 0; j < ow; ++j) dst[j] = src[xs[size_t(j)]];
    }
  }, grain_for(ow));
  return {y};
}

Outs shape_op(OpContext& c) {
  const Tensor x = c.tensor("x");
  Tensor y = Tensor::empty({int64_t(x.rank())});
  for (int d = 0; d < x.rank(); ++d) y.f32()[d] = float(x.dim(d));
  return {y};
}

Outs reverse(OpContext& c) {
  const Tensor x = c.tensor("x");
  std::vector<bool> flip(size_t(x.rank()), !c.has("axes"));
  if (auto axes = c.optional_ints("axes"))
    for (int64_t a : *axes) flip[size_t(normalize_axis(a, x.rank(), c.where()))] = true;
  auto st = row_major_strides(x.shape());
  int64_t base = 0;
  for (int d = 0; d < x.rank(); ++d)
    if (flip[size_t(d)] && x.dim(d) > 0) {
      base += (x.dim(d) - 1) * st[size_t(d)];
      st[size_t(d)] = -st[size_t(d)];
    }
  return {strided_copy(x.f32(), base, st, x.shape())};
}

Outs flatten2d(OpContext& c) {
  const Tensor x = c.tensor("x");
  const int axis = normalize_axis(c.int_or("axis", 1), x.rank() + 1, c.where());
  int64_t a = 1;
  for (int d = 0; d < axis; ++d) a *= x.dim(d);
  return {x.reshape({a, x.numel() / std::max<int64_t>(a, 1)})};
}

}  // namespace

void register_tensor_ops(OpRegistry& r) {
  r["reshape"] = reshape;
  r["transpose"] = transpose;
  r["expand_dims"] = expand_dims;
  r["squeeze"] = squeeze;
  r["concat"] = concat;
  r["stack"] = stack;
  r["split"] = split;
  r["slice_by_index"] = slice_by_index;
  r["slice_by_size"] = slice_by_size;
  r["gather"] = gather;
  r["gather_nd"] = gather_nd;
  r["gather_along_axis"] = gather_along_axis;
  r["tile"] = tile;
  r["pad"] = pad;
  r["range_1d"] = range_1d;
  r["fill"] = fill;
  r["band_part"] = band_part;
  r["upsample_nearest_neighbor"] = upsample_nearest_neighbor;
  r["shape"] = shape_op;
  r["reverse"] = reverse;
  r["flatten2d"] = flatten2d;
}

}  // namespace sdpal::mil::detail
