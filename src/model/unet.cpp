#include "model/unet.h"

#include <cmath>

#include "core/error.h"
#include "kernels/cpu/elementwise.h"

namespace sdpal {

Tensor timestep_embedding(const std::vector<float>& timesteps, int64_t dim, bool flip_sin_to_cos, float freq_shift) {
  int64_t half = dim / 2, n = int64_t(timesteps.size());
  Tensor out = Tensor::zeros({n, dim});
  std::vector<float> freq(static_cast<size_t>(half));
  const float neg_log_period = float(-std::log(10000.0));
  const float denom = float(half) - freq_shift;
  for (int64_t i = 0; i < half; ++i) freq[size_t(i)] = std::exp(float(i) * neg_log_period / denom);
  float* o = out.f32();
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t i = 0; i < half; ++i) {
      float arg = timesteps[size_t(b)] * freq[size_t(i)];
      float s = std::sin(arg), c = std::cos(arg);
      o[b * dim + i] = flip_sin_to_cos ? c : s;
      o[b * dim + half + i] = flip_sin_to_cos ? s : c;
    }
  }
  return out;
}

// One down, mid or up block: resnets, optional attention after each, optional resampler.
struct UNet::Block {
  std::vector<ResnetBlock> resnets;
  std::vector<Transformer2D> attentions;
  std::optional<cpu::Conv2d> resample;  // downsample (stride 2) or upsample's conv
};

UNet::UNet(const UNetConfig& cfg, WeightBinder& w) : cfg_(cfg) {
  const auto& ch = cfg.block_out_channels;
  const int64_t nb = int64_t(ch.size());
  const int64_t temb = ch[0] * 4;
  const int64_t g = cfg.norm_num_groups;
  const float eps = cfg.norm_eps;
  const int64_t ctx = cfg.cross_attention_dim;
  conv_in_.emplace(bind_conv(w, "conv_in", cfg.in_channels, ch[0], 3, 1, 1));
  time_linear1_.emplace(bind_linear(w, "time_embedding.linear_1", ch[0], temb, true));
  time_linear2_.emplace(bind_linear(w, "time_embedding.linear_2", temb, temb, true));

  int64_t out_ch = ch[0];
  for (int64_t i = 0; i < nb; ++i) {
    auto blk = std::make_unique<Block>();
    std::string p = "down_blocks." + std::to_string(i);
    int64_t in_ch = out_ch;
    out_ch = ch[size_t(i)];
    bool attn = cfg.down_block_types[size_t(i)] == "CrossAttnDownBlock2D";
    for (int j = 0; j < cfg.layers_per_block; ++j) {
      blk->resnets.emplace_back(w, p + ".resnets." + std::to_string(j), j == 0 ? in_ch : out_ch, out_ch, temb, g, eps);
      if (attn)
        blk->attentions.emplace_back(w, p + ".attentions." + std::to_string(j), out_ch, ctx, cfg.num_heads[size_t(i)],
                                     g);
    }
    if (i + 1 < nb) blk->resample.emplace(bind_conv(w, p + ".downsamplers.0.conv", out_ch, out_ch, 3, 2, 1));
    down_.push_back(std::move(blk));
  }

  mid_ = std::make_unique<Block>();
  int64_t mid_ch = ch.back();
  mid_->resnets.emplace_back(w, "mid_block.resnets.0", mid_ch, mid_ch, temb, g, eps);
  mid_->attentions.emplace_back(w, "mid_block.attentions.0", mid_ch, ctx, cfg.num_heads.back(), g);
  mid_->resnets.emplace_back(w, "mid_block.resnets.1", mid_ch, mid_ch, temb, g, eps);

  std::vector<int> rch(ch.rbegin(), ch.rend());
  std::vector<int> rheads(cfg.num_heads.rbegin(), cfg.num_heads.rend());
  int64_t prev_out = rch[0];
  for (int64_t i = 0; i < nb; ++i) {
    auto blk = std::make_unique<Block>();
    std::string p = "up_blocks." + std::to_string(i);
    int64_t out = rch[size_t(i)];
    int64_t in = rch[size_t(std::min(i + 1, nb - 1))];
    bool attn = cfg.up_block_types[size_t(i)] == "CrossAttnUpBlock2D";
    for (int j = 0; j <= cfg.layers_per_block; ++j) {
      int64_t skip = j == cfg.layers_per_block ? in : out;
      int64_t res_in = j == 0 ? prev_out : out;
      blk->resnets.emplace_back(w, p + ".resnets." + std::to_string(j), res_in + skip, out, temb, g, eps);
      if (attn)
        blk->attentions.emplace_back(w, p + ".attentions." + std::to_string(j), out, ctx, rheads[size_t(i)], g);
    }
    if (i + 1 < nb) blk->resample.emplace(bind_conv(w, p + ".upsamplers.0.conv", out, out, 3, 1, 1));
    prev_out = out;
    up_.push_back(std::move(blk));
  }
  norm_out_ = GroupNorm::bind(w, "conv_norm_out", ch[0], g, eps);
  conv_out_.emplace(bind_conv(w, "conv_out", ch[0], cfg.out_channels, 3, 1, 1));
}

