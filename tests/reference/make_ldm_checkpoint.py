#!/usr/bin/env python3
"""Builds original single-file (CompVis/LDM layout) Stable Diffusion checkpoints for the C++ tests:
tests/fixtures/tiny-sd-v1-ldm/ (see the README.md written there).

- tiny-sd-v1.safetensors (fp16) and tiny-sd-v1.ckpt (fp32, torch.save({"state_dict": ...}) as
  Lightning saved sd-v1-4.ckpt): tests/fixtures/tiny-sd-v1's text encoder, UNet and VAE renamed to
  the LDM keys, plus the extras real checkpoints carry (DDPM schedule buffers, the CLIP position_ids
  buffer, model_ema.decay / num_updates).
- tiny-sd-v2.safetensors (fp16): a tiny random SD 2.x-style model (OpenCLIP text encoder with fused
  in_proj and one unused final resblock, linear proj_in/proj_out, layers_per_block 2), with
  tiny-sd-v2-config/ (the diffusers config.json files sdpal reads as --config: heads and norm groups
  cannot be read from shapes) and its diffusers pipeline outputs.
- expected.safetensors / expected.json: diffusers' StableDiffusionPipeline outputs for the fp16 v1
  file and the v2 file (each loaded back through diffusers' own convert_from_ckpt functions).

The diffusers -> LDM mapping below is written here (diffusers ships its reverse script only in its git
repo); every file is checked by loading it back with diffusers' convert_ldm_unet_checkpoint,
convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint / convert_open_clip_checkpoint and comparing
every tensor with the source weights exactly.

Run: python tests/reference/make_ldm_checkpoint.py [OUT_DIR]   (default tests/fixtures/tiny-sd-v1-ldm)
"""
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refcommon as rc  # noqa: E402

OUT_DEFAULT = os.path.join(rc.REPO, "tests", "fixtures", "tiny-sd-v1-ldm")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPENCLIP_PREFIX = "cond_stage_model.model."

# ---- the tiny SD 2.x-style model --------------------------------------------------------------

V2_TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=32,
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
V2_UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(16, 16, 32, 32),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=(2, 2, 4, 4),  # head dim 8 (SD 2.x: 64, i.e. (5, 10, 20, 20))
    cross_attention_dim=32, norm_num_groups=8, norm_eps=1e-5, act_fn="silu", use_linear_projection=True,
    flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, mid_block_scale_factor=1,
)
V2_VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=128, layers_per_block=2,
    block_out_channels=(16, 32, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=8, act_fn="silu", scaling_factor=0.18215,
)
# stabilityai/stable-diffusion-2-1's scheduler (768-v: v-prediction).
V2_SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
}
V2_SEEDS = dict(text_encoder=201, unet=202, vae=203, extra=204)

# ---- diffusers -> LDM names ---------------------------------------------------------------------

RESNET_UNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
               "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_ldm_name(name, cfg):
    """A diffusers UNet2DConditionModel parameter name -> its LDM (openaimodel.UNetModel) name."""
    L = cfg["layers_per_block"]
    nb = len(cfg["block_out_channels"])
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    stem, _, leaf = name.rpartition(".")
    if stem in fixed:
        return fixed[stem] + "." + leaf

    def resnet(rest):
        part, _, leaf = rest.rpartition(".")
        return RESNET_UNET[part] + "." + leaf

    m = re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.+)", name)
    if m:
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"input_blocks.{1 + b * (L + 1) + j}.0.{resnet(rest)}"
        if kind == "attentions":
            return f"input_blocks.{1 + b * (L + 1) + j}.1.{rest}"
        assert rest.startswith("conv.") and b < nb - 1
        return f"input_blocks.{1 + b * (L + 1) + L}.0.op.{rest[len('conv.'):]}"
    m = re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", name)
    if m:
        kind, j, rest = m[1], int(m[2]), m[3]
        if kind == "resnets":
            return f"middle_block.{2 * j}.{resnet(rest)}"
        return f"middle_block.1.{rest}"
    m = re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.+)", name)
    if m:
        u, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"output_blocks.{u * (L + 1) + j}.0.{resnet(rest)}"
        if kind == "attentions":
            return f"output_blocks.{u * (L + 1) + j}.1.{rest}"
        has_attn = cfg["up_block_types"][u] == "CrossAttnUpBlock2D"
        return f"output_blocks.{u * (L + 1) + L}.{2 if has_attn else 1}.{rest}"
    raise KeyError(f"unet: no LDM name for {name}")


