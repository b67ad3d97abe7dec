#!/usr/bin/env python3
"""Writes a randomly initialised Stable Diffusion v1.4 pipeline in diffusers layout.

    python scripts/make_sd14_random.py OUT_DIR [--dtype fp16|fp32] [--seed N] [--fp16-variant-names] [--tiny]

Same folders, file names, tensor names and shapes as CompVis/stable-diffusion-v1-4 (configs below are
that repository's config files), so it stands in for the real weights in benchmarks and in shape /
loader tests without downloading anything. Weights follow PyTorch's default initialisers
(Linear/Conv: U(-1/sqrt(fan_in), +1/sqrt(fan_in)) for weight and bias; norms: 1 / 0; embeddings:
N(0, 0.02)), each tensor from its own generator seeded by (seed, tensor name), so the output does not
depend on iteration order. Safety-checker thresholds are 0.2 (random images are not flagged).

Streaming: models are built on the meta device (no storage) only to learn tensor names and shapes;
each tensor is then generated, converted and appended to the .safetensors file one at a time, so
peak memory is about one tensor (the 49408x768 token embedding), not a model.

--tiny shrinks every width/depth (for a quick check of the layout and configs); the default is the
real SD v1.4 size (~1.07 G parameters without the safety checker, ~2.2 GB in fp16).
Needs torch, diffusers, transformers (tests/reference/requirements.txt).
"""
import argparse
import copy
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))

# ---- SD v1.4 configuration files ----------------------------------------------------------------

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.2.2",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

TEXT_ENCODER = {
    "_name_or_path": "openai/clip-vit-large-patch14",
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "torch_dtype": "float32",
    "transformers_version": "4.22.0.dev0",
    "vocab_size": 49408,
}

UNET = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.2.2",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

VAE = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.2.2",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.7.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

_SAFETY_TEXT = {
    "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
    "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
    "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "projection_dim": 768,
    "model_type": "clip_text_model",
}
_SAFETY_VISION = {
    "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
    "patch_size": 14, "image_size": 224, "num_channels": 3, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
    "projection_dim": 768, "model_type": "clip_vision_model",
}
SAFETY_CHECKER = {
    "_name_or_path": "CompVis/stable-diffusion-safety-checker",
    "architectures": ["StableDiffusionSafetyChecker"],
    "initializer_factor": 1.0,
    "logit_scale_init_value": 2.6592,
    "model_type": "clip",
    "projection_dim": 768,
    "text_config": _SAFETY_TEXT,
    "text_config_dict": {k: _SAFETY_TEXT[k] for k in
                         ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers")},
    "torch_dtype": "float32",
    "transformers_version": "4.22.0.dev0",
    "vision_config": _SAFETY_VISION,
    "vision_config_dict": {k: _SAFETY_VISION[k] for k in
                           ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                            "patch_size")},
}

PREPROCESSOR = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}

SAFETY_THRESHOLD = 0.2


def tiny_configs():
    """Same structure, tiny widths (for a quick end-to-end check of this script)."""
    te = dict(TEXT_ENCODER, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
              projection_dim=32)
    unet = dict(UNET, block_out_channels=[32, 32, 64, 64], cross_attention_dim=32, layers_per_block=1,
                norm_num_groups=8, sample_size=16)
    vae = dict(VAE, block_out_channels=[16, 32, 32, 32], layers_per_block=1, norm_num_groups=8, sample_size=128)
    sv = dict(_SAFETY_VISION, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
              patch_size=32, projection_dim=32)
    st = dict(_SAFETY_TEXT, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
              projection_dim=32)
    sc = dict(SAFETY_CHECKER, projection_dim=32, text_config=st, vision_config=sv,
              text_config_dict={k: st[k] for k in SAFETY_CHECKER["text_config_dict"]},
              vision_config_dict={k: sv[k] for k in SAFETY_CHECKER["vision_config_dict"]})
    return te, unet, vae, sc


# ---- streaming safetensors writer ------------------------------------------------------------------

DTYPES = {"fp16": (torch.float16, "F16", 2), "fp32": (torch.float32, "F32", 4)}


