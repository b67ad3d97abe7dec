"""Converts the tiny test model's UNet (tests/fixtures/tiny-sd-v1) into a Core ML ML program in Apple's ANE layout,
the form of the `split_einsum_v2` UNets of Apple's ml-stable-diffusion releases, and writes loadable resources folders
and goldens for the C++ Core ML loader.

    OMP_NUM_THREADS=1 /work/venv-coreml-torch/bin/python tests/reference/make_coreml_ane.py [--dump-mil DIR]

Run it after tests/reference/make_coreml_tiny.py and make_coreml_safety_checker.py (it copies their packages and
reads make_coreml_tiny.py's goldens' inputs); regen.sh does. Under another interpreter it re-executes itself with
$SDPAL_COREML_PYTHON when set, else prints that it is skipped and exits 0 (as make_coreml_tiny.py does). Needs
tests/reference/requirements-coreml.txt (torch 2.4.0, coremltools 8.1); no Core ML runtime, nothing is predicted.
CPU only, one thread, about a minute and a half. Deterministic: a rerun reproduces every file byte for byte
(make_coreml_tiny.py's re-serialization).

What Apple's converter does (python_coreml_stable_diffusion/torch2coreml.py, convert_unet; facts read from
apple/ml-stable-diffusion, no code taken from it): the UNet is not diffusers' module but Apple's re-implementation
(python_coreml_stable_diffusion/unet.py), loaded with diffusers' state dict, traced and converted; its
--attention-implementation (ORIGINAL, SPLIT_EINSUM, SPLIT_EINSUM_V2) only changes the UNet's attention, so the
text encoder, VAE decoder / encoder (and safety checker) programs are the same for every variant (Apple's SD 2.1
releases: byte-identical sizes). This script writes its own modules with the same module paths, parameter names
and op sequence, so the program's constants carry Apple's names (`<module path with _>_weight_to_fp16`,
`..._palettized`) and its graph Apple's form:
- every nn.Linear is an nn.Conv2d 1x1 (weights [out, in, 1, 1]; diffusers' [out, in] weights get two trailing
  axes at load) and activations inside the transformer blocks are [B, C, 1, S] (S = H * W; proj_in / proj_out
  run on [B, C, H, W], the sequence is a view of it); encoder_hidden_states comes in as [B, C, 1, 77];
- the time embedding's linear_1 / linear_2 and each resnet's time_emb_proj are 1x1 convs on [B, C, 1, 1];
- LayerNorm is Apple's LayerNormANE: mean and variance over the channel axis of [B, C, 1, S], then
  (normalized + b') * w with b' = b / w (Apple's load hook divides the bias by the weight, since torch's LayerNorm
  computes normalized * w + b); both are [1, C, 1, 1] constants without a module path in the program;
- attention is split einsum: per head h, q[:, hD:(h+1)D] [B, D, 1, Sq] and k^T[..., hD:(h+1)D] [B, Sk, 1, D]
  give einsum("bchq,bkhc->bkhq") * D^-0.5, softmax over axis 1 (the keys), einsum("bkhq,bchk->bchq") with
  v[:, hD:(h+1)D], heads concatenated on axis 1. SPLIT_EINSUM_V2 also cuts each head's query into chunks of
  CHUNK_SIZE positions (concatenated back on axis 3) when the query has at least CHUNK_SIZE positions, and falls
  back to the unchunked form otherwise. Apple's CHUNK_SIZE is 512: at SD's 64 x 64 latents (4096 positions) the
  first level runs 8 chunks, the second (1024) 2, the deeper levels none. This tiny UNet's levels have 64, 16, 4
  and 1 positions, where 512 would chunk nothing; CHUNK_SIZE = 8 here gives the same 8 / 2 / none per level;
- GEGLU's projection is one 1x1 conv whose output is chunked in two on the channel axis;
- the LayerNormANE ops stay unfused: coremltools 8.1 would turn them into layer_norm (see pass_pipeline();
  --fuse-layernorm keeps that fusion, the form a conversion with Apple's script and today's coremltools gives).
Deviations from Apple's modules, so that the program computes diffusers' UNet for this config: GroupNorm groups
are the config's norm_num_groups (8) everywhere (Apple's modules use 32, SD's value, in the resnets of the down /
up blocks and in every SpatialTransformer's norm); the time embedding is diffusers' get_timestep_embedding (Apple's
own copy computes the same).

Norm parameters: make_coreml_tiny.py's seeded random GroupNorm / LayerNorm values (its load_unet(), seed 2), so
the fp16 weights are exactly those of make_coreml_tiny.py's plain unet packages.

Writes
- tests/fixtures/tiny-sd-v1-coreml-ane/<variant>/ for fp16 and palettized6 (--variants adds palettized4 /
  palettized8; not committed, for size): Stable_Diffusion_version_tiny-sd-v1_unet.mlpackage in the ANE layout;
  in palettized6/ (RESOURCES_VARIANTS) also byte copies of tests/fixtures/tiny-sd-v1-coreml/palettized6/'s
  text_encoder, vae_decoder, vae_encoder and safety_checker packages, vocab.json and merges.txt: a complete
  resources folder, as Apple's split_einsum_v2 releases ship the same non-UNet programs as the original ones
  (identical files: no new git objects); README.md;
- tests/goldens/coreml/tiny_model_ane/<variant>.safetensors: the plain goldens' inputs (sample, timestep,
  encoder_hidden_states from tests/goldens/coreml/tiny_model/<variant>.safetensors) and noise_pred of the ORIGINAL
  diffusers UNet2DConditionModel in fp32 with every parameter replaced by the value this program holds (fp16
  consts; decoded constexpr_lut_to_dense LUT[indices]; LayerNorm: weight = w, bias = b' * w of the program's
  fp16 w and b'); tolerances.json, programs.json, README.md.

Interface (as Apple's): sample fp16 [2, 4, 8, 8], timestep fp16 [2], encoder_hidden_states fp16 [2, 32, 1, 77]
-> noise_pred fp32 [2, 4, 8, 8].
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coreml_stack  # noqa: E402

coreml_stack.require("make_coreml_ane.py")

import argparse
import json
import re
import shutil
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import coremltools as ct
from coremltools.converters.mil.converter import mil_convert
from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
from coremltools.converters.mil.mil.passes.graph_pass import PassOption
from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
from diffusers.models.embeddings import get_timestep_embedding
from safetensors.numpy import load_file, save_file

import make_coreml_tiny as tiny  # noqa: E402
from refcommon import REPO, set_torch_deterministic  # noqa: E402

OUT_DIR = os.path.join(REPO, "tests", "fixtures", "tiny-sd-v1-coreml-ane")
GOLDEN_DIR = os.path.join(REPO, "tests", "goldens", "coreml", "tiny_model_ane")
PLAIN_DIR = tiny.OUT_DIR
PLAIN_GOLDEN_DIR = tiny.GOLDEN_DIR
NBITS = {"fp16": None, "palettized4": 4, "palettized6": 6, "palettized8": 8}
DEFAULT_VARIANTS = ("fp16", "palettized6")
CHUNK_SIZE = 8  # query positions per chunk (SPLIT_EINSUM_V2); Apple's 512 scaled to this model, see the docstring
# Variants made complete resources folders (copies of the plain variant's other packages and tokenizer files);
# the others hold the unet package only: the copies cost no git objects but working-tree space.
RESOURCES_VARIANTS = ("palettized6",)
COPIED = ("text_encoder", "vae_decoder", "vae_encoder", "safety_checker")  # those the plain variant has
TOKENIZER_FILES = ("vocab.json", "merges.txt")

torch.set_grad_enabled(False)


# ----------------------------------------------------------------------------------------------------------------
# The UNet in Apple's ANE layout. Module paths and parameter names are diffusers' (and Apple's), so that a
# diffusers state dict loads after ane_state_dict() and the program's constants get Apple's names.

def conv1x1(c_in, c_out, bias=True):
    return nn.Conv2d(c_in, c_out, kernel_size=1, bias=bias)


class LayerNormANE(nn.Module):
    """LayerNorm over the channels of a [B, C, 1, S] tensor. Holds (weight, bias / weight) of a torch LayerNorm
    and computes (normalized + bias) * weight, the order of Apple's LayerNormANE."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        centred = x - x.mean(dim=1, keepdim=True)
        inv_std = ((centred * centred).mean(dim=1, keepdim=True) + self.eps).rsqrt()
        shape = (1, self.channels, 1, 1)
        return (centred * inv_std + self.bias.view(shape)) * self.weight.view(shape)


