// Original single-file Stable Diffusion 1.x/2.x checkpoints (CompVis/Stability "LDM" layout):
// `sd-v1-4.ckpt`, `v2-1_768-ema-pruned.safetensors`, ... loaded into the native modules.
//
// Format facts relied on (diffusers 0.31 pipelines/stable_diffusion/convert_from_ckpt.py and
// loaders/single_file_utils.py; CompVis/stable-diffusion and Stability-AI/stablediffusion ldm/):
// - Files: a torch.save zip (.ckpt/.pt/.pth/.bin; io/pickle_checkpoint.h, which takes the top-level
//   "state_dict" entry when there is one, as Lightning saves it) or a .safetensors with the same keys.
//   Whatever the extension says, a zip is read as a torch checkpoint and anything else as safetensors.
// - One flat state dict of LatentDiffusion: `model.diffusion_model.*` (openaimodel.UNetModel),
//   `first_stage_model.*` (AutoencoderKL: encoder, decoder, quant_conv, post_quant_conv) and
//   `cond_stage_model.*`: SD 1.x FrozenCLIPEmbedder = transformers' CLIPTextModel under
//   `cond_stage_model.transformer.` (with `text_model.`; older exports without it), SD 2.x
//   FrozenOpenCLIPEmbedder = open_clip's text tower under `cond_stage_model.model.`
//   (`token_embedding.weight`, `positional_embedding`, `transformer.resblocks.N.{ln_1, attn.in_proj_weight
//   [3D, D] = q;k;v rows, attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}`, `ln_final`,
//   `text_projection`, `logit_scale`). SD 2.x uses the penultimate resblock's output followed by
//   ln_final (layer "penultimate"), so diffusers' text encoder has one layer fewer (23 of 24) and the
//   last resblock is unused; open_clip tokenizes with zero padding, which diffusers reproduces with
//   pad_token "!" (id 0).
// - Renaming (name arithmetic, model/ldm_names.h): UNet input_blocks.i (i = 1 + b*(L+1) + j) = down
//   block b resnet/attention j, index b*(L+1)+L its downsampler `.0.op`; middle_block.{0,1,2}; output_blocks
//   .i (i = u*(L+1) + j) = up block u resnet/attention j, upsampler `.1.conv` or `.2.conv` at j = L;
//   resnet in_layers.{0,2} / emb_layers.1 / out_layers.{0,3} / skip_connection = norm1, conv1,
//   time_emb_proj, norm2, conv2, conv_shortcut; SpatialTransformer names equal diffusers'. VAE decoder
//   up.k = diffusers up_blocks.(n-1-k), block.j = resnets.j, nin_shortcut = conv_shortcut, norm_out =
//   conv_norm_out, mid.block_{1,2} / mid.attn_1 = mid_block.resnets.{0,1} / attentions.0 with
//   norm/q/k/v/proj_out = group_norm/to_q/to_k/to_v/to_out.0.
// - Shapes: VAE attention q/k/v/proj_out are 1x1 convs [C, C, 1, 1]: exposed as [C, C] views of the
//   same bytes (what diffusers' conv_attn_to_linear produces). SD 1.x UNet proj_in/proj_out are 1x1 convs
//   [C, C, 1, 1] (use_linear_projection false, kept as stored, as diffusers does); SD 2.x's are linears
//   [C, C]. OpenCLIP's fused in_proj is exposed as three row-slice views (no copy).
// - Not in the file (so inferred, or read from --config): attention heads (SD 1.x: 8 per block; SD 2.x:
//   head dim 64, i.e. channels / 64; text encoders: width / 64), GroupNorm groups (32), sample size, the
//   scheduler (SD 1.x: SD v1.4's PNDM config; SD 2.x: as diffusers' single-file default, SD 2.1's DDIM
//   v-prediction config, 768x768: 512-base checkpoints need a --config scheduler with "epsilon"), the
//   tokenizer (see below) and the VAE scaling factor (0.18215, or a `scale_factor` tensor if stored).
//
// Strictness: every checkpoint key is mapped or on the ignore list (model/ldm_names.h kLdmIgnoredKeys:
// model_ema.*, DDPM schedule buffers, CLIP position_ids, OpenCLIP text_projection / logit_scale / unused
// last resblock); unknown and missing keys are Error(kModel) naming the key and the file. The VAE encoder
// and quant_conv are mapped (to diffusers' names, for conversion) but not bound: sdpal has no encoder.
//
// The --config folder (config_dir, optional): a folder laid out like a diffusers model folder, every
// part optional: unet/config.json, vae/config.json, text_encoder/config.json (diffusers/transformers
// config files; their values fill what shapes cannot give and must agree with what shapes do give),
// scheduler/scheduler_config.json, tokenizer/ (vocab.json + merges.txt [+ special_tokens_map.json]),
// safety_checker/ + feature_extractor/. A diffusers model folder of the same architecture serves as-is.
//
// Tokenizer (original checkpoints carry none), first found: <config_dir>/tokenizer/; the file
// $SDPAL_CLIP_VOCAB (OpenAI's bpe_simple_vocab_16e6.txt.gz; an error if set but missing); then
// data/clip/bpe_simple_vocab_16e6.txt.gz next to the executable, one level up, or under ../share/sdpal/
// (<exe dir>/data/clip/..., <exe dir>/../data/clip/..., <exe dir>/../share/sdpal/data/clip/...).
// None: Error(kModel). The .gz vocabulary gives SD 1.x's special tokens (pad = <|endoftext|>); for SD 2.x
// it would have to pad with "!", which ClipTokenizer::from_bpe_gz cannot express yet: a warning says so.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/tensor_file.h"
#include "model/diffusers_folder.h"
#include "model/model_config.h"

