// CLIP text encoder (transformers' CLIPTextModel): token + position embeddings, causal
// transformer, final LayerNorm. Output: last_hidden_state [B, 77, hidden].
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "model/clip_encoder_layers.h"
#include "model/model_config.h"
#include "model/networks.h"
#include "io/tensor_file.h"

namespace sdpal {

class ClipTextEncoder : public TextEncoderNetwork {
 public:
  // Binds "text_model.*" tensors (the prefix is optional in the files: both forms are accepted).
  ClipTextEncoder(const ClipTextConfig& cfg, WeightBinder& w);
  // ids: [B, S] token ids (S <= max_positions). Returns [B, S, hidden].
  Tensor forward(const std::vector<int32_t>& ids, int64_t batch) const override;
  const ClipTextConfig& config() const override { return cfg_; }

 private:
  ClipTextConfig cfg_;
  // The token table stays in the weight file when it can (a dense view with an owner: only the rows
  // of the prompt's tokens are read, converted per call); otherwise an fp32 copy.
  TensorView token_view_;
  Tensor token_embedding_, position_embedding_;
  std::unique_ptr<ClipEncoder> encoder_;
  LayerNorm final_ln_;
};

}  // namespace sdpal
