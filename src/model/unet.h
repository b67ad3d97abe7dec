// UNet2DConditionModel for SD 1.x/2.x configurations, on NHWC latents.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "model/layers.h"
#include "model/model_config.h"
#include "model/networks.h"
#include "model/transformer2d.h"

namespace sdpal {

// Sinusoidal timestep embedding as diffusers' get_timestep_embedding computes it in float32.
Tensor timestep_embedding(const std::vector<float>& timesteps, int64_t dim, bool flip_sin_to_cos, float freq_shift);

class UNet : public UNetNetwork {
 public:
  UNet(const UNetConfig& cfg, WeightBinder& w);
  ~UNet();
  // sample: [N, h, w, in_channels]; timestep: one value for the whole batch (diffusers broadcasts);
  // context: [N, S, cross_attention_dim]. Returns [N, h, w, out_channels].
  Tensor forward(const Tensor& sample, float timestep, const Tensor& context) const override;
  const UNetConfig& config() const override { return cfg_; }

 private:
  struct Block;
  UNetConfig cfg_;
  std::optional<cpu::Conv2d> conv_in_, conv_out_;
  std::optional<cpu::Linear> time_linear1_, time_linear2_;
  std::vector<std::unique_ptr<Block>> down_, up_;
  std::unique_ptr<Block> mid_;
  GroupNorm norm_out_;
};

}  // namespace sdpal
