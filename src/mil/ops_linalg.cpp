// conv, matmul, linear, einsum, scaled_dot_product_attention: all on oneDNN's sgemm (fp32).
// Semantics from coremltools mil/ops/defs/iOS15/{conv,linear}.py and iOS18/transformers.py.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "mil/ops.h"
#include "mil/tensor_util.h"

namespace sdpal::mil::detail {

namespace {

using Outs = std::vector<Tensor>;

std::string ints_str(const std::vector<int64_t>& v) { return shape_str(Shape(v.begin(), v.end())); }

void add_bias_rows(float* y, int64_t rows, int64_t n, const float* bias) {
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t j = 0; j < n; ++j) y[r * n + j] += bias[j];
  }, grain_for(n));
}

// x: [n, C_in, *d] with 1 or 2 spatial dims; weight: [C_out, C_in / groups, *k].
Outs conv(OpContext& c) {
  const Tensor x = c.tensor("x");
  const Tensor w = c.tensor("weight");
  const int sd = x.rank() - 2;
  if (sd < 1 || sd > 2) c.fail("only 1-D and 2-D convolutions are supported, x is " + shape_str(x.shape()), ErrorCode::kUnsupported);
  if (w.rank() != x.rank()) c.fail("weight " + shape_str(w.shape()) + " must have the rank of x " + shape_str(x.shape()));
  const int64_t groups = c.int_or("groups", 1);
  const int64_t N = x.dim(0), Cin = x.dim(1), Cout = w.dim(0);
  if (groups <= 0 || Cin % groups != 0 || Cout % groups != 0 || w.dim(1) != Cin / groups)
    c.fail("weight " + shape_str(w.shape()) + " does not fit x " + shape_str(x.shape()) + " with groups = " + std::to_string(groups));
  // Treat 1-D as 2-D with height 1.
  const int64_t H = sd == 2 ? x.dim(2) : 1, W = x.dim(-1);
  const int64_t KH = sd == 2 ? w.dim(2) : 1, KW = w.dim(-1);
  auto vec = [&](const char* name, int64_t def) {
    std::vector<int64_t> v = c.optional_ints(name).value_or(std::vector<int64_t>(size_t(sd), def));
    if (int(v.size()) != sd) c.fail(std::string(name) + " " + ints_str(v) + " must have " + std::to_string(sd) + " entries");
    if (sd == 1) v.insert(v.begin(), 1);
    return v;
  };
  const auto strides = vec("strides", 1);
  const auto dil = vec("dilations", 1);
  for (int i = 0; i < 2; ++i)
    if (strides[size_t(i)] <= 0 || dil[size_t(i)] <= 0) c.fail("strides and dilations must be positive");
  const std::string pad_type = c.string_or("pad_type", "valid");
  const int64_t in[2] = {H, W}, k[2] = {KH, KW};
  int64_t pb[2] = {0, 0}, pe[2] = {0, 0};
  if (pad_type == "custom") {
    auto p = c.optional_ints("pad").value_or(std::vector<int64_t>(size_t(2 * sd), 0));
    if (int(p.size()) != 2 * sd) c.fail("pad " + ints_str(p) + " must have " + std::to_string(2 * sd) + " entries");
    if (sd == 1) p.insert(p.begin(), {0, 0});
    for (int i = 0; i < 2; ++i) {
      pb[i] = p[size_t(2 * i)];
      pe[i] = p[size_t(2 * i + 1)];
      if (pb[i] < 0 || pe[i] < 0) c.fail("negative padding " + ints_str(p));
    }
  } else if (pad_type == "same" || pad_type == "same_lower") {
    for (int i = 0; i < 2; ++i) {
      const int64_t s = strides[size_t(i)], ek = (k[i] - 1) * dil[size_t(i)] + 1;
      const int64_t total = std::max<int64_t>(0, s * ((in[i] + s - 1) / s) - in[i] + ek - s);
      pb[i] = pad_type == "same" ? total / 2 : total - total / 2;
      pe[i] = total - pb[i];
    }
  } else if (pad_type != "valid") {
    c.fail("unknown pad_type '" + pad_type + "' (valid, same, same_lower or custom)");
  }
  int64_t out_hw[2];
  for (int i = 0; i < 2; ++i) {
    const int64_t ek = (k[i] - 1) * dil[size_t(i)] + 1;
    const int64_t span = in[i] + pb[i] + pe[i] - ek;
    if (span < 0) c.fail("kernel " + shape_str(w.shape()) + " is larger than the padded input " + shape_str(x.shape()));
    out_hw[i] = span / strides[size_t(i)] + 1;
  }
  const int64_t OH = out_hw[0], OW = out_hw[1], P = OH * OW;
  Shape out_shape = {N, Cout};
  if (sd == 2) out_shape.push_back(OH);
  out_shape.push_back(OW);
  std::optional<Tensor> bias = c.optional_tensor("bias");
  if (bias && bias->numel() != Cout) c.fail("bias " + shape_str(bias->shape()) + " must have " + std::to_string(Cout) + " elements");

  Tensor y = Tensor::empty(out_shape);
  const int64_t cig = Cin / groups, cog = Cout / groups, K = cig * KH * KW;
  const float* X = x.f32();
  const float* Wt = w.f32();
  float* Y = y.f32();
  const bool pointwise = KH == 1 && KW == 1 && strides[0] == 1 && strides[1] == 1 && pb[0] == 0 && pb[1] == 0 &&
                         pe[0] == 0 && pe[1] == 0;
  // im2col in column chunks of at most ~32 MiB.
  const int64_t chunk = pointwise ? P : std::max<int64_t>(1, std::min<int64_t>(P, (int64_t(8) << 20) / std::max<int64_t>(K, 1)));
  std::vector<float> col(pointwise ? 0 : size_t(K * chunk));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < groups; ++g) {
      const float* xg = X + (n * Cin + g * cig) * H * W;
      const float* wg = Wt + g * cog * K;
      float* yg = Y + (n * Cout + g * cog) * P;
      if (pointwise) {
        gemm(false, false, cog, P, K, wg, K, xg, P, yg, P);
        continue;
      }
      for (int64_t p0 = 0; p0 < P; p0 += chunk) {
        const int64_t pc = std::min(chunk, P - p0);
        parallel_for(K, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t ci = r / (KH * KW), kh = (r / KW) % KH, kw = r % KW;
            float* dst = col.data() + r * pc;
            const float* src = xg + ci * H * W;
            const int64_t woff = kw * dil[1] - pb[1];  // iw = ow * stride + woff
            for (int64_t p = p0; p < p0 + pc;) {       // one output row segment at a time
              const int64_t oh = p / OW, ow0 = p % OW, n = std::min(OW - ow0, p0 + pc - p);
              const int64_t ih = oh * strides[0] - pb[0] + kh * dil[0];
              float* d = dst + (p - p0);
              if (ih < 0 || ih >= H) {
                std::fill(d, d + n, 0.0f);
              } else if (strides[1] == 1) {
                const float* srow = src + ih * W;
                const int64_t lo = std::clamp<int64_t>(-woff, ow0, ow0 + n);
                const int64_t hi = std::clamp<int64_t>(W - woff, lo, ow0 + n);
                std::fill(d, d + (lo - ow0), 0.0f);
                std::memcpy(d + (lo - ow0), srow + lo + woff, size_t(hi - lo) * sizeof(float));
                std::fill(d + (hi - ow0), d + n, 0.0f);
              } else {
                const float* srow = src + ih * W;
                for (int64_t j = 0; j < n; ++j) {
                  const int64_t iw = (ow0 + j) * strides[1] + woff;
                  d[j] = (iw >= 0 && iw < W) ? srow[iw] : 0.0f;
                }
              }
              p += n;
            }
          }
        }, grain_for(pc));
        gemm(false, false, cog, pc, K, wg, K, col.data(), pc, yg + p0, P);
      }
    }
  const float* B = bias ? bias->f32() : nullptr;
  const bool round = c.round_output();
  if (B || round) {
    parallel_for(N * Cout, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* row = Y + r * P;
        if (B) {
          const float b = B[r % Cout];
          for (int64_t i = 0; i < P; ++i) row[i] += b;
        }
        if (round) round_span_to_fp16(row, P);
      }
    }, grain_for(P));
    if (round) c.set_rounded();
  }
  return {y};
}