UNet::~UNet() = default;

Tensor UNet::forward(const Tensor& sample, float timestep, const Tensor& context) const {
  const int64_t n = sample.dim(0);
  const int64_t levels = int64_t(down_.size());
  check(sample.rank() == 4 && sample.dim(3) == cfg_.in_channels, ErrorCode::kInvalidArgument,
        "unet: sample must be [N, H, W, " + std::to_string(cfg_.in_channels) + "], got " + shape_str(sample.shape()));
  check(sample.dim(1) % (1 << (levels - 1)) == 0 && sample.dim(2) % (1 << (levels - 1)) == 0,
        ErrorCode::kInvalidArgument, "unet: latent size must be a multiple of " + std::to_string(1 << (levels - 1)));
  check(context.rank() == 3 && context.dim(0) == n && context.dim(2) == cfg_.cross_attention_dim,
        ErrorCode::kInvalidArgument, "unet: context must be [N, S, " + std::to_string(cfg_.cross_attention_dim) + "]");

  Tensor t = timestep_embedding(std::vector<float>(size_t(n), timestep), cfg_.block_out_channels[0],
                                cfg_.flip_sin_to_cos, cfg_.freq_shift);
  Tensor emb = apply_linear(*time_linear1_, t);
  cpu::silu(emb.f32(), emb.numel());
  emb = apply_linear(*time_linear2_, emb);
  cpu::silu(emb.f32(), emb.numel());  // every ResNet block applies SiLU before its projection

  Tensor x = conv_in_->run(sample);
  std::vector<Tensor> skips{x};
  for (const auto& blk : down_) {
    for (size_t j = 0; j < blk->resnets.size(); ++j) {
      x = blk->resnets[j].forward(std::move(x), &emb);
      if (!blk->attentions.empty()) x = blk->attentions[j].forward(x, context);
      skips.push_back(x);
    }
    if (blk->resample) {
      x = blk->resample->run(x);
      skips.push_back(x);
    }
  }
  x = mid_->resnets[0].forward(std::move(x), &emb);
  x = mid_->attentions[0].forward(x, context);
  x = mid_->resnets[1].forward(std::move(x), &emb);
  for (const auto& blk : up_) {
    for (size_t j = 0; j < blk->resnets.size(); ++j) {
      Tensor skip = std::move(skips.back());
      skips.pop_back();
      x = blk->resnets[j].forward(concat_channels(x, skip), &emb);
      if (!blk->attentions.empty()) x = blk->attentions[j].forward(x, context);
    }
    if (blk->resample) x = blk->resample->run_upsampled2x(x);
  }
  x = norm_out_.run(x, true);
  return conv_out_->run(x);
}

}  // namespace sdpal
