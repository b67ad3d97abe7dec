#include "model/vae.h"

#include "core/error.h"

namespace sdpal {

VaeDecoder::VaeDecoder(const VaeConfig& cfg, WeightBinder& w) : cfg_(cfg) {
  const auto& ch = cfg.block_out_channels;
  const int64_t g = cfg.norm_num_groups, lat = cfg.latent_channels, top = ch.back();
  const float eps = 1e-6f;
  post_quant_conv_.emplace(bind_conv(w, "post_quant_conv", lat, lat, 1, 1, 0));
  conv_in_.emplace(bind_conv(w, "decoder.conv_in", lat, top, 3, 1, 1));
  mid_res0_ = ResnetBlock(w, "decoder.mid_block.resnets.0", top, top, 0, g, eps);
  if (cfg.mid_block_add_attention) {
    mid_attn_norm_ = GroupNorm::bind(w, "decoder.mid_block.attentions.0.group_norm", top, g, eps);
    mid_attn_.emplace(w, "decoder.mid_block.attentions.0", top, top, 1, true);
  }
  mid_res1_ = ResnetBlock(w, "decoder.mid_block.resnets.1", top, top, 0, g, eps);
  std::vector<int> rch(ch.rbegin(), ch.rend());
  int64_t prev = rch[0];
  for (size_t i = 0; i < rch.size(); ++i) {
    UpBlock blk;
    std::string p = "decoder.up_blocks." + std::to_string(i);
    int64_t out = rch[i];
    for (int j = 0; j <= cfg.layers_per_block; ++j)
      blk.resnets.emplace_back(w, p + ".resnets." + std::to_string(j), j == 0 ? prev : out, out, 0, g, eps);
    if (i + 1 < rch.size()) blk.upsample_conv.emplace(bind_conv(w, p + ".upsamplers.0.conv", out, out, 3, 1, 1));
    prev = out;
    up_.push_back(std::move(blk));
  }
  norm_out_ = GroupNorm::bind(w, "decoder.conv_norm_out", ch[0], g, eps);
  conv_out_.emplace(bind_conv(w, "decoder.conv_out", ch[0], cfg.out_channels, 3, 1, 1));
  w.allow_unused_prefix("encoder.");
  w.allow_unused_prefix("quant_conv.");
}

VaeDecoder::~VaeDecoder() = default;

Tensor VaeDecoder::forward(const Tensor& z) const {
  check(z.rank() == 4 && z.dim(3) == cfg_.latent_channels, ErrorCode::kInvalidArgument,
        "vae: latents must be [N, h, w, " + std::to_string(cfg_.latent_channels) + "], got " + shape_str(z.shape()));
  Tensor x = post_quant_conv_->run(z);
  x = conv_in_->run(x);
  x = mid_res0_.forward(std::move(x), nullptr);
  if (mid_attn_) {
    int64_t n = x.dim(0), c = x.dim(3);
    Tensor seq = mid_attn_norm_.run(x, false).reshape({n, x.dim(1) * x.dim(2), c});
    Tensor residual = x.reshape(seq.shape());
    x = mid_attn_->forward(seq, nullptr, &residual).reshape(x.shape());
  }
  x = mid_res1_.forward(std::move(x), nullptr);
  for (const auto& blk : up_) {
    for (const auto& r : blk.resnets) x = r.forward(std::move(x), nullptr);
    if (blk.upsample_conv) x = blk.upsample_conv->run_upsampled2x(x);
  }
  x = norm_out_.run(x, true);
  return conv_out_->run(x);
}

}  // namespace sdpal
