#include "model/clip_vision_encoder.h"

#include <cstring>

#include "core/error.h"

namespace sdpal {

ClipVisionEncoder::ClipVisionEncoder(const ClipVisionConfig& cfg, WeightBinder& w, const std::string& prefix)
    : cfg_(cfg) {
  const int64_t d = cfg.hidden_size, p = cfg.patch_size, c = cfg.num_channels;
  const int64_t positions = (cfg.image_size / p) * (cfg.image_size / p) + 1;
  const std::string e = prefix + ".embeddings.";
  // Same bytes: the conv's (channel, row, column) order is the patch vector's.
  TensorView pw = reshape_view(w.get(e + "patch_embedding.weight", {d, c, p, p}), {d, c * p * p});
  patch_embed_.emplace(pw, nullptr, w.precision());
  class_embedding_ = w.get_f32(e + "class_embedding", {d});
  position_embedding_ = w.get_f32(e + "position_embedding.weight", {positions, d});
  w.allow_unused_prefix(e + "position_ids");
  pre_ln_ = LayerNorm::bind(w, prefix + ".pre_layrnorm", d, cfg.layer_norm_eps);  // sic: transformers' name
  encoder_ = std::make_unique<ClipEncoder>(w, prefix + ".encoder", cfg.num_layers, d, cfg.intermediate_size,
                                           cfg.num_heads, cfg.layer_norm_eps, cfg.act);
  post_ln_ = LayerNorm::bind(w, prefix + ".post_layernorm", d, cfg.layer_norm_eps);
}

Tensor ClipVisionEncoder::pooled(const Tensor& pixels) const {
  const int64_t n = pixels.dim(0), s = cfg_.image_size, p = cfg_.patch_size, c = cfg_.num_channels;
  const int64_t d = cfg_.hidden_size, g = s / p, np = g * g;
  check(pixels.rank() == 4 && pixels.dim(1) == s && pixels.dim(2) == s && pixels.dim(3) == c,
        ErrorCode::kInvalidArgument, "clip vision: expected pixels [N, " + std::to_string(s) + ", " +
                                         std::to_string(s) + ", " + std::to_string(c) + "], got " +
                                         shape_str(pixels.shape()));
  // Gather patches in the weight's (channel, row, column) order.
  Tensor patches = Tensor::empty({n, np, c * p * p});
  const float* src = pixels.f32();
  float* dst = patches.f32();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t py = 0; py < g; ++py)
      for (int64_t px = 0; px < g; ++px) {
        float* row = dst + ((b * np) + py * g + px) * c * p * p;
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t ky = 0; ky < p; ++ky)
            for (int64_t kx = 0; kx < p; ++kx)
              row[(ch * p + ky) * p + kx] = src[((b * s + py * p + ky) * s + px * p + kx) * c + ch];
      }
  Tensor emb = apply_linear(*patch_embed_, patches);  // [N, np, d]
  Tensor x = Tensor::empty({n, np + 1, d});
  const float* cls = class_embedding_.f32();
  const float* pos = position_embedding_.f32();
  for (int64_t b = 0; b < n; ++b) {
    float* xb = x.f32() + b * (np + 1) * d;
    for (int64_t k = 0; k < d; ++k) xb[k] = cls[k] + pos[k];
    const float* eb = emb.f32() + b * np * d;
    for (int64_t t = 0; t < np; ++t)
      for (int64_t k = 0; k < d; ++k) xb[(t + 1) * d + k] = eb[t * d + k] + pos[(t + 1) * d + k];
  }
  x = pre_ln_.run(x);
  x = encoder_->forward(std::move(x), /*causal=*/false);
  Tensor cls_out = Tensor::empty({n, d});
  for (int64_t b = 0; b < n; ++b) std::memcpy(cls_out.f32() + b * d, x.f32() + b * (np + 1) * d, size_t(d) * 4);
  return post_ln_.run(cls_out);
}

}  // namespace sdpal
