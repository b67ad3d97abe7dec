// Model configurations read off Core ML programs: Apple's resources carry no diffusers
// config.json, so the native modules' configs come from the weights' shapes (channels, layers,
// blocks) and from the graph (attention heads, GroupNorm groups, activation).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/coreml_weights.h"
#include "model/model_config.h"

namespace sdpal {

namespace coreml {
struct MilFunction;
}

// Each throws Error(kModel) naming `w.path()` when a weight the config needs is missing.
ClipTextConfig clip_text_config_from_coreml(const CoreMLWeightFile& w, const coreml::MilFunction& main);
UNetConfig unet_config_from_coreml(const CoreMLWeightFile& w, const coreml::MilFunction& main);
// A UNet split into programs (Apple's UnetChunk1 + UnetChunk2): each weight is looked up in the
// chunk holding it, heads in the chunk whose graph has the attention.
UNetConfig unet_config_from_coreml(const std::vector<const CoreMLWeightFile*>& chunks,
                                   const std::vector<const coreml::MilFunction*>& mains);
VaeConfig vae_decoder_config_from_coreml(const CoreMLWeightFile& w);

// Attention heads of the layer whose query weight has Core ML base name `q_weight`: the graph
// reshapes the query into heads ([B, H, D, S] in Apple's layout, [B, S, H, D] in torch's) or slices
// it per head (split einsum: [B, D, 1, S] slices). 0 if the graph shows neither.
int coreml_attention_heads(const coreml::MilFunction& f, const std::string& q_weight, int64_t channels);

}  // namespace sdpal
