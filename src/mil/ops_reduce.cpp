// Reductions, arg-reductions, softmax and normalizations. Sums accumulate in double.
// Semantics from coremltools mil/ops/defs/iOS15/{reduction,activation,normalization}.py.
#include <algorithm>
#include <cmath>
#include <limits>

#include "mil/ops.h"
#include "mil/tensor_util.h"

namespace sdpal::mil::detail {

namespace {

using Outs = std::vector<Tensor>;

enum class Red { kSum, kMean, kProd, kMax, kMin, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

// x viewed as [outer, R, inner] with the reduced axes in the middle (permuted there if needed).
struct ReduceView {
  Tensor x;
  int64_t outer = 1, len = 1, inner = 1;
  Shape out_keep, out_drop;  // result shape with / without the reduced axes
};

ReduceView reduce_view(OpContext& c, const Tensor& x, std::optional<std::vector<int64_t>> axes_arg) {
  const int rank = x.rank();
  std::vector<bool> red(size_t(rank), !axes_arg.has_value());
  if (axes_arg)
    for (int64_t a : *axes_arg) red[size_t(normalize_axis(a, rank, c.where()))] = true;
  ReduceView v;
  for (int d = 0; d < rank; ++d) {
    v.out_keep.push_back(red[size_t(d)] ? 1 : x.dim(d));
    if (!red[size_t(d)]) v.out_drop.push_back(x.dim(d));
  }
  int first = -1, last = -1;
  for (int d = 0; d < rank; ++d)
    if (red[size_t(d)]) {
      if (first < 0) first = d;
      last = d;
    }
  bool contiguous = true;
  for (int d = first; d >= 0 && d <= last; ++d) contiguous = contiguous && red[size_t(d)];
  if (first < 0) {  // nothing to reduce
    v.x = x;
    v.outer = x.numel();
    return v;
  }
  if (contiguous) {
    v.x = x;
    for (int d = 0; d < rank; ++d) {
      if (d < first) v.outer *= x.dim(d);
      else if (d <= last) v.len *= x.dim(d);
      else v.inner *= x.dim(d);
    }
    return v;
  }
  std::vector<int> perm;
  for (int d = 0; d < rank; ++d)
    if (!red[size_t(d)]) perm.push_back(d);
  for (int d = 0; d < rank; ++d)
    if (red[size_t(d)]) perm.push_back(d);
  v.x = permute(x, perm);
  for (int d = 0; d < rank; ++d) (red[size_t(d)] ? v.len : v.outer) *= x.dim(d);
  return v;
}

Tensor reduce(OpContext& c, Red op) {
  const Tensor x = c.tensor("x");
  const ReduceView v = reduce_view(c, x, c.optional_ints("axes"));
  const bool keep = c.bool_or("keep_dims", false);
  Tensor y = Tensor::empty(keep ? v.out_keep : v.out_drop);
  const float* X = v.x.f32();
  float* Y = y.f32();
  const int64_t R = v.len, I = v.inner;
  if (I == 1) {  // rows
    parallel_for(v.outer, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float* row = X + o * R;
        double a = 0;
        switch (op) {
          case Red::kSum: case Red::kMean: case Red::kLogSum:
            for (int64_t r = 0; r < R; ++r) a += row[r];
            break;
          case Red::kProd:
            a = 1;
            for (int64_t r = 0; r < R; ++r) a *= row[r];
            break;
          case Red::kMax: case Red::kMin: {
            float m = R ? row[0] : (op == Red::kMax ? -INFINITY : INFINITY);
            for (int64_t r = 1; r < R && !std::isnan(m); ++r)
              if (std::isnan(row[r]) || (op == Red::kMax ? row[r] > m : row[r] < m)) m = row[r];
            a = m;
            break;
          }
          case Red::kL1:
            for (int64_t r = 0; r < R; ++r) a += std::fabs(double(row[r]));
            break;
          case Red::kL2: case Red::kSumSquare:
            for (int64_t r = 0; r < R; ++r) a += double(row[r]) * row[r];
            break;
          case Red::kLogSumExp: {
            float m = -INFINITY;
            for (int64_t r = 0; r < R; ++r) m = std::max(m, row[r]);
            for (int64_t r = 0; r < R; ++r) a += std::exp(double(row[r]) - m);
            a = std::log(a) + m;
            break;
          }
        }
        if (op == Red::kMean) a /= double(R);
        else if (op == Red::kL2) a = std::sqrt(a);
        else if (op == Red::kLogSum) a = std::log(a);
        Y[o] = float(a);
      }
    }, grain_for(R));
    return y;
  }
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (I + kBlock - 1) / kBlock;
  parallel_for(v.outer * blocks, [&](int64_t t0, int64_t t1) {
    std::vector<double> acc(static_cast<size_t>(kBlock)), mx(static_cast<size_t>(kBlock));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / blocks, i0 = (t % blocks) * kBlock, n = std::min(kBlock, I - i0);
      const float* base = X + o * R * I + i0;
      const double init = op == Red::kProd ? 1.0
                          : op == Red::kMax ? -std::numeric_limits<double>::infinity()
                          : op == Red::kMin ? std::numeric_limits<double>::infinity()
                                            : 0.0;
      std::fill(acc.begin(), acc.begin() + n, init);
      if (op == Red::kLogSumExp) {
        std::fill(mx.begin(), mx.begin() + n, -std::numeric_limits<double>::infinity());
        for (int64_t r = 0; r < R; ++r)
          for (int64_t i = 0; i < n; ++i) mx[size_t(i)] = std::max(mx[size_t(i)], double(base[r * I + i]));
      }
      for (int64_t r = 0; r < R; ++r) {
        const float* row = base + r * I;
        for (int64_t i = 0; i < n; ++i) {
          const double e = row[i];
          double& a = acc[size_t(i)];
          switch (op) {
            case Red::kSum: case Red::kMean: case Red::kLogSum: a += e; break;
            case Red::kProd: a *= e; break;
            case Red::kMax: a = (std::isnan(e) || e > a) ? e : a; break;
            case Red::kMin: a = (std::isnan(e) || e < a) ? e : a; break;
            case Red::kL1: a += std::fabs(e); break;
            case Red::kL2: case Red::kSumSquare: a += e * e; break;
            case Red::kLogSumExp: a += std::exp(e - mx[size_t(i)]); break;
          }
        }
      }
      float* out = Y + o * I + i0;
      for (int64_t i = 0; i < n; ++i) {
        double a = acc[size_t(i)];
        switch (op) {
          case Red::kMean: a /= double(R); break;
          case Red::kL2: a = std::sqrt(a); break;
          case Red::kLogSum: a = std::log(a); break;
          case Red::kLogSumExp: a = std::log(a) + mx[size_t(i)]; break;
          default: break;
        }
        out[i] = float(a);
      }
    }
  }, grain_for(R * std::min(kBlock, I)));
  return y;
}