def split_einsum_attention(q, k, v, heads, chunk):
    """q [B, H*D, 1, Sq], k and v [B, H*D, 1, Sk] -> [B, H*D, 1, Sq], one head at a time. With chunk > 0 and
    Sq >= chunk, each head's query is processed in Sq // chunk pieces (SPLIT_EINSUM_V2). Staged like Apple's
    implementation (all slices, then all scores, all softmaxes, all products), which fixes the program's op order."""
    d = q.shape[1] // heads
    pieces = q.shape[3] // chunk if chunk else 0
    q_heads = [q[:, h * d:(h + 1) * d, :, :] for h in range(heads)]
    if pieces:
        q_heads = [[qh[..., i * chunk:(i + 1) * chunk] for i in range(pieces)] for qh in q_heads]
    else:
        q_heads = [[qh] for qh in q_heads]
    k_t = k.transpose(1, 3)  # [B, Sk, 1, H*D]
    k_heads = [k_t[:, :, :, h * d:(h + 1) * d] for h in range(heads)]
    v_heads = [v[:, h * d:(h + 1) * d, :, :] for h in range(heads)]
    scores = [[torch.einsum("bchq,bkhc->bkhq", [qc, kh]) * (d ** -0.5) for qc in qh]
              for qh, kh in zip(q_heads, k_heads)]  # [B, Sk, 1, chunk]: keys on axis 1
    probs = [[s.softmax(dim=1) for s in sh] for sh in scores]
    out = [[torch.einsum("bkhq,bchk->bchq", p, vh) for p in ph] for ph, vh in zip(probs, v_heads)]
    if pieces:
        return torch.cat([torch.cat(oh, dim=3) for oh in out], dim=1)
    return torch.cat([oh[0] for oh in out], dim=1)