def vae_ldm_name(name, cfg):
    """A diffusers AutoencoderKL parameter name -> its LDM (taming Encoder/Decoder) name."""
    nb = len(cfg["block_out_channels"])
    m = re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(weight|bias)", name)
    if m:
        return f"{m[1]}.norm_out.{m[2]}"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)", name)
    if m:
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", name)
    if m:
        return f"{m[1]}.mid.attn_1.{VAE_ATTN[m[2]]}.{m[3]}"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name)
    if m:
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", name)
    if m:
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name)
    if m:
        return f"decoder.up.{nb - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", name)
    if m:
        return f"decoder.up.{nb - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if re.fullmatch(r"(encoder|decoder)\.conv_(in|out)\.(weight|bias)|(post_)?quant_conv\.(weight|bias)", name):
        return name
    raise KeyError(f"vae: no LDM name for {name}")


OPENCLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                  "self_attn.out_proj": "attn.out_proj"}


def openclip_state(te_sd):
    """transformers CLIPTextModel weights -> OpenCLIP text tower names (no prefix), q/k/v fused."""
    out = {}
    fixed = {"text_model.embeddings.token_embedding.weight": "token_embedding.weight",
             "text_model.embeddings.position_embedding.weight": "positional_embedding",
             "text_model.final_layer_norm.weight": "ln_final.weight",
             "text_model.final_layer_norm.bias": "ln_final.bias"}
    fused = {}
    for name, t in te_sd.items():
        if name in fixed:
            out[fixed[name]] = t
            continue
        m = re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", name)
        assert m, name
        i, part, leaf = int(m[1]), m[2], m[3]
        qkv = re.fullmatch(r"self_attn\.(q|k|v)_proj", part)
        if qkv:
            fused.setdefault((i, leaf), {})[qkv[1]] = t
            continue
        out[f"transformer.resblocks.{i}.{OPENCLIP_LAYER[part]}.{leaf}"] = t
    for (i, leaf), parts in fused.items():
        out[f"transformer.resblocks.{i}.attn.in_proj_{leaf}"] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    return out


def ddpm_schedule_buffers(linear_start=0.00085, linear_end=0.012, timesteps=1000):
    """The persistent buffers ldm.models.diffusion.ddpm.DDPM.register_schedule stores (v_posterior 0)."""
    betas = np.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=np.float64) ** 2
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return {
        "betas": f(betas), "alphas_cumprod": f(ac), "alphas_cumprod_prev": f(ac_prev),
        "sqrt_alphas_cumprod": f(np.sqrt(ac)), "sqrt_one_minus_alphas_cumprod": f(np.sqrt(1.0 - ac)),
        "log_one_minus_alphas_cumprod": f(np.log(1.0 - ac)), "sqrt_recip_alphas_cumprod": f(np.sqrt(1.0 / ac)),
        "sqrt_recipm1_alphas_cumprod": f(np.sqrt(1.0 / ac - 1)), "posterior_variance": f(post_var),
        "posterior_log_variance_clipped": f(np.log(np.maximum(post_var, 1e-20))),
        "posterior_mean_coef1": f(betas * np.sqrt(ac_prev) / (1.0 - ac)),
        "posterior_mean_coef2": f((1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)),
    }