Tensor arg_reduce(OpContext& c, bool is_max) {
  const Tensor x = c.tensor("x");
  if (x.rank() == 0) c.fail("cannot reduce a scalar");
  const int axis = normalize_axis(c.int_or("axis", -1), x.rank(), c.where());
  const bool keep = c.bool_or("keep_dims", false);
  const AxisSplit s = split_at_axis(x.shape(), axis);
  Shape out = x.shape();
  if (keep) out[size_t(axis)] = 1;
  else out.erase(out.begin() + axis);
  Tensor y = Tensor::empty(out);
  const float* X = x.f32();
  float* Y = y.f32();
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      int64_t best = 0;
      float bv = X[o * s.len * s.inner + i];
      for (int64_t l = 1; l < s.len && !std::isnan(bv); ++l) {  // first extreme; a NaN wins (numpy)
        const float v = X[(o * s.len + l) * s.inner + i];
        if (std::isnan(v) || (is_max ? v > bv : v < bv)) {
          bv = v;
          best = l;
        }
      }
      Y[o * s.inner + i] = float(best);
    }
  return y;
}

Outs softmax(OpContext& c) {
  const Tensor x = c.tensor("x");
  if (x.rank() == 0) c.fail("softmax of a scalar");
  const int axis = normalize_axis(c.int_or("axis", -1), x.rank(), c.where());
  const AxisSplit s = split_at_axis(x.shape(), axis);
  Tensor y = c.output_like("x", x.shape());  // each row is read before it is written
  const float* X = x.f32();
  float* Y = y.f32();
  const int64_t L = s.len, I = s.inner;
  const bool round = c.round_output();
  if (I == 1) {
    parallel_for(s.outer, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* in = X + r * L;
        float* out = Y + r * L;
        // Eight independent lanes, so the reductions vectorize.
        constexpr int kLanes = 8;
        float m[kLanes];
        std::fill(m, m + kLanes, -std::numeric_limits<float>::infinity());
        int64_t j = 0;
        for (; j + kLanes <= L; j += kLanes)
          for (int k = 0; k < kLanes; ++k) m[k] = std::max(m[k], in[j + k]);
        float mx = -std::numeric_limits<float>::infinity();
        for (int k = 0; k < kLanes; ++k) mx = std::max(mx, m[k]);
        for (; j < L; ++j) mx = std::max(mx, in[j]);
        for (j = 0; j < L; ++j) out[j] = exp_fast(in[j] - mx);
        double acc[kLanes] = {};
        for (j = 0; j + kLanes <= L; j += kLanes)
          for (int k = 0; k < kLanes; ++k) acc[k] += double(out[j + k]);
        double sum = 0;
        for (int k = 0; k < kLanes; ++k) sum += acc[k];
        for (; j < L; ++j) sum += out[j];
        const float inv = float(1.0 / sum);
        for (int64_t j = 0; j < L; ++j) out[j] *= inv;
        if (round) round_span_to_fp16(out, L);
      }
    }, grain_for(L));
    if (round) c.set_rounded();
    return {y};
  }
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (I + kBlock - 1) / kBlock;
  parallel_for(s.outer * blocks, [&](int64_t t0, int64_t t1) {
    std::vector<float> mx(static_cast<size_t>(kBlock));
    std::vector<double> sum(static_cast<size_t>(kBlock));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / blocks, i0 = (t % blocks) * kBlock, n = std::min(kBlock, I - i0);
      const float* in = X + o * L * I + i0;
      float* out = Y + o * L * I + i0;
      std::fill(mx.begin(), mx.begin() + n, -std::numeric_limits<float>::infinity());
      std::fill(sum.begin(), sum.begin() + n, 0.0);
      for (int64_t l = 0; l < L; ++l)
        for (int64_t i = 0; i < n; ++i) mx[size_t(i)] = std::max(mx[size_t(i)], in[l * I + i]);
      for (int64_t l = 0; l < L; ++l)
        for (int64_t i = 0; i < n; ++i) sum[size_t(i)] += (out[l * I + i] = exp_fast(in[l * I + i] - mx[size_t(i)]));
      for (int64_t i = 0; i < n; ++i) mx[size_t(i)] = float(1.0 / sum[size_t(i)]);
      for (int64_t l = 0; l < L; ++l)
        for (int64_t i = 0; i < n; ++i) out[l * I + i] *= mx[size_t(i)];
    }
  }, grain_for(L * std::min(kBlock, I)));
  return {y};
}