class Attention(nn.Module):
    def __init__(self, dim, heads, context_dim=None, chunk=CHUNK_SIZE):
        super().__init__()
        self.heads, self.chunk = heads, chunk
        self.to_q = conv1x1(dim, dim, bias=False)
        self.to_k = conv1x1(context_dim or dim, dim, bias=False)
        self.to_v = conv1x1(context_dim or dim, dim, bias=False)
        self.to_out = nn.Sequential(conv1x1(dim, dim))

    def forward(self, x, context=None):
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        return self.to_out(split_einsum_attention(q, k, v, self.heads, self.chunk))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = conv1x1(dim, 2 * inner)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Identity(), conv1x1(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, context_dim):
        super().__init__()
        self.norm1, self.attn1 = LayerNormANE(dim), Attention(dim, heads)
        self.norm2, self.attn2 = LayerNormANE(dim), Attention(dim, heads, context_dim)
        self.norm3, self.ff = LayerNormANE(dim), FeedForward(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, channels, heads, context_dim, groups, depth=1):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = conv1x1(channels, channels)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(channels, heads, context_dim) for _ in range(depth)])
        self.proj_out = conv1x1(channels, channels)

    def forward(self, x, context):
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x)).view(b, c, 1, h * w)
        for block in self.transformer_blocks:
            y = block(y, context)
        return self.proj_out(y.view(b, c, h, w)) + x


class ResnetBlock(nn.Module):
    def __init__(self, c_in, c_out, temb_channels, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=eps)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_emb_proj = conv1x1(temb_channels, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=eps)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.conv_shortcut = conv1x1(c_in, c_out) if c_in != c_out else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))  # temb [B, T, 1, 1]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    """A down or up block: resnets, each followed by a transformer when `attention`, then a resampler.
    Up blocks first concatenate the skip connection on the channel axis."""

    def __init__(self, resnet_channels, out_channels, temb, attention, heads, cfg, resample):
        super().__init__()
        groups, eps = cfg.norm_num_groups, cfg.norm_eps
        self.resnets = nn.ModuleList([ResnetBlock(c, out_channels, temb, groups, eps) for c in resnet_channels])
        if attention:
            self.attentions = nn.ModuleList([
                SpatialTransformer(out_channels, heads, cfg.cross_attention_dim, groups,
                                   cfg.transformer_layers_per_block)
                for _ in resnet_channels])
        else:
            self.attentions = None
        if resample == "down":
            self.downsamplers = nn.ModuleList([Downsample(out_channels)])
        elif resample == "up":
            self.upsamplers = nn.ModuleList([Upsample(out_channels)])

    def down(self, x, temb, context):
        skips = ()
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
            skips += (x,)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
            skips += (x,)
        return x, skips

    def up(self, x, skips, temb, context):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips[-1]], dim=1), temb)
            skips = skips[:-1]
            if self.attentions is not None:
                x = self.attentions[i](x, context)
        if hasattr(self, "upsamplers"):
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    def __init__(self, channels, temb, heads, cfg):
        super().__init__()
        groups, eps = cfg.norm_num_groups, cfg.norm_eps
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, temb, groups, eps) for _ in range(2)])
        self.attentions = nn.ModuleList([
            SpatialTransformer(channels, heads, cfg.cross_attention_dim, groups, cfg.transformer_layers_per_block)])

    def forward(self, x, temb, context):
        x = self.resnets[0](x, temb)
        return self.resnets[1](self.attentions[0](x, context), temb)


class TimestepEmbedding(nn.Module):
    def __init__(self, c_in, dim):
        super().__init__()
        self.linear_1, self.linear_2 = conv1x1(c_in, dim), conv1x1(dim, dim)

    def forward(self, t_emb):
        x = t_emb.unsqueeze(-1).unsqueeze(-1)  # [B, C] -> [B, C, 1, 1]
        return self.linear_2(F.silu(self.linear_1(x)))


class AneUNet(nn.Module):
    """forward(sample [B, 4, H, W], timestep [B], encoder_hidden_states [B, C, 1, S]) -> noise_pred."""

    def __init__(self, cfg):
        super().__init__()
        check_supported(cfg)
        ch = list(cfg.block_out_channels)
        heads = cfg.attention_head_dim  # diffusers' SD v1 configs give the head count under this name
        heads = list(heads) if isinstance(heads, (list, tuple)) else [heads] * len(ch)
        temb = 4 * ch[0]
        self.cfg = cfg
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.down_blocks = nn.ModuleList()
        for i, kind in enumerate(cfg.down_block_types):
            c_in = ch[max(i - 1, 0)]
            resnets = [c_in] + [ch[i]] * (cfg.layers_per_block - 1)
            self.down_blocks.append(Block(resnets, ch[i], temb, kind == "CrossAttnDownBlock2D", heads[i], cfg,
                                          "down" if i < len(ch) - 1 else None))
        self.mid_block = MidBlock(ch[-1], temb, heads[-1], cfg)
        rch, rheads = ch[::-1], heads[::-1]
        self.up_blocks = nn.ModuleList()
        for i, kind in enumerate(cfg.up_block_types):
            prev, out, skip_in = rch[max(i - 1, 0)], rch[i], rch[min(i + 1, len(ch) - 1)]
            n = cfg.layers_per_block + 1
            resnets = [(prev if j == 0 else out) + (skip_in if j == n - 1 else out) for j in range(n)]
            self.up_blocks.append(Block(resnets, out, temb, kind == "CrossAttnUpBlock2D", rheads[i], cfg,
                                        "up" if i < len(ch) - 1 else None))
        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, ch[0], eps=cfg.norm_eps)
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        t_emb = get_timestep_embedding(timestep, self.cfg.block_out_channels[0],
                                       flip_sin_to_cos=self.cfg.flip_sin_to_cos,
                                       downscale_freq_shift=self.cfg.freq_shift)
        temb = self.time_embedding(t_emb)
        x = self.conv_in(sample)
        skips = (x,)
        for block in self.down_blocks:
            x, s = block.down(x, temb, encoder_hidden_states)
            skips += s
        x = self.mid_block(x, temb, encoder_hidden_states)
        for block in self.up_blocks:
            n = len(block.resnets)
            x = block.up(x, skips[-n:], temb, encoder_hidden_states)
            skips = skips[:-n]
        return self.conv_out(F.silu(self.conv_norm_out(x)))


def check_supported(cfg):
    expect = {"act_fn": "silu", "center_input_sample": False, "class_embed_type": None, "addition_embed_type": None,
              "use_linear_projection": False, "only_cross_attention": False, "upcast_attention": False,
              "resnet_time_scale_shift": "default", "mid_block_type": "UNetMidBlock2DCrossAttn",
              "time_embedding_type": "positional", "transformer_layers_per_block": 1, "num_attention_heads": None,
              "mid_block_scale_factor": 1, "downsample_padding": 1, "dual_cross_attention": False}
    for k, v in expect.items():
        if cfg.get(k, v) != v:
            raise SystemExit(f"unet config {k} = {cfg.get(k)}: this script handles {v} only")


def ane_state_dict(diffusers_sd, ane):
    """diffusers' UNet state dict in the ANE modules' form: linear weights [out, in] -> [out, in, 1, 1]; each
    LayerNorm's bias -> bias / weight."""
    sd = {}
    shapes = {k: v.shape for k, v in ane.state_dict().items()}
    for k, v in diffusers_sd.items():
        if k not in shapes:
            raise SystemExit(f"diffusers parameter {k} has no place in the ANE UNet")
        sd[k] = v.reshape(shapes[k]) if v.dim() == 2 and len(shapes[k]) == 4 else v
    for name, mod in ane.named_modules():
        if isinstance(mod, LayerNormANE):
            sd[name + ".bias"] = diffusers_sd[name + ".bias"] / diffusers_sd[name + ".weight"]
    return sd