def to_ldm(unet, vae, text_encoder, openclip_extra=None):
    """The full LDM state dict (fp32) of diffusers modules. openclip_extra: None for SD v1 (CLIP
    ViT-L layout), else a dict of extra OpenCLIP tensors (unused last resblock, text_projection,
    logit_scale) for the SD 2.x layout."""
    sd = {}
    ucfg, vcfg = unet.config, vae.config
    for k, v in unet.state_dict().items():
        sd[UNET_PREFIX + unet_ldm_name(k, ucfg)] = v.detach().clone()
    for k, v in vae.state_dict().items():
        v = v.detach().clone()
        if ".mid_block.attentions.0.to_" in k and k.endswith(".weight"):
            v = v.reshape(*v.shape, 1, 1)  # the LDM VAE's attention projections are 1x1 convs
        sd[VAE_PREFIX + vae_ldm_name(k, vcfg)] = v
    te = {k: v.detach().clone() for k, v in text_encoder.state_dict().items()}
    if openclip_extra is None:
        for k, v in te.items():
            sd[CLIP_PREFIX + k] = v
        # Saved by the transformers versions SD v1 was trained with (a persistent buffer then).
        sd[CLIP_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
        sd["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)
        sd["model_ema.num_updates"] = torch.tensor(470000, dtype=torch.int32)
    else:
        for k, v in openclip_state(te).items():
            sd[OPENCLIP_PREFIX + k] = v
        for k, v in openclip_extra.items():
            sd[OPENCLIP_PREFIX + k] = v
    sd.update(ddpm_schedule_buffers())
    return sd


# ---- round trip through diffusers' own conversion -----------------------------------------------

def check_round_trip(sd, unet, vae, text_encoder, openclip, tmp):
    """Loads `sd` back with diffusers' convert_from_ckpt functions; every tensor must equal the source."""
    from diffusers.pipelines.stable_diffusion import convert_from_ckpt as cfc
    from transformers import CLIPTextModel

    def same(got, want, what):
        assert set(got) == set(want), (what, sorted(set(got) ^ set(want))[:10])
        for k in want:
            g, w = got[k], want[k]
            assert g.shape == w.shape and g.dtype == w.dtype and torch.equal(g, w), (what, k, g.shape, w.shape)
        return len(want)

    ucfg = dict(unet.config)
    n = same(cfc.convert_ldm_unet_checkpoint(dict(sd), ucfg), unet.state_dict(), "unet")
    vcfg = dict(vae.config)
    n += same(cfc.convert_ldm_vae_checkpoint(dict(sd), vcfg), vae.state_dict(), "vae")
    if not openclip:
        te = cfc.convert_ldm_clip_checkpoint(dict(sd), text_encoder=CLIPTextModel(text_encoder.config))
        n += same(te.state_dict(), text_encoder.state_dict(), "text_encoder")
    else:
        # diffusers drops the unused last resblock only for config_name "stabilityai/stable-diffusion-2"
        # with 23 layers (hard-coded resblocks.23); do the same for the tiny one, and keep text_projection
        # (whose shape gives diffusers the width) by loading into CLIPTextModelWithProjection.
        cfg_dir = os.path.join(tmp, "text_config")
        os.makedirs(cfg_dir, exist_ok=True)
        cfg = text_encoder.config
        cfg.to_json_file(os.path.join(cfg_dir, "config.json"))
        last = f"{OPENCLIP_PREFIX}transformer.resblocks.{cfg.num_hidden_layers}."
        trimmed = {k: v for k, v in sd.items() if not k.startswith(last) and not k.endswith("logit_scale")}
        te = cfc.convert_open_clip_checkpoint(trimmed, cfg_dir, has_projection=True, local_files_only=True)
        got = {k: v for k, v in te.state_dict().items() if k != "text_projection.weight"}
        n += same(got, text_encoder.state_dict(), "text_encoder (OpenCLIP)")
        assert torch.equal(te.state_dict()["text_projection.weight"], sd[OPENCLIP_PREFIX + "text_projection"].T)
    return n


def components_from_ldm(sd, unet_cfg, vae_cfg, text_config, openclip, tmp):
    """diffusers modules (fp32) built from an LDM state dict with diffusers' convert_from_ckpt."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion import convert_from_ckpt as cfc
    from transformers import CLIPTextModel
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    unet = UNet2DConditionModel(**unet_cfg).eval()
    unet.load_state_dict(cfc.convert_ldm_unet_checkpoint(dict(sd), dict(unet.config)))
    vae = AutoencoderKL(**vae_cfg).eval()
    vae.load_state_dict(cfc.convert_ldm_vae_checkpoint(dict(sd), dict(vae.config)))
    if not openclip:
        te = cfc.convert_ldm_clip_checkpoint(dict(sd), text_encoder=CLIPTextModel(text_config)).eval()
    else:
        cfg_dir = os.path.join(tmp, "text_config_run")
        os.makedirs(cfg_dir, exist_ok=True)
        text_config.to_json_file(os.path.join(cfg_dir, "config.json"))
        last = f"{OPENCLIP_PREFIX}transformer.resblocks.{text_config.num_hidden_layers}."
        trimmed = {k: v for k, v in sd.items() if not k.startswith(last) and not k.endswith("logit_scale")}
        with_proj = cfc.convert_open_clip_checkpoint(trimmed, cfg_dir, has_projection=True, local_files_only=True)
        te = CLIPTextModel(text_config).eval()
        te.load_state_dict({k: v for k, v in with_proj.state_dict().items() if k != "text_projection.weight"})
    return unet, vae, te


# ---- pipeline runs -------------------------------------------------------------------------------

RUN = dict(prompt=rc.PROMPT, negative_prompt="", seed=rc.SEED, height=rc.HEIGHT, width=rc.WIDTH, steps=8,
           guidance=rc.GUIDANCE)


def run_pipeline(unet, vae, te, tokenizer, scheduler):
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    seen = {}

    def callback(p, i, t, kw):
        if "prompt_embeds" not in seen:
            seen["prompt_embeds"] = kw["prompt_embeds"].clone()
        return {}

    with torch.no_grad():
        out = pipe(RUN["prompt"], height=RUN["height"], width=RUN["width"], num_inference_steps=RUN["steps"],
                   guidance_scale=RUN["guidance"], output_type="np",
                   generator=torch.Generator().manual_seed(RUN["seed"]),
                   callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["prompt_embeds"])
    ids = [tokenizer(p, padding="max_length", max_length=77, truncation=True).input_ids
           for p in ("", RUN["prompt"])]
    return rc.numpy_to_uint8(out.images), seen["prompt_embeds"], torch.tensor(ids, dtype=torch.int64)


# ---- full-size shape manifests ----------------------------------------------------------------
# The key -> shape lists of real SD v1.4 (sd-v1-4-full-ema.ckpt: with the EMA copies) and SD 2.1
# (v2-1_768-ema-pruned) checkpoints, built on the meta device from the repositories' diffusers configs
# with the mapping above, plus the configs sdpal must infer from them without --config.

SD14_UNET = dict(act_fn="silu", attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280],
                 center_input_sample=False, cross_attention_dim=768,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], downsample_padding=1,
                 flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2, mid_block_scale_factor=1,
                 norm_eps=1e-5, norm_num_groups=32, out_channels=4, sample_size=64,
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
SD21_UNET = dict(SD14_UNET, attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024, sample_size=96,
                 upcast_attention=True, use_linear_projection=True)
SD_VAE = dict(act_fn="silu", block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
              in_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, out_channels=3,
              sample_size=512, scaling_factor=0.18215, up_block_types=["UpDecoderBlock2D"] * 4)
SD14_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                 projection_dim=768)
SD21_TEXT = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                 num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
                 projection_dim=512)


def shape_manifest(unet_cfg, vae_cfg, text_cfg, openclip, ema):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        # SD 2.x's OpenCLIP tower has one resblock more than the diffusers text encoder uses.
        tcfg = dict(text_cfg, num_hidden_layers=text_cfg["num_hidden_layers"] + (1 if openclip else 0))
        te = CLIPTextModel(CLIPTextConfig(**tcfg))
    shapes = {}
    for k, v in unet.state_dict().items():
        shapes[UNET_PREFIX + unet_ldm_name(k, unet.config)] = list(v.shape)
    for k, v in vae.state_dict().items():
        shape = list(v.shape) + ([1, 1] if ".mid_block.attentions.0.to_" in k and k.endswith(".weight") else [])
        shapes[VAE_PREFIX + vae_ldm_name(k, vae.config)] = shape
    if openclip:
        for k, v in openclip_state(te.state_dict()).items():
            shapes[OPENCLIP_PREFIX + k] = list(v.shape)
        d = text_cfg["hidden_size"]
        shapes[OPENCLIP_PREFIX + "text_projection"] = [d, d]
        shapes[OPENCLIP_PREFIX + "logit_scale"] = []
    else:
        for k, v in te.state_dict().items():
            shapes[CLIP_PREFIX + k] = list(v.shape)
        shapes[CLIP_PREFIX + "text_model.embeddings.position_ids"] = [1, 77]
        shapes["model_ema.decay"] = []
        shapes["model_ema.num_updates"] = []
    if ema:  # LitEma's names: the UNet keys without "model." and without dots
        for k in [k for k in shapes if k.startswith(UNET_PREFIX)]:
            shapes["model_ema." + "".join(k.split(".")[1:])] = shapes[k]
    for k, v in ddpm_schedule_buffers().items():
        shapes[k] = list(v.shape)
    n_text = text_cfg["num_hidden_layers"]
    expected = {"unet_config": unet_cfg, "vae_config": vae_cfg, "text_encoder_config": text_cfg,
                "counts": {"unet": len(unet.state_dict()), "vae": len(vae.state_dict()),
                           "text_encoder": sum(1 for k in te.state_dict()
                                               if not k.startswith(f"text_model.encoder.layers.{n_text}."))}}
    return {"tensors": shapes, "expected": expected}


def write_manifest(path, m):
    """One tensor per line (diffable, a third of rc.write_json's size)."""
    lines = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(m["tensors"].items())]
    with open(path, "w", encoding="utf-8") as f:
        f.write('{\n  "expected": ' + json.dumps(m["expected"], sort_keys=True) + ',\n  "tensors": {\n')
        f.write(",\n".join(lines) + "\n  }\n}\n")
    with open(path) as f:
        assert json.load(f) == json.loads(json.dumps(m))


# ---- main ----------------------------------------------------------------------------------------

def fp16(sd):
    return {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}


def build_v2_modules():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(V2_SEEDS["text_encoder"])
    te = CLIPTextModel(CLIPTextConfig(**V2_TEXT_CONFIG)).eval()
    torch.manual_seed(V2_SEEDS["unet"])
    unet = UNet2DConditionModel(**V2_UNET_CONFIG).eval()
    torch.manual_seed(V2_SEEDS["vae"])
    vae = AutoencoderKL(**V2_VAE_CONFIG).eval()
    # The OpenCLIP tower's last resblock (SD 2.x uses the penultimate layer's output, then ln_final),
    # text_projection and logit_scale: in the checkpoint, unused by the pipeline.
    g = torch.Generator().manual_seed(V2_SEEDS["extra"])
    d, f, n = V2_TEXT_CONFIG["hidden_size"], V2_TEXT_CONFIG["intermediate_size"], V2_TEXT_CONFIG["num_hidden_layers"]
    r = lambda *s: (torch.randn(*s, generator=g) * 0.02)  # noqa: E731
    p = f"transformer.resblocks.{n}."
    extra = {p + "ln_1.weight": torch.ones(d), p + "ln_1.bias": torch.zeros(d),
             p + "attn.in_proj_weight": r(3 * d, d), p + "attn.in_proj_bias": torch.zeros(3 * d),
             p + "attn.out_proj.weight": r(d, d), p + "attn.out_proj.bias": torch.zeros(d),
             p + "ln_2.weight": torch.ones(d), p + "ln_2.bias": torch.zeros(d),
             p + "mlp.c_fc.weight": r(f, d), p + "mlp.c_fc.bias": torch.zeros(f),
             p + "mlp.c_proj.weight": r(d, f), p + "mlp.c_proj.bias": torch.zeros(d),
             "text_projection": r(d, d), "logit_scale": torch.tensor(4.6052)}
    return unet, vae, te, extra


def write_v2_config(out_dir, unet, vae, te):
    d = os.path.join(out_dir, "tiny-sd-v2-config")
    shutil.rmtree(d, ignore_errors=True)
    for comp in ("unet", "vae", "text_encoder", "scheduler"):
        os.makedirs(os.path.join(d, comp))
    unet.save_config(os.path.join(d, "unet"))
    vae.save_config(os.path.join(d, "vae"))
    te.config.to_json_file(os.path.join(d, "text_encoder", "config.json"))
    rc.write_json(os.path.join(d, "scheduler", "scheduler_config.json"), V2_SCHEDULER_CONFIG)


def main():
    from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, UNet2DConditionModel
    from safetensors.torch import load_file, save_file
    from transformers import CLIPTextModel, CLIPTokenizer

    out_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else OUT_DEFAULT)
    rc.set_torch_deterministic(1)
    tmp = tempfile.mkdtemp(prefix="ldm-ckpt-")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)

    # SD v1: the tiny diffusers fixture.
    unet = UNet2DConditionModel.from_pretrained(os.path.join(rc.TINY_DIR, "unet")).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(rc.TINY_DIR, "vae")).eval()
    te = CLIPTextModel.from_pretrained(os.path.join(rc.TINY_DIR, "text_encoder")).eval()
    sd1 = to_ldm(unet, vae, te)
    n = check_round_trip(sd1, unet, vae, te, False, tmp)
    print(f"v1: {len(sd1)} LDM tensors; diffusers' convert_from_ckpt gives back all {n} parameters exactly")
    st1 = os.path.join(out_dir, "tiny-sd-v1.safetensors")
    save_file(fp16(sd1), st1, metadata={"format": "pt"})
    ck1 = os.path.join(out_dir, "tiny-sd-v1.ckpt")
    torch.save({"epoch": 6, "global_step": 470000, "pytorch-lightning_version": "1.4.2",
                "state_dict": {k: v.contiguous() for k, v in sd1.items()}}, ck1)
    # Read back: the .ckpt is exact, the .safetensors is the fp16 rounding.
    back = torch.load(ck1, map_location="cpu", weights_only=True)["state_dict"]
    assert set(back) == set(sd1) and all(torch.equal(back[k], sd1[k]) for k in sd1)
    back16 = load_file(st1)
    assert set(back16) == set(sd1)
    tok1 = CLIPTokenizer.from_pretrained(os.path.join(rc.TINY_DIR, "tokenizer"))
    sched1 = PNDMScheduler.from_config({k: v for k, v in rc.SD14_SCHEDULER_CONFIG.items() if not k.startswith("_")})
    u16, v16, t16 = components_from_ldm(back16, dict(unet.config), dict(vae.config), te.config, False, tmp)
    for a, b in ((u16, unet), (v16, vae), (t16, te)):  # the fp16 file holds the fp16 rounding of every weight
        for k, v in b.state_dict().items():
            assert torch.equal(a.state_dict()[k], v.half().float()), k
    img1, emb1, ids1 = run_pipeline(u16, v16, t16, tok1, sched1)

    # SD 2.x style.
    unet2, vae2, te2, extra = build_v2_modules()
    sd2 = to_ldm(unet2, vae2, te2, openclip_extra=extra)
    n = check_round_trip(sd2, unet2, vae2, te2, True, tmp)
    print(f"v2: {len(sd2)} LDM tensors; diffusers' convert_from_ckpt gives back all {n} parameters exactly")
    st2 = os.path.join(out_dir, "tiny-sd-v2.safetensors")
    save_file(fp16(sd2), st2, metadata={"format": "pt"})
    write_v2_config(out_dir, unet2, vae2, te2)
    back2 = load_file(st2)
    tok2 = CLIPTokenizer.from_pretrained(os.path.join(rc.TINY_DIR, "tokenizer"), pad_token="!")
    sched2 = DDIMScheduler.from_config({k: v for k, v in V2_SCHEDULER_CONFIG.items() if not k.startswith("_")})
    u2, v2, t2 = components_from_ldm(back2, dict(unet2.config), dict(vae2.config), te2.config, True, tmp)
    img2, emb2, ids2 = run_pipeline(u2, v2, t2, tok2, sched2)
    assert int(ids2[1, -1]) == 0, "SD 2.x pads with '!' (id 0)"

    rc.save_tensors(os.path.join(out_dir, "expected.safetensors"), {
        "v1_fp16.image_uint8": img1, "v1_fp16.prompt_embeds": emb1, "v1_fp16.input_ids": ids1,
        "v2.image_uint8": img2, "v2.prompt_embeds": emb2, "v2.input_ids": ids2,
    })
    rc.write_json(os.path.join(out_dir, "expected.json"), {
        "runs": {"v1_fp16": {"checkpoint": "tiny-sd-v1.safetensors", "scheduler": rc.SD14_SCHEDULER_CONFIG,
                             "tokenizer": "tests/fixtures/tiny-sd-v1/tokenizer"},
                 "v2": {"checkpoint": "tiny-sd-v2.safetensors", "config": "tiny-sd-v2-config",
                        "scheduler": V2_SCHEDULER_CONFIG,
                        "tokenizer": "tests/fixtures/tiny-sd-v1/tokenizer with pad_token '!'"}},
        "params": RUN,
        "note": "StableDiffusionPipeline, safety checker off, output_type np -> uint8 (x*255).round(); "
                "prompt_embeds = [uncond, cond] as the pipeline concatenates them; input_ids = ids of '' and the prompt.",
    })
    write_manifest(os.path.join(out_dir, "shapes-sd14-full-ema.json"),
                   shape_manifest(SD14_UNET, SD_VAE, SD14_TEXT, openclip=False, ema=True))
    write_manifest(os.path.join(out_dir, "shapes-sd21.json"),
                   shape_manifest(SD21_UNET, dict(SD_VAE, sample_size=768), SD21_TEXT, openclip=True, ema=False))
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(README)
    shutil.rmtree(tmp, ignore_errors=True)
    total = 0
    for root, _, files in sorted(os.walk(out_dir)):
        for name in sorted(files):
            p = os.path.join(root, name)
            total += os.path.getsize(p)
            print(f"{os.path.relpath(p, out_dir):50s} {os.path.getsize(p):>10d}")
    print(f"total {total} bytes")
    return 0


