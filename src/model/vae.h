// AutoencoderKL decoder (post_quant_conv + Decoder) for SD latents, NHWC.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "model/layers.h"
#include "model/model_config.h"
#include "model/networks.h"

namespace sdpal {

class VaeDecoder : public VaeDecoderNetwork {
 public:
  // Binds "post_quant_conv.*" and "decoder.*"; the encoder's tensors are accepted but not used here.
  VaeDecoder(const VaeConfig& cfg, WeightBinder& w);
  ~VaeDecoder();
  // z: [N, h, w, latent_channels], already divided by scaling_factor. Returns [N, 8h, 8w, 3] in ~[-1, 1].
  Tensor forward(const Tensor& z) const override;
  const VaeConfig& config() const override { return cfg_; }

 private:
  struct UpBlock {
    std::vector<ResnetBlock> resnets;
    std::optional<cpu::Conv2d> upsample_conv;
  };
  VaeConfig cfg_;
  std::optional<cpu::Conv2d> post_quant_conv_, conv_in_, conv_out_;
  ResnetBlock mid_res0_, mid_res1_;
  GroupNorm mid_attn_norm_, norm_out_;
  std::optional<MultiHeadAttention> mid_attn_;
  std::vector<UpBlock> up_;
};

}  // namespace sdpal