def diffusers_state_dict(ane_sd, ane, diffusers_sd, ln_bias_scaled=True):
    """The inverse of ane_state_dict: shapes back to diffusers', LayerNorm bias = bias * weight (unless the
    biases are diffusers' already: ln_bias_scaled False)."""
    sd = {}
    for k, v in ane_sd.items():
        sd[k] = v.reshape(diffusers_sd[k].shape)
    for name, mod in ane.named_modules():
        if isinstance(mod, LayerNormANE) and ln_bias_scaled:
            sd[name + ".bias"] = ane_sd[name + ".bias"] * ane_sd[name + ".weight"]
    return sd


# ----------------------------------------------------------------------------------------------------------------
# Conversion

def pass_pipeline(fuse_layernorm):
    """coremltools' default passes, less the LayerNormANE fusion unless `fuse_layernorm`. coremltools 8.1's
    fuse_layernorm_or_instancenorm (its pattern 5) turns LayerNormANE into layer_norm(axes=[1], gamma = w,
    beta = b' * w); the published split_einsum_v2 programs were converted with coremltools 7.0b1 (their
    metadata), before that pattern, and keep the op sequence. That pass fuses nothing else in this UNet."""
    p = ct.PassPipeline.DEFAULT
    if not fuse_layernorm:
        p.remove_passes(["common::fuse_layernorm_or_instancenorm"])
    return p


def palettize(m, nbits, fuse_layernorm):
    """make_coreml_tiny.palettize (coremltools' palettize_weights, Apple's k-means settings) rebuilding the
    program with pass_pipeline(fuse_layernorm): palettize_weights re-runs the default passes, which would fuse
    the LayerNormANE ops at this point."""
    if fuse_layernorm:
        return tiny.palettize(m, nbits)
    spec = m.get_spec()
    prog = milproto_load(model_spec=spec, specification_version=spec.specificationVersion,
                         file_weights_dir=m.weights_dir)
    palettizer = PASS_REGISTRY["compression::palettize_weights"]
    palettizer.set_options([PassOption("config", tiny.palettize_config(nbits)), PassOption("joint_compression", False)])
    palettizer.apply(prog)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mil_convert(prog, convert_to="mlprogram", convert_from="milinternal",
                           specification_version=spec.specificationVersion, compute_units=m.compute_unit,
                           model_description=spec.description, skip_model_load=True,
                           pass_pipeline=pass_pipeline(False))


