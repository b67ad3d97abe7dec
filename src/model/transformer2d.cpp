#include "model/transformer2d.h"

#include "kernels/cpu/elementwise.h"

namespace sdpal {

BasicTransformerBlock::BasicTransformerBlock(WeightBinder& w, const std::string& prefix, int64_t dim,
                                             int64_t context_dim, int64_t heads)
    : inner_(dim * 4) {
  norm1_ = LayerNorm::bind(w, prefix + ".norm1", dim, 1e-5f);
  attn1_ = MultiHeadAttention(w, prefix + ".attn1", dim, dim, heads, false);
  norm2_ = LayerNorm::bind(w, prefix + ".norm2", dim, 1e-5f);
  attn2_ = MultiHeadAttention(w, prefix + ".attn2", dim, context_dim, heads, false);
  norm3_ = LayerNorm::bind(w, prefix + ".norm3", dim, 1e-5f);
  ff_in_.emplace(bind_linear(w, prefix + ".ff.net.0.proj", dim, inner_ * 2, true));
  ff_out_.emplace(bind_linear(w, prefix + ".ff.net.2", inner_, dim, true));
}

Tensor BasicTransformerBlock::forward(const Tensor& x, const Tensor& context) const {
  Tensor h = attn1_.forward(norm1_.run(x), nullptr, &x);
  h = attn2_.forward(norm2_.run(h), &context, &h);
  Tensor proj = apply_linear(*ff_in_, norm3_.run(h));  // [B, S, 2*inner]
  Shape gs = proj.shape();
  gs.back() = inner_;
  Tensor gated = Tensor::empty(gs);
  cpu::geglu(proj.f32(), gated.f32(), proj.numel() / (2 * inner_), inner_);
  return apply_linear(*ff_out_, gated, &h);
}

Transformer2D::Transformer2D(WeightBinder& w, const std::string& prefix, int64_t channels, int64_t context_dim,
                             int64_t heads, int64_t groups) {
  norm_ = GroupNorm::bind(w, prefix + ".norm", channels, groups, 1e-6f);
  // A 1x1 convolution on NHWC data is a linear layer over channels, so both SD 1.x (conv) and
  // SD 2.x (linear) projections bind to cpu::Linear.
  proj_in_.emplace(bind_linear(w, prefix + ".proj_in", channels, channels, true));
  blocks_.emplace_back(w, prefix + ".transformer_blocks.0", channels, context_dim, heads);
  proj_out_.emplace(bind_linear(w, prefix + ".proj_out", channels, channels, true));
}

Tensor Transformer2D::forward(const Tensor& x, const Tensor& context) const {
  int64_t n = x.dim(0), c = x.dim(-1);
  Tensor h = norm_.run(x, false).reshape({n, x.numel() / (n * c), c});
  h = apply_linear(*proj_in_, h);
  for (const auto& b : blocks_) h = b.forward(h, context);
  Tensor residual = x.reshape(h.shape());
  return apply_linear(*proj_out_, h, &residual).reshape(x.shape());
}

}  // namespace sdpal