// Per-channel vector operand of length C (or absent: `def`).
std::vector<float> channel_vec(OpContext& c, const char* name, int64_t C, float def) {
  std::vector<float> v(size_t(C), def);
  if (!c.has(name)) return v;
  const Tensor t = c.tensor(name);
  if (t.numel() != C) c.fail(std::string(name) + " " + shape_str(t.shape()) + " must have " + std::to_string(C) + " elements");
  std::copy(t.f32(), t.f32() + C, v.begin());
  return v;
}

Outs batch_norm(OpContext& c) {
  const Tensor x = c.tensor("x");
  if (x.rank() < 2) c.fail("x must have rank >= 2, got " + shape_str(x.shape()));
  const int64_t C = x.dim(1);
  const auto mean = channel_vec(c, "mean", C, 0.0f);
  const auto var = channel_vec(c, "variance", C, 1.0f);
  if (!c.has("mean") || !c.has("variance")) c.fail("batch_norm needs mean and variance");
  const auto gamma = channel_vec(c, "gamma", C, 1.0f);
  const auto beta = channel_vec(c, "beta", C, 0.0f);
  const float eps = float(c.float_or("epsilon", 1e-5));
  const AxisSplit s = split_at_axis(x.shape(), 1);
  Tensor y = c.output_like("x", x.shape());
  const float* X = x.f32();
  float* Y = y.f32();
  const bool round = c.round_output();
  parallel_for(s.outer * C, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t ch = r % C;
      const float m = mean[size_t(ch)], sd = std::sqrt(var[size_t(ch)] + eps), g = gamma[size_t(ch)], b = beta[size_t(ch)];
      const float* in = X + r * s.inner;
      float* out = Y + r * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) out[i] = (in[i] - m) / sd * g + b;
      if (round) round_span_to_fp16(out, s.inner);
    }
  }, grain_for(s.inner));
  if (round) c.set_rounded();
  return {y};
}