def convert_unet(fuse_layernorm=False):
    """(fp16 MLModel, ANE module, diffusers UNet, max |ANE - diffusers| in fp32), after checking that the ANE
    module computes diffusers' UNet."""
    ref = tiny.load_unet()  # make_coreml_tiny.py's norm randomization (seed 2)
    ane = AneUNet(ref.config).eval()
    missing = ane.load_state_dict(ane_state_dict(ref.state_dict(), ane), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    cross = ref.config.cross_attention_dim
    ehs = torch.randn((2, 77, cross), generator=torch.Generator().manual_seed(0))
    x = torch.randn((2, ref.config.in_channels, tiny.LATENT, tiny.LATENT), generator=torch.Generator().manual_seed(1))
    t = torch.tensor([tiny.TIMESTEP, tiny.TIMESTEP])
    apple_ehs = ehs.transpose(1, 2).unsqueeze(2)
    expect = ref(x, t, ehs, return_dict=False)[0]
    got = ane(x, t, apple_ehs)
    fp32_diff = (got - expect).abs().max().item()
    tiny.check_close("ANE unet", got, expect, tol=1e-5)
    traced = torch.jit.trace(ane, (x, t, apple_ehs))
    m = tiny.convert(traced, [("sample", tuple(x.shape), np.float16), ("timestep", (2,), np.float16),
                              ("encoder_hidden_states", tuple(apple_ehs.shape), np.float16)], ["noise_pred"],
                     pass_pipeline=pass_pipeline(fuse_layernorm))
    tiny.set_metadata(
        m, {"sample": "The low resolution latent feature maps being denoised through reverse diffusion",
            "timestep": "A value emitted by the associated scheduler object to condition the model on a given "
                        "noise schedule",
            "encoder_hidden_states": "Output embeddings from the associated text_encoder model to condition to "
                                     "generated image on text. A maximum of 77 tokens (~40 words) are allowed. "
                                     "Longer text is truncated. Shorter text does not reduce computation."},
        {"noise_pred": "Same shape and dtype as the `sample` input. The predicted noise to facilitate the reverse "
                       "diffusion (denoising) process"})
    return m, ane, ref, fp32_diff


def dequantized_unet(prog, ane, ref, fused_layernorm):
    """diffusers' UNet state dict holding the values the program holds, and how each parameter was found."""
    ane_sd = ane.state_dict()
    if fused_layernorm:  # layer_norm's beta is fp16(b' * w), computed by the fusion in fp32
        for name, mod in ane.named_modules():
            if isinstance(mod, LayerNormANE):
                ane_sd[name + ".bias"] = mod.bias * mod.weight
    sd, info = tiny.dequantized_state_dict(prog, {k: k for k in ane_sd}, ane_sd, "unet")
    # Parameters found by value must be the LayerNormANE pairs and the GroupNorms (batch_norm gamma / beta).
    norms = {n for n, m in ane.named_modules() if isinstance(m, (LayerNormANE, nn.GroupNorm))}
    stray = [k for k, _ in info["anonymous_fp16"] if k.rsplit(".", 1)[0] not in norms]
    if stray or info["identity_removed"]:
        raise SystemExit(f"unexpected unnamed parameters: {stray} {info['identity_removed']}")
    return diffusers_state_dict(sd, ane, ref.state_dict(), not fused_layernorm), info


def run_unet(sd, inputs):
    unet = tiny.load_unet()
    if sd is not None:
        unet.load_state_dict(sd)
    ehs = torch.from_numpy(inputs["encoder_hidden_states"]).squeeze(2).transpose(1, 2)  # [B, S, C]
    return unet(torch.from_numpy(inputs["sample"]), torch.from_numpy(inputs["timestep"]), ehs,
                return_dict=False)[0].numpy()


def attention_facts(prog):
    """Counts of the split-einsum ops, to check the form and report it."""
    hist = tiny.op_histogram(prog)
    return {k: hist.get(k, 0) for k in ("einsum", "softmax", "slice_by_index", "concat", "transpose", "conv",
                                         "linear", "matmul", "layer_norm", "rsqrt", "batch_norm",
                                         "constexpr_lut_to_dense")}


def check_form(facts, fused_layernorm):
    """The program must have the ANE form: no linear / matmul (nor layer_norm), attention as einsums."""
    if facts["linear"] or facts["matmul"] or (facts["layer_norm"] and not fused_layernorm):
        raise SystemExit(f"program is not in the ANE layout: {facts}")
    if not facts["einsum"] or facts["einsum"] != 2 * facts["softmax"]:
        raise SystemExit(f"unexpected attention ops: {facts}")


APPLE_UNET_MIL = os.path.join(REPO, "..", "shared", "fixtures", "coreml", "sd21-base-palettized", "split_einsum_v2",
                              "compiled", "Unet.mlmodelc", "model.mil")


def compare_with_apple(prog, palettized):
    """Op types and einsum equations against Apple's published split_einsum_v2 UNet (SD 2.1-base, 6-bit), when the
    shared fixture is there. Returns a line for the log."""
    if not os.path.exists(APPLE_UNET_MIL):
        return f"(no {APPLE_UNET_MIL}: not compared with Apple's program)"
    with open(APPLE_UNET_MIL) as f:
        text = f.read()
    apple_ops = set(re.findall(r"= ([a-z_0-9]+)\(", text)) - {"const", ""}
    apple_eq = set(re.findall(r'\("(b[a-z]+,b[a-z]+->b[a-z]+)"\)', text))
    ops = {op.op_type for op in prog.functions["main"].operations} - {"const"}
    eq = {op.equation.val for op in prog.functions["main"].operations if op.op_type == "einsum"}
    if not palettized:
        ops.add("constexpr_lut_to_dense")
    if ops != apple_ops or eq != apple_eq:
        raise SystemExit(f"not the form of Apple's split_einsum_v2 UNet: op types only here {sorted(ops - apple_ops)}, "
                         f"only there {sorted(apple_ops - ops)}; einsums {sorted(eq)} vs {sorted(apple_eq)}")
    return f"same {len(ops)} op types and einsum equations {sorted(eq)} as Apple's split_einsum_v2 UNet"


def compare_with_plain(prog, plain_pkg):
    """Named weights (module paths) of this program against the plain program's: (equal, [differing])."""
    mine = {tiny.base_name(k): v for k, (_, v) in tiny.program_weights(prog).items()}
    theirs = {tiny.base_name(k): v for k, (_, v) in tiny.program_weights(tiny.load_program(plain_pkg)).items()}
    equal, differ = 0, []
    for k, v in mine.items():
        if k in theirs and k.endswith(("_weight", "_bias")):
            if np.array_equal(np.asarray(v).reshape(-1), np.asarray(theirs[k]).reshape(-1)):
                equal += 1
            else:
                differ.append(k)
    return equal, differ


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_DIR)
    ap.add_argument("--goldens", default=GOLDEN_DIR)
    ap.add_argument("--plain", default=PLAIN_DIR, help="make_coreml_tiny.py's fixture folder (packages copied)")
    ap.add_argument("--plain-goldens", default=PLAIN_GOLDEN_DIR, help="make_coreml_tiny.py's goldens (inputs read)")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help="comma-separated, of " + ", ".join(NBITS) + " (each needs the plain variant folder)")
    ap.add_argument("--fuse-layernorm", action="store_true",
                    help="keep coremltools 8.1's LayerNormANE -> layer_norm fusion (not the published form; "
                         "use with --out / --goldens elsewhere)")
    ap.add_argument("--dump-mil", default=None, help="also write each program's MIL text under this folder")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in NBITS:
            raise SystemExit(f"unknown variant {v}")
        if not os.path.isdir(os.path.join(args.plain, v)):
            raise SystemExit(f"{os.path.join(args.plain, v)} missing: run tests/reference/make_coreml_tiny.py first")
    set_torch_deterministic(1)

    fp16_model, ane, ref, fp32_diff = convert_unet(args.fuse_layernorm)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.goldens, exist_ok=True)
    report = {"chunk_size": CHUNK_SIZE, "ane_vs_diffusers_fp32_max_abs_diff": fp32_diff, "variants": {}}
    programs = {}
    for variant in variants:
        nbits = NBITS[variant]
        vdir, pdir = os.path.join(args.out, variant), os.path.join(args.plain, variant)
        os.makedirs(vdir)
        m = fp16_model if nbits is None else palettize(fp16_model, nbits, args.fuse_layernorm)
        pkg = os.path.join(vdir, tiny.package_name("unet"))
        m.save(pkg)
        tiny.make_package_deterministic(pkg)
        if variant in RESOURCES_VARIANTS:
            for comp in COPIED:
                src = os.path.join(pdir, tiny.package_name(comp))
                if os.path.isdir(src):
                    shutil.copytree(src, os.path.join(vdir, tiny.package_name(comp)))
            for f in TOKENIZER_FILES:
                shutil.copyfile(os.path.join(pdir, f), os.path.join(vdir, f))

        prog = tiny.load_program(pkg)
        if args.dump_mil:
            os.makedirs(args.dump_mil, exist_ok=True)
            with open(os.path.join(args.dump_mil, variant + "_unet.mil.txt"), "w") as f:
                f.write(str(prog))
        facts = attention_facts(prog)
        check_form(facts, args.fuse_layernorm)
        apple = compare_with_apple(prog, nbits is not None) if not args.fuse_layernorm else ""
        sd, info = dequantized_unet(prog, ane, ref, args.fuse_layernorm)

        same, differ = compare_with_plain(prog, os.path.join(pdir, tiny.package_name("unet")))
        plain = load_file(os.path.join(args.plain_goldens, variant + ".safetensors"))
        inputs = {k: plain[k] for k in ("sample", "timestep", "encoder_hidden_states")}
        noise_pred = run_unet(sd, inputs)
        fp32_model = run_unet(None, inputs)
        tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        tensors["noise_pred"] = np.ascontiguousarray(noise_pred, dtype=np.float32)
        for op in prog.functions["main"].operations:  # the first palettized weight, decoded, for the loader
            if op.op_type == "constexpr_lut_to_dense":
                tensors[f"weights.unet.{op.outputs[0].name}"] = np.ascontiguousarray(op.materialized_val_inference())
                break
        save_file(tensors, os.path.join(args.goldens, variant + ".safetensors"), metadata={"variant": variant})
        report["variants"][variant] = {
            "nbits": nbits,
            "noise_pred_max_abs": float(np.abs(noise_pred).max()),
            "max_abs_diff_vs_fp32_model": float(np.abs(noise_pred - fp32_model).max()),
            "max_abs_diff_vs_plain_golden": float(np.abs(noise_pred - plain["noise_pred"]).max()),
            "named_weights_equal_to_plain_program": same, "named_weights_differing_from_plain_program": differ,
            "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())},
        }
        fn = prog.functions["main"]
        programs[variant] = {
            "inputs": {k: [str(v.dtype.__name__ if hasattr(v.dtype, "__name__") else v.dtype), list(v.shape)]
                       for k, v in fn.inputs.items()},
            "outputs": [[o.name, list(o.shape)] for o in fn.outputs],
            "ops": tiny.op_histogram(prog),
            "params_named": info["named"], "params_named_lut": info["named_lut"],
            "params_anonymous_fp16": info["anonymous_fp16"],
        }
        print(f"{variant}: {apple}")
        r = report["variants"][variant]
        print(f"{variant}: {facts}; golden vs fp32 model {r['max_abs_diff_vs_fp32_model']:.3g}, "
              f"vs plain golden {r['max_abs_diff_vs_plain_golden']:.3g}")
    for name, obj in (("tolerances.json", report), ("programs.json", programs)):
        with open(os.path.join(args.goldens, name), "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.write("\n")
    write_golden_readme(args.goldens, report, programs)
    write_fixture_readme(args.out, variants, programs)
    total = 0
    for root, _, files in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    unet_bytes = {v: dir_bytes(os.path.join(args.out, v, tiny.package_name("unet"))) for v in variants}
    print(f"wrote {args.out} ({total / 1e6:.2f} MB; unet packages {unet_bytes}) and {args.goldens}")


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def write_golden_readme(goldens, report, programs):
    rows = []
    for v, r in report["variants"].items():
        rows.append(f"| {v} | {r['max_abs_diff_vs_fp32_model']:.3g} | {r['max_abs_diff_vs_plain_golden']:.3g} | "
                    f"{r['noise_pred_max_abs']:.3g} |")
    ops = programs[next(iter(programs))]["ops"]
    same = " / ".join(str(r["named_weights_equal_to_plain_program"]) for r in report["variants"].values())
    if any(r["named_weights_differing_from_plain_program"] for r in report["variants"].values()):
        raise SystemExit("named weights differ from the plain programs': " + str(
            {v: r["named_weights_differing_from_plain_program"] for v, r in report["variants"].items()}))
    text = f"""# Core ML goldens for the tiny model's UNet in Apple's ANE layout (tests/fixtures/tiny-sd-v1-coreml-ane)

Made by `tests/reference/make_coreml_ane.py` (see its docstring for the command and the layout; pins in
`tests/reference/requirements-coreml.txt`). Deterministic: a rerun reproduces these files byte for byte.
The UNet is `tests/fixtures/tiny-sd-v1`'s with make_coreml_tiny.py's seeded random GroupNorm / LayerNorm
values, converted from the script's own ANE-layout modules (split einsum attention, SPLIT_EINSUM_V2 with
query chunks of {report['chunk_size']} positions), which agree with diffusers' UNet2DConditionModel in fp32 to
{report['ane_vs_diffusers_fp32_max_abs_diff']:.2g} (checked before tracing).

## `<variant>.safetensors` ({", ".join(report["variants"])})

Inputs, copied from `tests/goldens/coreml/tiny_model/<variant>.safetensors` (fp32 arrays of fp16-exact values):
`sample` [2, 4, 8, 8], `timestep` [2], `encoder_hidden_states` [2, 32, 1, 77] (Apple's layout; that variant's
text encoder output, duplicated).

`noise_pred` [2, 4, 8, 8]: the ORIGINAL diffusers UNet2DConditionModel run in fp32 on CPU with every parameter
replaced by the value this variant's saved program holds: fp16 consts, decoded `constexpr_lut_to_dense`
LUT[indices] (1x1 conv weights [out, in, 1, 1] reshaped to the linear [out, in]), GroupNorm gamma / beta from
`batch_norm`, and for each LayerNorm (LayerNormANE in the program: `(normalized + c1) * c2` with fp16 consts
c1 = b / w, c2 = w) weight = c2, bias = c1 * c2 (fp32 product).

`weights.unet.<const name>` (fp16, palettized variants only): the program's first `constexpr_lut_to_dense`,
decoded by coremltools.

## Tolerances observed (`tolerances.json`)

| variant | vs the fp32 model | vs the plain program's golden | max abs noise_pred |
|---|---|---|---|
{chr(10).join(rows)}

"vs the fp32 model": the same diffusers UNet with the fixture's fp32 weights, same inputs (the effect of the
stored weights alone). "vs the plain program's golden": `tests/goldens/coreml/tiny_model/<variant>.safetensors`'s
`noise_pred`; the two programs hold the same values in every named weight they share ({same} in
{" / ".join(report["variants"])}, `named_weights_equal_to_plain_program`; decoded LUT values for palettized
ones: the k-means gives the same tables on the [out, in, 1, 1] weights) and differ in the LayerNorm biases,
stored here as fp16(b / w) and multiplied back by fp16(w). Running this program in fp32 on its weights should
match `noise_pred` to fp32 rounding noise (and to about 2e-3 with Core ML's fp16 timestep frequencies, as for the
plain programs); fp16 compute adds the fp16 error.

## programs.json

Per variant: inputs, outputs, op type histogram (const ops included; {ops.get("einsum", 0)} einsum,
{ops.get("softmax", 0)} softmax, {ops.get("conv", 0)} conv, no linear / matmul / layer_norm), how many parameters
the program holds under their own name (`params_named`, `params_named_lut`) and those found by value
(`params_anonymous_fp16`: [parameter of the ANE module, const]; GroupNorm gamma / beta and the LayerNormANE pairs).
"""
    with open(os.path.join(goldens, "README.md"), "w") as f:
        f.write(text)


def write_fixture_readme(out, variants, programs):
    folders = []
    for v in variants:
        what = ("a complete resources folder: the ANE unet, byte copies of `../tiny-sd-v1-coreml/" + v + "/`'s "
                "text_encoder, vae_decoder, vae_encoder and safety_checker packages, `vocab.json`, `merges.txt` "
                "(`sdpal generate -m` loads it)" if v in RESOURCES_VARIANTS else "the unet package only")
        nbits = NBITS[v]
        weights = "fp16 weights" if nbits is None else (
            f"{nbits}-bit palettized: `palettize_weights(OpPalettizerConfig(mode=\"kmeans\", nbits={nbits}, "
            "weight_threshold=2048))` as make_coreml_tiny.py (iOS16 `constexpr_lut_to_dense`, one LUT per tensor)")
        folders.append(f"- `{v}/`: {weights}; {what}.")
    ops = programs[variants[0]]["ops"]
    hist = ", ".join(f"{k} {n}" for k, n in sorted(ops.items(), key=lambda kv: -kv[1]) if k != "const")
    text = f"""# tiny-sd-v1-coreml-ane: the tiny test model's UNet in Apple's ANE layout (test fixture)

`tests/fixtures/tiny-sd-v1`'s UNet (with make_coreml_tiny.py's seeded random GroupNorm / LayerNorm values)
converted with coremltools 8.1 to an `.mlpackage` ML program in the form of the `split_einsum_v2` UNets of Apple's
ml-stable-diffusion releases (`torch2coreml.py --attention-implementation SPLIT_EINSUM_V2`):
`convert_to="mlprogram"`, `minimum_deployment_target=iOS16`, `compute_precision=FLOAT16`, fp32 output.
Made by `tests/reference/make_coreml_ane.py` (after `make_coreml_tiny.py` and `make_coreml_safety_checker.py`;
command and the layout's details in its docstring, pins in `tests/reference/requirements-coreml.txt`);
deterministic, byte for byte.
Goldens: `tests/goldens/coreml/tiny_model_ane/`. Apple's converter changes only the UNet for split einsum, so
the other packages are `../tiny-sd-v1-coreml/`'s.

{chr(10).join(folders)}

`Stable_Diffusion_version_tiny-sd-v1_unet.mlpackage`: `sample` fp16 [2, 4, 8, 8], `timestep` fp16 [2],
`encoder_hidden_states` fp16 [2, 32, 1, 77] -> `noise_pred` fp32 [2, 4, 8, 8].

The program has the form of Apple's (compared with the shared fixtures' real
`sd21-base-palettized/split_einsum_v2` Unet model.mil, `../shared/fixtures/coreml/` next to the repository:
the same 25 op types and einsum equations, the script checks these when that file is there; the same constant
naming):
- linear layers are 1x1 `conv`s with weights [out, in, 1, 1] (`..._attn1_to_q_weight_to_fp16`,
  `time_embedding_linear_1_weight_to_fp16`, `..._ff_net_0_proj_weight_to_fp16`, `..._palettized` when palettized);
  transformer activations are [B, C, 1, H*W]; the time embedding runs on [B, C, 1, 1];
- LayerNorm is LayerNormANE: `reduce_mean(axes=[1])`, `sub`, `mul`, `reduce_mean`, `add(eps)`, `rsqrt`, `mul`,
  then `add(c1)`, `mul(c2)` with unnamed [1, C, 1, 1] constants c1 = bias / weight, c2 = weight (`var_N_to_fp16`);
  coremltools 8.1 would fuse this into `layer_norm` (the script removes that pass; Apple's programs were converted
  with coremltools 7.0b1, which did not);
- GroupNorm as in the plain programs (5-D `reshape`, statistics, `batch_norm` with `add_N_gamma_0` / `add_N_beta_0`);
  8 groups, the config's (Apple's modules assume SD's 32);
- split einsum attention, 8 heads: per head `slice_by_index` of q ([2, D, 1, S]), of the transposed k
  ([2, S_k, 1, D]) and of v, `einsum("bkhc,bchq->bkhq")` (as coremltools orders the operands), `mul(D^-0.5)`,
  `softmax(axis=1)`, `einsum("bchk,bkhq->bchq")`, `concat(axis=1)`; SPLIT_EINSUM_V2 query chunks of 8 positions
  (Apple's 512 scaled down: 8 chunks at 8 x 8, 2 at 4 x 4, none deeper, as SD's 64 x 64 latents get with 512),
  joined by `concat(axis=3)`;
- GEGLU: one 1x1 conv, `split` in two on axis 1, `gelu`, `mul`.
Op counts: {hist}.

License: same as `tests/fixtures/tiny-sd-v1` (random weights made by this project's scripts);
`vocab.json` / `merges.txt` are OpenAI's CLIP BPE files (MIT, `tests/fixtures/tiny-sd-v1/tokenizer/LICENSE`).
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
