#include "model/layers.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/norms.h"

namespace sdpal {

cpu::Linear bind_linear(WeightBinder& w, const std::string& prefix, int64_t in, int64_t out, bool bias) {
  const TensorView& weight = w.get_compatible(prefix + ".weight", {out, in});
  const TensorView* b = bias ? &w.get(prefix + ".bias", {out}) : nullptr;
  return cpu::Linear(weight, b, w.precision());
}

cpu::Conv2d bind_conv(WeightBinder& w, const std::string& prefix, int64_t in, int64_t out, int k, int stride,
                      int pad) {
  const TensorView& weight = w.get(prefix + ".weight", {out, in, k, k});
  const TensorView& b = w.get(prefix + ".bias", {out});
  return cpu::Conv2d(weight, &b, stride, pad, w.precision());
}

Tensor apply_linear(const cpu::Linear& l, const Tensor& x, const Tensor* residual) {
  check(x.dim(-1) == l.in_features(), ErrorCode::kInternal, "linear: input width mismatch");
  Shape s = x.shape();
  s.back() = l.out_features();
  Tensor y = Tensor::empty(s);
  int64_t m = x.numel() / l.in_features();
  if (residual) check(residual->shape() == s, ErrorCode::kInternal, "linear: residual shape mismatch");
  l.run(x.f32(), m, y.f32(), residual ? residual->f32() : nullptr);
  return y;
}

GroupNorm GroupNorm::bind(WeightBinder& w, const std::string& prefix, int64_t channels, int64_t groups, float eps) {
  GroupNorm g;
  g.gamma = w.get_f32(prefix + ".weight", {channels});
  g.beta = w.get_f32(prefix + ".bias", {channels});
  g.groups = groups;
  g.eps = eps;
  return g;
}

Tensor GroupNorm::run_in_place(Tensor x, bool silu) const {
  if (!x.sole_owner() || x.dtype() != DType::F32) return run(x, silu);
  int64_t c = x.dim(-1), n = x.dim(0);
  check(c == gamma.numel(), ErrorCode::kInternal, "group_norm: channel mismatch");
  cpu::group_norm(x.f32(), x.f32(), n, x.numel() / (n * c), c, groups, gamma.f32(), beta.f32(), eps, silu);
  return x;
}

Tensor GroupNorm::run(const Tensor& x, bool silu) const {
  int64_t c = x.dim(-1), n = x.dim(0);
  check(c == gamma.numel(), ErrorCode::kInternal, "group_norm: channel mismatch");
  Tensor y = Tensor::empty(x.shape());
  cpu::group_norm(x.f32(), y.f32(), n, x.numel() / (n * c), c, groups, gamma.f32(), beta.f32(), eps, silu);
  return y;
}

LayerNorm LayerNorm::bind(WeightBinder& w, const std::string& prefix, int64_t channels, float eps) {
  LayerNorm l;
  l.gamma = w.get_f32(prefix + ".weight", {channels});
  l.beta = w.get_f32(prefix + ".bias", {channels});
  l.eps = eps;
  return l;
}

Tensor LayerNorm::run(const Tensor& x) const {
  int64_t c = x.dim(-1);
  check(c == gamma.numel(), ErrorCode::kInternal, "layer_norm: channel mismatch");
  Tensor y = Tensor::empty(x.shape());
  cpu::layer_norm(x.f32(), y.f32(), x.numel() / c, c, gamma.f32(), beta.f32(), eps);
  return y;
}

MultiHeadAttention::MultiHeadAttention(WeightBinder& w, const std::string& prefix, int64_t dim, int64_t context_dim,
                                       int64_t heads, bool qkv_bias, const AttentionNames& names)
    : dim_(dim), heads_(heads), precision_(w.precision()) {
  q_.emplace(bind_linear(w, prefix + "." + names.q, dim, dim, qkv_bias));
  k_.emplace(bind_linear(w, prefix + "." + names.k, context_dim, dim, qkv_bias));
  v_.emplace(bind_linear(w, prefix + "." + names.v, context_dim, dim, qkv_bias));
  out_.emplace(bind_linear(w, prefix + "." + names.out, dim, dim, true));
}

Tensor MultiHeadAttention::forward(const Tensor& x, const Tensor* context, const Tensor* residual, bool causal) const {
  const Tensor& ctx = context ? *context : x;
  int64_t b = x.dim(0), s = x.dim(1), sc = ctx.dim(1);
  Tensor q = apply_linear(*q_, x);
  Tensor k = apply_linear(*k_, ctx);
  Tensor v = apply_linear(*v_, ctx);
  Tensor o = Tensor::empty({b, s, dim_});
  cpu::AttentionShape a;
  a.batch = b;
  a.heads = heads_;
  a.q_len = s;
  a.kv_len = sc;
  a.head_dim = dim_ / heads_;
  a.q_stride = a.k_stride = a.v_stride = a.o_stride = dim_;
  a.q_batch_stride = a.o_batch_stride = s * dim_;
  a.k_batch_stride = a.v_batch_stride = sc * dim_;
  a.scale = float(1.0 / std::sqrt(double(a.head_dim)));
  a.causal = causal;
  a.precision = precision_;
  cpu::attention(a, q.f32(), k.f32(), v.f32(), o.f32());
  return apply_linear(*out_, o, residual);
}

ResnetBlock::ResnetBlock(WeightBinder& w, const std::string& prefix, int64_t in, int64_t out, int64_t temb_channels,
                         int64_t groups, float eps)
    : out_(out) {
  norm1_ = GroupNorm::bind(w, prefix + ".norm1", in, groups, eps);
  conv1_.emplace(bind_conv(w, prefix + ".conv1", in, out, 3, 1, 1));
  if (temb_channels > 0) time_proj_.emplace(bind_linear(w, prefix + ".time_emb_proj", temb_channels, out, true));
  norm2_ = GroupNorm::bind(w, prefix + ".norm2", out, groups, eps);
  conv2_.emplace(bind_conv(w, prefix + ".conv2", out, out, 3, 1, 1));
  if (in != out) shortcut_.emplace(bind_conv(w, prefix + ".conv_shortcut", in, out, 1, 1, 0));
}

Tensor ResnetBlock::forward(Tensor x, const Tensor* temb_act) const {
  // Order chosen for memory: the shortcut first, so that x (when nothing else holds it) can be
  // normalized in place; the second conv adds the residual into the residual's own storage.
  Tensor shortcut = shortcut_ ? shortcut_->run(x) : Tensor();
  Tensor h = shortcut_ ? norm1_.run_in_place(std::move(x), true) : norm1_.run(x, true);
  h = conv1_->run(h);
  if (time_proj_) {
    check(temb_act != nullptr, ErrorCode::kInternal, "resnet: missing time embedding");
    Tensor t = apply_linear(*time_proj_, *temb_act);  // [N, out]
    int64_t n = h.dim(0), hw = h.numel() / (n * out_);
    float* hp = h.f32();
    const float* tp = t.f32();
    parallel_for(n * hw, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float* ti = tp + (i / hw) * out_;
        float* hi = hp + i * out_;
        for (int64_t c = 0; c < out_; ++c) hi[c] += ti[c];
      }
    }, 256);
  }
  h = norm2_.run_in_place(std::move(h), true);
  if (!shortcut_) shortcut = std::move(x);
  if (shortcut.sole_owner()) {  // y = conv2(h) + shortcut, accumulated into shortcut
    conv2_->run(h.f32(), h.dim(0), h.dim(1), h.dim(2), shortcut.f32(), shortcut.f32());
    return shortcut;
  }
  return conv2_->run(h, &shortcut);
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  int64_t ca = a.dim(-1), cb = b.dim(-1);
  int64_t rows = a.numel() / ca;
  check(rows == b.numel() / cb && a.rank() == b.rank(), ErrorCode::kInternal, "concat: shape mismatch");
  Shape s = a.shape();
  s.back() = ca + cb;
  Tensor y = Tensor::empty(s);
  const float* ap = a.f32();
  const float* bp = b.f32();
  float* yp = y.f32();
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      std::memcpy(yp + r * (ca + cb), ap + r * ca, ca * 4);
      std::memcpy(yp + r * (ca + cb) + ca, bp + r * cb, cb * 4);
    }
  }, 256);
  return y;
}

Tensor upsample_nearest2x(const Tensor& x) {
  int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  Tensor y = Tensor::empty({n, 2 * h, 2 * w, c});
  cpu::upsample_nearest2x(x.f32(), y.f32(), n, h, w, c);
  return y;
}

}  // namespace sdpal
