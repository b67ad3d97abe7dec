// CLIP vision tower (transformers' CLIPVisionModel): patch embedding, class token, positions,
// pre-LayerNorm, transformer, post-LayerNorm of the class token (the "pooled output").
#pragma once
#include <memory>
#include <optional>

#include "model/clip_encoder_layers.h"
#include "model/model_config.h"

namespace sdpal {

class ClipVisionEncoder {
 public:
  // prefix: e.g. "vision_model.vision_model" for the safety checker's nested module.
  ClipVisionEncoder(const ClipVisionConfig& cfg, WeightBinder& w, const std::string& prefix);
  // pixels: [N, image_size, image_size, 3] normalized. Returns the pooled output [N, hidden].
  Tensor pooled(const Tensor& pixels) const;
  const ClipVisionConfig& config() const { return cfg_; }

 private:
  ClipVisionConfig cfg_;
  std::optional<cpu::Linear> patch_embed_;  // conv with kernel = stride = patch, as a linear over patches
  Tensor class_embedding_, position_embedding_;
  LayerNorm pre_ln_, post_ln_;
  std::unique_ptr<ClipEncoder> encoder_;
};

}  // namespace sdpal
