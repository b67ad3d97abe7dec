#include "model/clip_text_encoder.h"

#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace sdpal {

ClipTextEncoder::ClipTextEncoder(const ClipTextConfig& cfg, WeightBinder& w) : cfg_(cfg) {
  std::string p = w.has("text_model.embeddings.token_embedding.weight") ? "text_model." : "";
  int64_t d = cfg.hidden_size;
  const std::string tok = p + "embeddings.token_embedding.weight";
  const TensorView& tv = w.get(tok, {cfg.vocab_size, d});
  if (!tv.is_palettized() && tv.owner && tv.data &&
      (tv.dtype == DType::F32 || tv.dtype == DType::F16 || tv.dtype == DType::BF16))
    token_view_ = tv;  // 49408 x d stays mapped (150-200 MB not copied)
  else
    token_embedding_ = w.get_f32(tok, {cfg.vocab_size, d});
  position_embedding_ = w.get_f32(p + "embeddings.position_embedding.weight", {cfg.max_positions, d});
  w.allow_unused_prefix(p + "embeddings.position_ids");  // a buffer older exports include
  encoder_ = std::make_unique<ClipEncoder>(w, p + "encoder", cfg.num_layers, d, cfg.intermediate_size, cfg.num_heads,
                                           cfg.layer_norm_eps, cfg.act);
  final_ln_ = LayerNorm::bind(w, p + "final_layer_norm", d, cfg.layer_norm_eps);
}

Tensor ClipTextEncoder::forward(const std::vector<int32_t>& ids, int64_t batch) const {
  check(batch > 0 && ids.size() % size_t(batch) == 0, ErrorCode::kInvalidArgument, "text encoder: bad batch");
  int64_t s = int64_t(ids.size()) / batch, d = cfg_.hidden_size;
  check(s > 0 && s <= cfg_.max_positions, ErrorCode::kInvalidArgument,
        "text encoder: sequence length " + std::to_string(s) + " exceeds " + std::to_string(cfg_.max_positions));
  Tensor x = Tensor::empty({batch, s, d});
  float* xp = x.f32();
  const float* pos = position_embedding_.f32();
  std::vector<float> tok_row(static_cast<size_t>(d), 0.f);
  const size_t row_bytes = size_t(d) * dtype_size(token_view_.dtype);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < s; ++i) {
      int32_t id = ids[size_t(b * s + i)];
      check(id >= 0 && id < cfg_.vocab_size, ErrorCode::kInvalidArgument,
            "text encoder: token id " + std::to_string(id) + " outside the vocabulary");
      const float* tok = token_embedding_.f32() + int64_t(id) * d;
      if (token_view_.data) {
        convert_to_f32(token_view_.dtype, token_view_.data + size_t(id) * row_bytes, tok_row.data(), size_t(d));
        tok = tok_row.data();
      }
      float* row = xp + (b * s + i) * d;
      for (int64_t c = 0; c < d; ++c) row[c] = tok[c] + pos[i * d + c];
    }
  }
  x = encoder_->forward(std::move(x), /*causal=*/true);
  return final_ln_.run(x);
}

}  // namespace sdpal
