// What the pipeline needs from each network, whoever computes it: the native modules (UNet,
// ClipTextEncoder, VaeDecoder) or a Core ML program run by the MIL interpreter
// (model/coreml_mil_networks.h). Tensors use the engine's layouts: channels-last images
// [N, H, W, C] and sequences [B, S, C].
//
// release_weights() gives back the memory of a network's prepared weights once its stage of the
// pipeline is over; the next call prepares them again. Only networks built on first use
// (model/lazy_networks.h) hold anything to give back; for the others it does nothing.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/model_config.h"

namespace sdpal {

class TextEncoderNetwork {
 public:
  virtual ~TextEncoderNetwork() = default;
  // ids: batch x max_positions token ids. Returns the last hidden state [batch, S, hidden].
  virtual Tensor forward(const std::vector<int32_t>& ids, int64_t batch) const = 0;
  virtual const ClipTextConfig& config() const = 0;
  virtual void release_weights() const {}
};

class UNetNetwork {
 public:
  virtual ~UNetNetwork() = default;
  // sample [N, h, w, in_channels], one timestep for the batch, context [N, S, cross_attention_dim].
  virtual Tensor forward(const Tensor& sample, float timestep, const Tensor& context) const = 0;
  virtual const UNetConfig& config() const = 0;
  virtual void release_weights() const {}
};

class VaeDecoderNetwork {
 public:
  virtual ~VaeDecoderNetwork() = default;
  // z [N, h, w, latent_channels] (already divided by the scaling factor) -> image [N, H, W, 3] in [-1, 1].
  virtual Tensor forward(const Tensor& z) const = 0;
  virtual const VaeConfig& config() const = 0;
  virtual void release_weights() const {}
};

struct SafetyResult {
  bool nsfw = false;
  std::vector<double> special_scores, concept_scores;  // rounded to 3 decimals, as diffusers reports them
};

class SafetyCheckerNetwork {
 public:
  virtual ~SafetyCheckerNetwork() = default;
  // pixels: the feature extractor's output [N, S, S, 3]. Returns the image embeddings [N, proj].
  virtual Tensor image_embeds(const Tensor& pixels) const = 0;
  virtual std::vector<SafetyResult> check(const Tensor& pixels) const = 0;
  virtual const ClipVisionConfig& config() const = 0;
  virtual void release_weights() const {}
};

}  // namespace sdpal
