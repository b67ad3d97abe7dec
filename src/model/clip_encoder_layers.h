// The transformer encoder shared by CLIP's text and vision towers (transformers' CLIPEncoderLayer):
// pre-LayerNorm self-attention and MLP, each with a residual.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/layers.h"
#include "model/model_config.h"

namespace sdpal {

class ClipEncoderLayer {
 public:
  ClipEncoderLayer(WeightBinder& w, const std::string& prefix, int64_t hidden, int64_t intermediate, int64_t heads,
                   float eps, Activation act);
  Tensor forward(const Tensor& x, bool causal) const;  // x: [B, S, hidden]

 private:
  LayerNorm ln1_, ln2_;
  MultiHeadAttention attn_;
  std::optional<cpu::Linear> fc1_, fc2_;
  Activation act_;
};

class ClipEncoder {
 public:
  ClipEncoder(WeightBinder& w, const std::string& prefix, int64_t layers, int64_t hidden, int64_t intermediate,
              int64_t heads, float eps, Activation act);
  // Runs the first `num_layers` layers (all when < 0), as CLIP-skip settings need.
  Tensor forward(Tensor x, bool causal, int num_layers = -1) const;
  int size() const { return int(layers_.size()); }

 private:
  std::vector<ClipEncoderLayer> layers_;
};

void apply_activation(Activation act, float* x, int64_t n);

}  // namespace sdpal
