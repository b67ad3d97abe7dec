#include "model/ldm_names.h"

#include <algorithm>
#include <cstdlib>

namespace sdpal {
namespace {

using Entries = std::vector<LdmEntry>;
std::string str(int i) { return std::to_string(i); }

void one(Entries& e, const std::string& key, const std::string& name, bool squeeze = false) {
  e.push_back({key, name, -1, squeeze});
}
void weight_bias(Entries& e, const std::string& key, const std::string& name) {
  one(e, key + ".weight", name + ".weight");
  one(e, key + ".bias", name + ".bias");
}

// openaimodel.ResBlock -> diffusers ResnetBlock2D (renew_resnet_paths).
void unet_resnet(Entries& e, const std::string& key, const std::string& name, bool shortcut) {
  weight_bias(e, key + ".in_layers.0", name + ".norm1");
  weight_bias(e, key + ".in_layers.2", name + ".conv1");
  weight_bias(e, key + ".emb_layers.1", name + ".time_emb_proj");
  weight_bias(e, key + ".out_layers.0", name + ".norm2");
  weight_bias(e, key + ".out_layers.3", name + ".conv2");
  if (shortcut) weight_bias(e, key + ".skip_connection", name + ".conv_shortcut");
}

// attention.SpatialTransformer -> diffusers Transformer2DModel: the same names (renew_attention_paths
// is the identity); proj_in/proj_out are 1x1 convs (SD 1.x) or linears (SD 2.x), kept as stored.
void unet_transformer(Entries& e, const std::string& key, const std::string& name, int depth) {
  weight_bias(e, key + ".norm", name + ".norm");
  weight_bias(e, key + ".proj_in", name + ".proj_in");
  for (int t = 0; t < depth; ++t) {
    const std::string k = key + ".transformer_blocks." + str(t), n = name + ".transformer_blocks." + str(t);
    for (const char* norm : {".norm1", ".norm2", ".norm3"}) weight_bias(e, k + norm, n + norm);
    for (const char* attn : {".attn1", ".attn2"}) {
      for (const char* p : {".to_q.weight", ".to_k.weight", ".to_v.weight"}) one(e, k + attn + p, n + attn + p);
      weight_bias(e, k + attn + ".to_out.0", n + attn + ".to_out.0");
    }
    weight_bias(e, k + ".ff.net.0.proj", n + ".ff.net.0.proj");
    weight_bias(e, k + ".ff.net.2", n + ".ff.net.2");
  }
  weight_bias(e, key + ".proj_out", name + ".proj_out");
}

// taming ResnetBlock -> diffusers ResnetBlock2D without time embedding (renew_vae_resnet_paths).
void vae_resnet(Entries& e, const std::string& key, const std::string& name, bool shortcut) {
  for (const char* p : {".norm1", ".conv1", ".norm2", ".conv2"}) weight_bias(e, key + p, name + p);
  if (shortcut) weight_bias(e, key + ".nin_shortcut", name + ".conv_shortcut");
}

// taming AttnBlock (1x1 conv q/k/v/proj_out) -> diffusers Attention (renew_vae_attention_paths,
// conv_attn_to_linear: [C, C, 1, 1] -> [C, C]).
void vae_attention(Entries& e, const std::string& key, const std::string& name) {
  weight_bias(e, key + ".norm", name + ".group_norm");
  const std::pair<const char*, const char*> parts[] = {{".q", ".to_q"}, {".k", ".to_k"}, {".v", ".to_v"},
                                                      {".proj_out", ".to_out.0"}};
  for (auto [k, n] : parts) {
    one(e, key + k + ".weight", name + n + ".weight", /*squeeze=*/true);
    one(e, key + k + ".bias", name + n + ".bias");
  }
}

void vae_mid(Entries& e, const std::string& key, const std::string& name, bool attention) {
  vae_resnet(e, key + ".block_1", name + ".resnets.0", false);
  if (attention) vae_attention(e, key + ".attn_1", name + ".attentions.0");
  vae_resnet(e, key + ".block_2", name + ".resnets.1", false);
}

}  // namespace

std::vector<LdmEntry> ldm_unet_entries(const LdmUNetLayout& u) {
  Entries e;
  const std::string P = kLdmUNetPrefix;
  const int L = u.layers, nb = u.blocks();
  const auto& ch = u.channels;
  weight_bias(e, P + "time_embed.0", "time_embedding.linear_1");
  weight_bias(e, P + "time_embed.2", "time_embedding.linear_2");
  weight_bias(e, P + "input_blocks.0.0", "conv_in");
  // input_blocks.i, i = 1 + b*(L+1) + j: resnet (.0) and attention (.1) j of down block b; the
  // block's last index (j = L) holds its downsampler (.0.op).
  int prev = ch[0];
  for (int b = 0; b < nb; ++b) {
    const std::string n = "down_blocks." + str(b);
    for (int j = 0; j < L; ++j) {
      const std::string k = P + "input_blocks." + str(1 + b * (L + 1) + j);
      unet_resnet(e, k + ".0", n + ".resnets." + str(j), (j == 0 ? prev : ch[b]) != ch[b]);
      if (u.down_attention[b]) unet_transformer(e, k + ".1", n + ".attentions." + str(j), u.transformer_depth);
    }
    if (b + 1 < nb)
      weight_bias(e, P + "input_blocks." + str(1 + b * (L + 1) + L) + ".0.op", n + ".downsamplers.0.conv");
    prev = ch[b];
  }
  unet_resnet(e, P + "middle_block.0", "mid_block.resnets.0", false);
  unet_transformer(e, P + "middle_block.1", "mid_block.attentions.0", u.transformer_depth);
  unet_resnet(e, P + "middle_block.2", "mid_block.resnets.1", false);
  // output_blocks.i, i = u*(L+1) + j: resnet (.0), attention (.1), and at j = L the upsampler
  // (.1.conv, or .2.conv after an attention). Channels as diffusers' UpBlock2D computes them.
  std::vector<int> rch(ch.rbegin(), ch.rend());
  int prev_out = rch[0];
  for (int ub = 0; ub < nb; ++ub) {
    const std::string n = "up_blocks." + str(ub);
    const int out = rch[ub], in = rch[std::min(ub + 1, nb - 1)];
    for (int j = 0; j <= L; ++j) {
      const std::string k = P + "output_blocks." + str(ub * (L + 1) + j);
      const int res_in = (j == 0 ? prev_out : out) + (j == L ? in : out);
      unet_resnet(e, k + ".0", n + ".resnets." + str(j), res_in != out);
      if (u.up_attention[ub]) unet_transformer(e, k + ".1", n + ".attentions." + str(j), u.transformer_depth);
      if (j == L && ub + 1 < nb)
        weight_bias(e, k + (u.up_attention[ub] ? ".2" : ".1") + ".conv", n + ".upsamplers.0.conv");
    }
    prev_out = out;
  }
  weight_bias(e, P + "out.0", "conv_norm_out");
  weight_bias(e, P + "out.2", "conv_out");
  return e;
}

std::vector<LdmEntry> ldm_vae_entries(const LdmVaeLayout& v) {
  Entries e;
  const std::string P = kLdmVaePrefix;
  const int L = v.layers, nb = int(v.channels.size());
  const auto& ch = v.channels;
  // Encoder: down.k.block.j (j < L), down.k.downsample.conv (k < nb-1), mid, norm_out, conv_out.
  weight_bias(e, P + "encoder.conv_in", "encoder.conv_in");
  int prev = ch[0];
  for (int k = 0; k < nb; ++k) {
    for (int j = 0; j < L; ++j)
      vae_resnet(e, P + "encoder.down." + str(k) + ".block." + str(j),
                 "encoder.down_blocks." + str(k) + ".resnets." + str(j), (j == 0 ? prev : ch[k]) != ch[k]);
    if (k + 1 < nb)
      weight_bias(e, P + "encoder.down." + str(k) + ".downsample.conv",
                  "encoder.down_blocks." + str(k) + ".downsamplers.0.conv");
    prev = ch[k];
  }
  vae_mid(e, P + "encoder.mid", "encoder.mid_block", v.mid_attention);
  weight_bias(e, P + "encoder.norm_out", "encoder.conv_norm_out");
  weight_bias(e, P + "encoder.conv_out", "encoder.conv_out");
  weight_bias(e, P + "quant_conv", "quant_conv");
  weight_bias(e, P + "post_quant_conv", "post_quant_conv");
  // Decoder: LDM numbers its up levels from the bottom (up.k), diffusers from the top
  // (up_blocks.i, i = nb-1-k); L+1 resnets per level, the upsampler on every level but up.0.
  weight_bias(e, P + "decoder.conv_in", "decoder.conv_in");
  vae_mid(e, P + "decoder.mid", "decoder.mid_block", v.mid_attention);
  prev = ch[nb - 1];
  for (int i = 0; i < nb; ++i) {
    const int k = nb - 1 - i, out = ch[k];
    for (int j = 0; j <= L; ++j)
      vae_resnet(e, P + "decoder.up." + str(k) + ".block." + str(j),
                 "decoder.up_blocks." + str(i) + ".resnets." + str(j), (j == 0 ? prev : out) != out);
    if (i + 1 < nb)
      weight_bias(e, P + "decoder.up." + str(k) + ".upsample.conv", "decoder.up_blocks." + str(i) + ".upsamplers.0.conv");
    prev = out;
  }
  weight_bias(e, P + "decoder.norm_out", "decoder.conv_norm_out");
  weight_bias(e, P + "decoder.conv_out", "decoder.conv_out");
  return e;
}

std::vector<LdmEntry> ldm_text_entries(LdmTextLayout layout, int layers, bool clip_text_model) {
  Entries e;
  if (layout == LdmTextLayout::kClip) {
    // transformers' CLIPTextModel under the prefix: the diffusers names as they are.
    const std::string P = std::string(kLdmClipPrefix) + (clip_text_model ? "text_model." : "");
    const std::string N = "text_model.";
    one(e, P + "embeddings.token_embedding.weight", N + "embeddings.token_embedding.weight");
    one(e, P + "embeddings.position_embedding.weight", N + "embeddings.position_embedding.weight");
    for (int i = 0; i < layers; ++i) {
      const std::string l = "encoder.layers." + str(i);
      for (const char* p : {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj", ".self_attn.out_proj",
                            ".layer_norm1", ".mlp.fc1", ".mlp.fc2", ".layer_norm2"})
        weight_bias(e, P + l + p, N + l + p);
    }
    weight_bias(e, P + "final_layer_norm", N + "final_layer_norm");
    return e;
  }
  // open_clip's text tower (convert_open_clip_checkpoint's textenc_conversion_map and
  // textenc_transformer_conversion_lst); in_proj_weight/bias stack q, k, v along rows.
  const std::string P = kLdmOpenClipPrefix;
  one(e, P + "token_embedding.weight", "text_model.embeddings.token_embedding.weight");
  one(e, P + "positional_embedding", "text_model.embeddings.position_embedding.weight");
  for (int i = 0; i < layers; ++i) {
    const std::string k = P + "transformer.resblocks." + str(i), n = "text_model.encoder.layers." + str(i);
    weight_bias(e, k + ".ln_1", n + ".layer_norm1");
    const char* qkv[] = {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj"};
    for (int part = 0; part < 3; ++part) {
      e.push_back({k + ".attn.in_proj_weight", n + qkv[part] + ".weight", part, false});
      e.push_back({k + ".attn.in_proj_bias", n + qkv[part] + ".bias", part, false});
    }
    weight_bias(e, k + ".attn.out_proj", n + ".self_attn.out_proj");
    weight_bias(e, k + ".ln_2", n + ".layer_norm2");
    weight_bias(e, k + ".mlp.c_fc", n + ".mlp.fc1");
    weight_bias(e, k + ".mlp.c_proj", n + ".mlp.fc2");
  }
  weight_bias(e, P + "ln_final", "text_model.final_layer_norm");
  return e;
}

namespace {
// DDPM.register_schedule's persistent buffers, plus LatentDiffusion's logvar (a training-time table
// some fine-tuned checkpoints save).
const char* const kScheduleBuffers[] = {
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "lvlb_weights", "logvar"};
bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
}  // namespace

const char* const kLdmIgnoredKeys =
    "model_ema.* (EMA copies, decay, num_updates); the DDPM schedule buffers (betas, alphas_cumprod, "
    "alphas_cumprod_prev, sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod, log_one_minus_alphas_cumprod, "
    "sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod, posterior_variance, posterior_log_variance_clipped, "
    "posterior_mean_coef1, posterior_mean_coef2, lvlb_weights, logvar); "
    "cond_stage_model.transformer[.text_model].embeddings.position_ids; "
    "cond_stage_model.model.text_projection, cond_stage_model.model.logit_scale and the OpenCLIP resblocks after the "
    "last one used (SD 2.x: resblocks.23)";

bool ldm_ignored_key(const std::string& key, LdmTextLayout layout, int text_layers) {
  if (starts_with(key, "model_ema.")) return true;
  for (const char* b : kScheduleBuffers)
    if (key == b) return true;
  if (key == std::string(kLdmClipPrefix) + "text_model.embeddings.position_ids" ||
      key == std::string(kLdmClipPrefix) + "embeddings.position_ids")
    return true;
  if (layout == LdmTextLayout::kOpenClip) {
    const std::string P = kLdmOpenClipPrefix;
    if (key == P + "text_projection" || key == P + "logit_scale") return true;
    const std::string r = P + "transformer.resblocks.";
    if (starts_with(key, r)) {
      const char* s = key.c_str() + r.size();
      char* end = nullptr;
      long i = std::strtol(s, &end, 10);
      if (end != s && *end == '.' && i >= text_layers) return true;
    }
  }
  return false;
}

}  // namespace sdpal