// Normalizes rows of length n: y = (x - mean) / sqrt(var + eps) * gamma + beta, gamma / beta indexed
// by position in the row (per-row channel c when `per_row_c`).
void normalize_rows(const float* X, float* Y, int64_t rows, int64_t n, float eps, const float* gamma, const float* beta,
                    int64_t per_row_c) {
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* in = X + r * n;
      float* out = Y + r * n;
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += in[j];
      const double mean = sum / double(n);
      double sq = 0;
      for (int64_t j = 0; j < n; ++j) sq += (in[j] - mean) * (in[j] - mean);
      const float inv = float(1.0 / std::sqrt(sq / double(n) + double(eps)));
      const float m = float(mean);
      if (per_row_c > 0) {
        const int64_t ch = r % per_row_c;
        const float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
        for (int64_t j = 0; j < n; ++j) out[j] = (in[j] - m) * inv * g + b;
      } else {
        for (int64_t j = 0; j < n; ++j) out[j] = (in[j] - m) * inv * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
      }
    }
  }, grain_for(n));
}

Outs layer_norm(OpContext& c) {
  const Tensor x = c.tensor("x");
  const int rank = x.rank();
  std::vector<bool> norm(size_t(rank), !c.has("axes"));
  if (auto axes = c.optional_ints("axes"))
    for (int64_t a : *axes) norm[size_t(normalize_axis(a, rank, c.where()))] = true;
  Shape nshape;
  std::vector<int> perm;
  for (int d = 0; d < rank; ++d)
    if (!norm[size_t(d)]) perm.push_back(d);
  for (int d = 0; d < rank; ++d)
    if (norm[size_t(d)]) {
      perm.push_back(d);
      nshape.push_back(x.dim(d));
    }
  const int64_t n = shape_numel(nshape);
  std::optional<Tensor> gamma = c.optional_tensor("gamma"), beta = c.optional_tensor("beta");
  for (auto* t : {&gamma, &beta})
    if (*t && (*t)->numel() != n)
      c.fail("gamma / beta " + shape_str((*t)->shape()) + " must have the shape of the normalized axes " + shape_str(nshape));
  const Tensor xp = permute(x, perm);
  Tensor y = Tensor::empty(xp.shape());
  if (n > 0)
    normalize_rows(xp.f32(), y.f32(), xp.numel() / n, n, float(c.float_or("epsilon", 1e-5)),
                   gamma ? gamma->f32() : nullptr, beta ? beta->f32() : nullptr, 0);
  std::vector<int> inv(static_cast<size_t>(rank));
  for (int d = 0; d < rank; ++d) inv[size_t(perm[size_t(d)])] = d;
  return {permute(y, inv)};
}

Outs instance_norm(OpContext& c) {
  const Tensor x = c.tensor("x");
  if (x.rank() < 3) c.fail("x must have rank >= 3, got " + shape_str(x.shape()));
  const int64_t C = x.dim(1);
  const auto gamma = channel_vec(c, "gamma", C, 1.0f);
  const auto beta = channel_vec(c, "beta", C, 0.0f);
  const AxisSplit s = split_at_axis(x.shape(), 1);
  Tensor y = Tensor::empty(x.shape());
  normalize_rows(x.f32(), y.f32(), s.outer * C, s.inner, float(c.float_or("epsilon", 1e-5)), gamma.data(), beta.data(), C);
  return {y};
}

}  // namespace

void register_reduce_ops(OpRegistry& r) {
  const std::pair<const char*, Red> reds[] = {
      {"reduce_sum", Red::kSum},         {"reduce_mean", Red::kMean},         {"reduce_prod", Red::kProd},
      {"reduce_max", Red::kMax},         {"reduce_min", Red::kMin},           {"reduce_l1_norm", Red::kL1},
      {"reduce_l2_norm", Red::kL2},      {"reduce_log_sum", Red::kLogSum},    {"reduce_log_sum_exp", Red::kLogSumExp},
      {"reduce_sum_square", Red::kSumSquare},
  };
  for (const auto& [name, op] : reds) {
    const Red o = op;
    r[name] = [o](OpContext& c) { return Outs{reduce(c, o)}; };
  }
  r["reduce_argmax"] = [](OpContext& c) { return Outs{arg_reduce(c, true)}; };
  r["reduce_argmin"] = [](OpContext& c) { return Outs{arg_reduce(c, false)}; };
  r["softmax"] = softmax;
  r["batch_norm"] = batch_norm;
  r["layer_norm"] = layer_norm;
  r["instance_norm"] = instance_norm;
}

}  // namespace sdpal::mil::detail