Outs matmul_op(OpContext& c) {
  return {matmul(c.tensor("x"), c.tensor("y"), c.bool_or("transpose_x", false), c.bool_or("transpose_y", false), c.where())};
}

// x [*D, D_in] * weight[D_out, D_in]^T + bias.
Outs linear(OpContext& c) {
  const Tensor x = c.tensor("x");
  const Tensor w = c.tensor("weight");
  if (x.rank() < 1 || w.rank() != 2 || w.dim(1) != x.dim(-1))
    c.fail("weight " + shape_str(w.shape()) + " does not fit x " + shape_str(x.shape()));
  const int64_t K = w.dim(1), Nout = w.dim(0), M = x.numel() / std::max<int64_t>(K, 1);
  Shape out = x.shape();
  out.back() = Nout;
  Tensor y = Tensor::empty(out);
  gemm(false, true, M, Nout, K, x.f32(), K, w.f32(), K, y.f32(), Nout);
  if (auto bias = c.optional_tensor("bias")) {
    if (bias->numel() != Nout) c.fail("bias " + shape_str(bias->shape()) + " must have " + std::to_string(Nout) + " elements");
    add_bias_rows(y.f32(), M, Nout, bias->f32());
  }
  return {y};
}

// Two-operand einsum without repeated letters in one operand or ellipses: letters of both inputs
// and the output are batch axes (size-1 broadcasts), letters of one input and the output are its
// free axes, letters of both inputs only are contracted, letters of one input only are summed.
Tensor einsum2(OpContext& c, const std::string& eq, Tensor x, Tensor y) {
  const size_t arrow = eq.find("->");
  const size_t comma = eq.find(',');
  if (arrow == std::string::npos || comma == std::string::npos || comma > arrow || eq.find("...") != std::string::npos)
    c.fail("einsum equation '" + eq + "' must have the form 'ab,bc->ac' (two operands, no ellipsis)", ErrorCode::kUnsupported);
  auto trim = [](std::string s) {
    s.erase(std::remove(s.begin(), s.end(), ' '), s.end());
    return s;
  };
  const std::string sx = trim(eq.substr(0, comma)), sy = trim(eq.substr(comma + 1, arrow - comma - 1)),
                    so = trim(eq.substr(arrow + 2));
  for (const std::string* s : {&sx, &sy, &so}) {
    std::string t = *s;
    std::sort(t.begin(), t.end());
    if (std::adjacent_find(t.begin(), t.end()) != t.end())
      c.fail("einsum equation '" + eq + "' repeats a letter in one term", ErrorCode::kUnsupported);
    for (char ch : t)
      if (!std::isalpha(static_cast<unsigned char>(ch))) c.fail("einsum equation '" + eq + "' has a bad character");
  }
  if (int(sx.size()) != x.rank() || int(sy.size()) != y.rank())
    c.fail("einsum '" + eq + "' does not fit operands " + shape_str(x.shape()) + " and " + shape_str(y.shape()));
  std::map<char, int64_t> size;
  auto dim_of = [&](const std::string& s, const Tensor& t, char ch) {
    const size_t p = s.find(ch);
    return p == std::string::npos ? int64_t(-1) : t.dim(int(p));
  };
  // Sum out letters that appear in one input only.
  auto sum_out = [&](std::string& s, Tensor& t, const std::string& other) {
    for (size_t i = s.size(); i-- > 0;) {
      const char ch = s[i];
      if (other.find(ch) != std::string::npos || so.find(ch) != std::string::npos) continue;
      const AxisSplit a = split_at_axis(t.shape(), int(i));
      Shape ns = t.shape();
      ns.erase(ns.begin() + long(i));
      Tensor r = Tensor::zeros(ns);
      const float* T = t.f32();
      float* R = r.f32();
      for (int64_t o = 0; o < a.outer; ++o)
        for (int64_t l = 0; l < a.len; ++l)
          for (int64_t in = 0; in < a.inner; ++in) R[o * a.inner + in] += T[(o * a.len + l) * a.inner + in];
      t = r;
      s.erase(i, 1);
    }
  };
  std::string ax = sx, ay = sy;
  sum_out(ax, x, sy);
  sum_out(ay, y, sx);
  std::string batch, mfree, nfree, contract;
  for (char ch : so) {
    const bool inx = ax.find(ch) != std::string::npos, iny = ay.find(ch) != std::string::npos;
    if (inx && iny) batch += ch;
    else if (inx) mfree += ch;
    else if (iny) nfree += ch;
    else c.fail("einsum '" + eq + "': output letter '" + std::string(1, ch) + "' is in no input");
  }
  for (char ch : ax)
    if (ay.find(ch) != std::string::npos && so.find(ch) == std::string::npos) contract += ch;
  for (char ch : batch) {
    const int64_t a = dim_of(ax, x, ch), b = dim_of(ay, y, ch);
    if (a != b && a != 1 && b != 1)
      c.fail("einsum '" + eq + "': axis '" + std::string(1, ch) + "' is " + std::to_string(a) + " and " + std::to_string(b));
  }
  for (char ch : contract)
    if (dim_of(ax, x, ch) != dim_of(ay, y, ch))
      c.fail("einsum '" + eq + "': contracted axis '" + std::string(1, ch) + "' differs: " + shape_str(x.shape()) + " and " + shape_str(y.shape()));
  // x -> [batch..., M, K], y -> [batch..., K, N], batched matmul, then to the output order.
  auto perm_for = [](const std::string& from, const std::string& to) {
    std::vector<int> p;
    for (char ch : to) p.push_back(int(from.find(ch)));
    return p;
  };
  auto prod = [&](const std::string& letters, const std::string& s, const Tensor& t) {
    int64_t n = 1;
    for (char ch : letters) n *= dim_of(s, t, ch);
    return n;
  };
  const int64_t M = prod(mfree, ax, x), N = prod(nfree, ay, y), K = prod(contract, ax, x);
  Tensor xp = permute(x, perm_for(ax, batch + mfree + contract));
  Tensor yp = permute(y, perm_for(ay, batch + contract + nfree));
  Shape xb, yb;
  for (char ch : batch) {
    xb.push_back(dim_of(ax, x, ch));
    yb.push_back(dim_of(ay, y, ch));
  }
  Shape xs = xb, ys = yb;
  xs.insert(xs.end(), {M, K});
  ys.insert(ys.end(), {K, N});
  Tensor r = matmul(xp.reshape(xs), yp.reshape(ys), false, false, c.where());
  // r: [batch (broadcast)..., M, N] -> [batch..., mfree..., nfree...] -> output order.
  Shape rs(r.shape().begin(), r.shape().begin() + long(batch.size()));
  for (char ch : mfree) rs.push_back(dim_of(ax, x, ch));
  for (char ch : nfree) rs.push_back(dim_of(ay, y, ch));
  return permute(r.reshape(rs), perm_for(batch + mfree + nfree, so));
}