README = """# tiny-sd-v1-ldm: original single-file (CompVis/LDM layout) checkpoints (test fixture)

Made by `tests/reference/make_ldm_checkpoint.py` (deterministic; pinned stack in
`tests/reference/requirements.txt`); regenerate with `tests/reference/regen.sh`. Read by
`tests/unit/test_ldm_checkpoint.cpp` through `src/model/ldm_checkpoint.h`.

- `tiny-sd-v1.ckpt`: **fp32**, `torch.save({"epoch", "global_step", "pytorch-lightning_version", "state_dict"})`
  as Lightning saved `sd-v1-4.ckpt`. The weights of `tests/fixtures/tiny-sd-v1` (text encoder, UNet, VAE
  with its encoder) under the LDM keys (`model.diffusion_model.*`, `first_stage_model.*`,
  `cond_stage_model.transformer.text_model.*`), bit-identical, plus what real checkpoints also carry:
  the 12 DDPM schedule buffers (`betas`, `alphas_cumprod`, ... as `DDPM.register_schedule` computes them
  for linear_start 0.00085, linear_end 0.012, 1000 steps), the CLIP `position_ids` buffer (int64 [1, 77]),
  `model_ema.decay` and `model_ema.num_updates`. VAE mid-block attention q/k/v/proj_out are [C, C, 1, 1]
  1x1 convolutions as in LDM.
- `tiny-sd-v1.safetensors`: the same keys in **fp16** (int tensors stay int): the fp16 rounding of every weight.
- `tiny-sd-v2.safetensors` (**fp16**): a tiny random SD 2.x-style model: OpenCLIP text tower
  (`cond_stage_model.model.*`: fused `attn.in_proj_weight`/`in_proj_bias` [3*32, 32], 3 resblocks of which
  the last is unused (SD 2.x takes the penultimate layer, then `ln_final`), `text_projection`, `logit_scale`),
  hidden 32, 4 heads, intermediate 37, gelu; UNet with linear `proj_in`/`proj_out`, block_out_channels
  (16, 16, 32, 32), layers_per_block 2, heads (2, 2, 4, 4), cross_attention_dim 32, norm groups 8; VAE
  (16, 32, 32, 32), layers_per_block 2, norm groups 8.
- `tiny-sd-v2-config/`: the diffusers `config.json` of each component plus `scheduler/scheduler_config.json`
  (SD 2.1's DDIM v-prediction scheduler): what sdpal's `--config` folder holds for the values shapes cannot
  give (heads, norm groups). No `tokenizer/`: the test adds tiny-sd-v1's with `pad_token` "!" (SD 2.x).
- `expected.safetensors` / `expected.json`: diffusers' StableDiffusionPipeline outputs (token ids of "" and the
  prompt, prompt_embeds [uncond, cond], uint8 image) for `tiny-sd-v1.safetensors` (fp16 weights computed in
  fp32) and `tiny-sd-v2.safetensors`, each loaded back through diffusers' `convert_from_ckpt` functions
  (seed 1234, 8 steps, 128x128, CFG 7.5, safety checker off).

- `shapes-sd14-full-ema.json`, `shapes-sd21.json`: key -> shape of full-size SD v1.4 (with the EMA copies,
  as `sd-v1-4-full-ema.ckpt`) and SD 2.1 (768-v) checkpoints, made on the meta device from those models'
  diffusers configs with the same mapping, with the configs and parameter counts sdpal must infer from them.

Every file is checked when made: diffusers' `convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
`convert_ldm_clip_checkpoint` / `convert_open_clip_checkpoint` (diffusers 0.31) turn the LDM state dict back
into exactly the source parameters (every tensor `torch.equal`, same key sets).
"""

if __name__ == "__main__":
    sys.exit(main())
