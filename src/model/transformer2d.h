// diffusers' Transformer2DModel with BasicTransformerBlocks (self-attention, cross-attention,
// GEGLU feed-forward), as used inside SD's UNet, on NHWC feature maps.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/layers.h"

namespace sdpal {

class BasicTransformerBlock {
 public:
  BasicTransformerBlock(WeightBinder& w, const std::string& prefix, int64_t dim, int64_t context_dim, int64_t heads);
  Tensor forward(const Tensor& x, const Tensor& context) const;  // x: [B, S, dim]

 private:
  LayerNorm norm1_, norm2_, norm3_;
  MultiHeadAttention attn1_, attn2_;
  std::optional<cpu::Linear> ff_in_, ff_out_;
  int64_t inner_ = 0;
};

class Transformer2D {
 public:
  // proj_in/proj_out bind as linear layers whether stored as 1x1 convs (SD 1.x) or linears (SD 2.x).
  Transformer2D(WeightBinder& w, const std::string& prefix, int64_t channels, int64_t context_dim, int64_t heads,
                int64_t groups);
  // x: [N, H, W, C]; context: [N, Sc, context_dim].
  Tensor forward(const Tensor& x, const Tensor& context) const;

 private:
  GroupNorm norm_;
  std::optional<cpu::Linear> proj_in_, proj_out_;
  std::vector<BasicTransformerBlock> blocks_;
};

}  // namespace sdpal
