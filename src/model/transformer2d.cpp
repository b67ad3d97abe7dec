#include "model/transformer2d.h"

#include <algorithm>

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

namespace {

// The feed-forward's [rows, 2*inner] projection is its largest intermediate (84 MB at 64x64 latents
// with guidance): above this size it runs in row chunks. Small layers stay whole, so palettized
// weights are not decoded once per chunk where it would not pay.
constexpr int64_t kFeedForwardChunkBytes = int64_t(16) << 20;

}  // namespace

Tensor BasicTransformerBlock::forward(const Tensor& x, const Tensor& context) const {
  Tensor h = attn1_.forward(norm1_.run(x), nullptr, &x);
  h = attn2_.forward(norm2_.run(h), &context, &h);
  Tensor normed = norm3_.run(h);
  const int64_t dim = h.dim(-1), m = h.numel() / dim;
  const int64_t chunks = (m * 2 * inner_ * 4 + kFeedForwardChunkBytes - 1) / kFeedForwardChunkBytes;
  const int64_t rows = (m + chunks - 1) / chunks;
  Tensor proj = Tensor::empty({std::min(rows, m), 2 * inner_});
  Tensor gated = Tensor::empty({std::min(rows, m), inner_});
  Tensor out = Tensor::empty(h.shape());
  for (int64_t r0 = 0; r0 < m; r0 += rows) {
    const int64_t len = std::min(rows, m - r0);
    ff_in_->run(normed.f32() + r0 * dim, len, proj.f32());
    cpu::geglu(proj.f32(), gated.f32(), len, inner_);
    ff_out_->run(gated.f32(), len, out.f32() + r0 * dim, h.f32() + r0 * dim);
  }
  return out;
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