namespace sdpal {

struct LdmComponents {
  std::string path;         // the checkpoint file
  std::string text_layout;  // "clip" (SD 1.x) or "openclip" (SD 2.x)
  // Per component, the tensors under their diffusers names without the component prefix
  // ("text_model.encoder.layers.0.self_attn.q_proj.weight", "down_blocks.0.resnets.0.conv1.weight",
  // "decoder.mid_block.attentions.0.to_q.weight", "encoder.conv_in.weight" ...) and diffusers' shapes;
  // views into the checkpoint (kept alive by these files and by each view's owner).
  std::shared_ptr<TensorFile> text_encoder, unet, vae;
  // The configs, as diffusers/transformers config.json contents (inferred values merged over the
  // --config files or the SD defaults) and parsed.
  nlohmann::json text_encoder_json, unet_json, vae_json, scheduler_json;
  ClipTextConfig text_encoder_config;
  UNetConfig unet_config;
  VaeConfig vae_config;
  // Where the tokenizer comes from: <config_dir>/tokenizer (tokenizer_dir), else a CLIP
  // bpe_simple_vocab_16e6.txt.gz (clip_vocab: $SDPAL_CLIP_VOCAB as given, checked when loading, or
  // the first install path that exists); both empty when none was found.
  std::string tokenizer_dir, clip_vocab;
  std::string config_dir;
  std::vector<std::string> ignored;   // checkpoint keys left out on purpose (see kLdmIgnoredKeys)
  std::vector<std::string> warnings;  // defaults the user may need to override
  // The checkpoint key (with "[rows a:b]" for a slice of a fused tensor) behind a component's tensor
  // name, or "" if there is none.
  std::string source_key(const std::string& component, const std::string& name) const;
};

// Opens, maps and checks a checkpoint (see above); binds nothing. Throws Error(kIo) for unreadable
// files, Error(kFormat) for malformed ones, Error(kModel) naming the file and key for unknown, missing
// or inconsistent tensors and --config files that disagree with the tensors, Error(kUnsupported) for
// SDXL and other architectures.
LdmComponents open_ldm_checkpoint(const std::string& path, const std::string& config_dir = "");
// The same for an already opened file (its path() names it in messages).
LdmComponents open_ldm_checkpoint(std::shared_ptr<TensorFile> file, const std::string& config_dir = "");

// The checkpoint as a StableDiffusionModel (format "ldm"): tokenizer (see above), text encoder, UNet,
// VAE decoder, scheduler config, and a safety checker only when config_dir has one. opts.variant does
// not apply (a warning if set); opts.executor is not looked at (load_model's business).
std::unique_ptr<StableDiffusionModel> load_ldm_checkpoint(const std::string& path, const LoadOptions& opts,
                                                          const std::string& config_dir = "");

// True for a regular file named *.ckpt, *.pt, *.pth or *.safetensors (what load_model should send here).
bool looks_like_ldm_checkpoint(const std::string& path);

}  // namespace sdpal