def write_safetensors_streaming(path, specs, make_tensor, dtype_key):
    """specs: list of (name, shape). make_tensor(name, shape) -> float32 tensor, called once per tensor,
    in name order; each is converted and written before the next is made."""
    tdtype, st_name, size = DTYPES[dtype_key]
    specs = sorted(specs)
    header, offset = {}, 0
    for name, shape in specs:
        n = int(np.prod(shape)) * size if len(shape) else size
        header[name] = {"dtype": st_name, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, shape in specs:
            t = make_tensor(name, shape).to(tdtype).contiguous()
            assert tuple(t.shape) == tuple(shape), (name, t.shape, shape)
            f.write(t.numpy().tobytes())
            del t
    os.replace(tmp, path)
    return offset


class Initialiser:
    """Per-tensor PyTorch-default-style init, keyed by parameter name."""

    def __init__(self, model, seed, component):
        self.seed = seed
        self.component = component
        self.kind = {}
        for mname, mod in model.named_modules():
            for pname, p in mod.named_parameters(recurse=False):
                full = f"{mname}.{pname}" if mname else pname
                self.kind[full] = (type(mod), pname, mod)

    def generator(self, name):
        s = zlib.crc32(f"{self.component}/{name}".encode()) ^ (self.seed * 0x9E3779B1 & 0xFFFFFFFF)
        return torch.Generator().manual_seed(s)

    def __call__(self, name, shape):
        g = self.generator(name)
        mtype, pname, mod = self.kind.get(name, (None, name.rsplit(".", 1)[-1], None))
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            w = mod.weight
            fan_in = int(np.prod(w.shape[1:]))
            bound = 1.0 / np.sqrt(fan_in)
            return (torch.rand(shape, generator=g) * 2 - 1) * bound
        if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            return torch.ones(shape) if pname == "weight" else torch.zeros(shape)
        if isinstance(mod, torch.nn.Embedding):
            return torch.randn(shape, generator=g) * 0.02
        if pname in ("concept_embeds_weights", "special_care_embeds_weights"):
            return torch.full(shape, SAFETY_THRESHOLD)
        if pname in ("concept_embeds", "special_care_embeds"):
            return torch.randn(shape, generator=g)
        if pname == "class_embedding":
            return torch.randn(shape, generator=g) * (shape[0] ** -0.5)
        raise ValueError(f"{self.component}: no initialiser for {name} {list(shape)} ({mtype})")


def meta_specs(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp16-variant-names", action="store_true",
                    help="name fp16 files *.fp16.safetensors (diffusers variant) instead of the plain names")
    ap.add_argument("--tiny", action="store_true", help="tiny widths, same structure (quick check)")
    ap.add_argument("--skip-safety-checker", action="store_true", help="omit safety_checker/ and feature_extractor/")
    args = ap.parse_args()

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from make_clip_vocab import write_tokenizer_files

    te_cfg, unet_cfg, vae_cfg, sc_cfg = (tiny_configs() if args.tiny else
                                         (TEXT_ENCODER, UNET, VAE, SAFETY_CHECKER))
    te_cfg, unet_cfg, vae_cfg, sc_cfg = (copy.deepcopy(c) for c in (te_cfg, unet_cfg, vae_cfg, sc_cfg))
    torch_dtype_name = "float16" if args.dtype == "fp16" else "float32"
    te_cfg["torch_dtype"] = torch_dtype_name
    sc_cfg["torch_dtype"] = torch_dtype_name
    infix = ".fp16" if (args.fp16_variant_names and args.dtype == "fp16") else ""
    out = os.path.abspath(args.out_dir)
    os.makedirs(out, exist_ok=True)

    def strip(cfg):
        return {k: v for k, v in cfg.items() if not k.startswith("_")}

    components = []
    with torch.device("meta"):
        components.append(("text_encoder", "model", te_cfg, CLIPTextModel(CLIPTextConfig(**strip(te_cfg)))))
        components.append(("unet", "diffusion_pytorch_model", unet_cfg, UNet2DConditionModel(**strip(unet_cfg))))
        components.append(("vae", "diffusion_pytorch_model", vae_cfg, AutoencoderKL(**strip(vae_cfg))))
        if not args.skip_safety_checker:
            clip_cfg = CLIPConfig(text_config=sc_cfg["text_config"], vision_config=sc_cfg["vision_config"],
                                  projection_dim=sc_cfg["projection_dim"])
            components.append(("safety_checker", "model", sc_cfg, StableDiffusionSafetyChecker(clip_cfg)))

    total_params = 0
    for folder, base, cfg, model in components:
        specs = meta_specs(model)
        n_params = sum(int(np.prod(s)) for _, s in specs)
        total_params += n_params
        path = os.path.join(out, folder, f"{base}{infix}.safetensors")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        nbytes = write_safetensors_streaming(path, specs, Initialiser(model, args.seed, folder), args.dtype)
        write_json(os.path.join(out, folder, "config.json"), cfg)
        print(f"{folder}: {len(specs)} tensors, {n_params / 1e6:.1f} M parameters, {nbytes / 2**20:.0f} MiB")
        del model

    write_json(os.path.join(out, "scheduler", "scheduler_config.json"), SCHEDULER)
    mi = dict(MODEL_INDEX)
    if args.skip_safety_checker:
        mi["safety_checker"] = [None, None]
        mi["feature_extractor"] = [None, None]
        mi["requires_safety_checker"] = False
    else:
        write_json(os.path.join(out, "feature_extractor", "preprocessor_config.json"), PREPROCESSOR)
    write_json(os.path.join(out, "model_index.json"), mi)

    tok_dir = os.path.join(out, "tokenizer")
    vocab, merges = write_tokenizer_files(tok_dir, with_license=True)
    CLIPTokenizer(vocab, merges, model_max_length=77, pad_token="<|endoftext|>").save_pretrained(tok_dir)
    write_tokenizer_files(tok_dir, with_license=True)  # keep the canonical compact vocab.json / merges.txt
    print(f"wrote {out}: {total_params / 1e6:.1f} M parameters, dtype {args.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