Outs einsum(OpContext& c) {
  const std::vector<Tensor> v = c.tensors("values");
  if (v.size() != 2) c.fail("einsum needs two values, got " + std::to_string(v.size()), ErrorCode::kUnsupported);
  return {einsum2(c, c.string_param("equation"), v[0], v[1])};
}

// softmax(Q K^T / sqrt(E) + mask) V; a bool mask keeps the positions that are true.
Outs scaled_dot_product_attention(OpContext& c) {
  const Tensor q = c.tensor("query"), k = c.tensor("key"), v = c.tensor("value");
  if (q.rank() < 3 || k.rank() != q.rank() || v.rank() != q.rank() || q.dim(-1) != k.dim(-1) || k.dim(-2) != v.dim(-2))
    c.fail("query " + shape_str(q.shape()) + ", key " + shape_str(k.shape()) + " and value " + shape_str(v.shape()) + " do not fit");
  Tensor s = matmul(q, k, false, true, c.where());
  const float scale = float(1.0 / std::sqrt(double(q.dim(-1))));
  float* S = s.f32();
  for (int64_t i = 0; i < s.numel(); ++i) S[i] *= scale;
  if (c.has("attn_mask")) {
    const Tensor m = c.tensor("attn_mask");
    const bool is_bool = c.dtype("attn_mask") == MilDType::kBool;
    const Shape bs = broadcast_shapes(s.shape(), m.shape(), c.where());
    if (bs != s.shape()) c.fail("attn_mask " + shape_str(m.shape()) + " does not broadcast to the scores " + shape_str(s.shape()));
    const auto mst = broadcast_strides(m.shape(), s.shape());
    const Tensor mb = strided_copy(m.f32(), 0, mst, s.shape());
    const float* Mk = mb.f32();
    for (int64_t i = 0; i < s.numel(); ++i) {
      if (is_bool) {
        if (Mk[i] == 0.0f) S[i] = -std::numeric_limits<float>::infinity();
      } else {
        S[i] += Mk[i];
      }
    }
  }
  const int64_t L = s.dim(-1), rows = s.numel() / std::max<int64_t>(L, 1);
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = S + r * L;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < L; ++j) mx = std::max(mx, row[j]);
      double sum = 0;
      for (int64_t j = 0; j < L; ++j) sum += (row[j] = exp_fast(row[j] - mx));
      const float inv = float(1.0 / sum);
      for (int64_t j = 0; j < L; ++j) row[j] *= inv;
    }
  }, grain_for(L));
  return {matmul(s, v, false, false, c.where())};
}

}  // namespace

void register_linalg_ops(OpRegistry& r) {
  r["conv"] = conv;
  r["matmul"] = matmul_op;
  r["linear"] = linear;
  r["einsum"] = einsum;
  r["scaled_dot_product_attention"] = scaled_dot_product_attention;
}

}  // namespace sdpal::mil::detail
