// Building blocks shared by the networks: parameter binding helpers and the small layers
// (norms, attention, ResNet block) that diffusers and transformers define, on channels-last tensors.
#pragma once
#include <optional>
#include <string>

#include "core/tensor.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/linear.h"
#include "model/weight_binder.h"

namespace sdpal {

cpu::Linear bind_linear(WeightBinder& w, const std::string& prefix, int64_t in, int64_t out, bool bias);
cpu::Conv2d bind_conv(WeightBinder& w, const std::string& prefix, int64_t in, int64_t out, int k, int stride,
                      int pad);

// x: [..., K] -> [..., N]; residual (shape of the output) is added when given.
Tensor apply_linear(const cpu::Linear& l, const Tensor& x, const Tensor* residual = nullptr);

struct GroupNorm {
  Tensor gamma, beta;
  int64_t groups = 32;
  float eps = 1e-5f;
  static GroupNorm bind(WeightBinder& w, const std::string& prefix, int64_t channels, int64_t groups, float eps);
  // x: [N, H, W, C] or [N, S, C]; returns a new tensor.
  Tensor run(const Tensor& x, bool silu) const;
  // The same, written over x when nothing else shares its storage (else into a new tensor).
  Tensor run_in_place(Tensor x, bool silu) const;
};

struct LayerNorm {
  Tensor gamma, beta;
  float eps = 1e-5f;
  static LayerNorm bind(WeightBinder& w, const std::string& prefix, int64_t channels, float eps);
  Tensor run(const Tensor& x) const;  // over the last dim
};

// Multi-head attention with separate q/k/v projections (diffusers' Attention, CLIP's attention).
struct AttentionNames {
  std::string q = "to_q", k = "to_k", v = "to_v", out = "to_out.0";
};

class MultiHeadAttention {
 public:
  MultiHeadAttention() = default;
  MultiHeadAttention(WeightBinder& w, const std::string& prefix, int64_t dim, int64_t context_dim, int64_t heads,
                     bool qkv_bias, const AttentionNames& names = {});
  // x: [B, S, dim]; context: [B, Sc, context_dim] or nullptr for self-attention.
  // residual (shape of x) is added to the output projection when given.
  Tensor forward(const Tensor& x, const Tensor* context, const Tensor* residual, bool causal = false) const;

 private:
  std::optional<cpu::Linear> q_, k_, v_, out_;
  int64_t dim_ = 0, heads_ = 1;
  Precision precision_ = Precision::F32;
};

// diffusers ResnetBlock2D (pre-norm, SiLU, optional time embedding, 1x1 shortcut when widths differ).
class ResnetBlock {
 public:
  ResnetBlock() = default;
  ResnetBlock(WeightBinder& w, const std::string& prefix, int64_t in, int64_t out, int64_t temb_channels,
              int64_t groups, float eps);
  // x: [N, H, W, in]; temb_act: silu(time embedding) [N, temb_channels] or nullptr. Pass x with
  // std::move when the caller is done with it: its storage is then reused (no extra full-size
  // tensor at the VAE's 512x512 blocks).
  Tensor forward(Tensor x, const Tensor* temb_act) const;
  int64_t out_channels() const { return out_; }

 private:
  GroupNorm norm1_, norm2_;
  std::optional<cpu::Conv2d> conv1_, conv2_, shortcut_;
  std::optional<cpu::Linear> time_proj_;
  int64_t out_ = 0;
};

// NHWC concatenation along channels: [N,H,W,Ca] ++ [N,H,W,Cb].
Tensor concat_channels(const Tensor& a, const Tensor& b);
// Nearest 2x upsample of NHWC.
Tensor upsample_nearest2x(const Tensor& x);

}  // namespace sdpal
