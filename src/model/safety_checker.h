// Stable Diffusion's safety checker (diffusers' StableDiffusionSafetyChecker): CLIP image
// embedding compared by cosine similarity with 17 concept and 3 "special care" embeddings,
// each with its own threshold; a flagged image is replaced by black.
#pragma once
#include <memory>
#include <vector>

#include "model/clip_vision_encoder.h"
#include "model/networks.h"

namespace sdpal {

class SafetyChecker final : public SafetyCheckerNetwork {
 public:
  SafetyChecker(const ClipVisionConfig& cfg, WeightBinder& w);
  // pixels: the feature extractor's output [N, S, S, 3]. Returns the image embeddings [N, proj].
  Tensor image_embeds(const Tensor& pixels) const override;
  std::vector<SafetyResult> check(const Tensor& pixels) const override;
  const ClipVisionConfig& config() const override { return cfg_; }

 private:
  ClipVisionConfig cfg_;
  std::unique_ptr<ClipVisionEncoder> vision_;
  std::optional<cpu::Linear> projection_;
  Tensor concept_embeds_, special_embeds_;  // row-normalized
  Tensor concept_weights_, special_weights_;
};

}  // namespace sdpal
