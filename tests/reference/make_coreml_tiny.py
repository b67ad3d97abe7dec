"""Converts the tiny random test model tests/fixtures/tiny-sd-v1 into Core ML ML programs (.mlpackage) the way
Apple's ml-stable-diffusion converter (python_coreml_stable_diffusion/torch2coreml.py, ORIGINAL attention) lays
out its packages/ output, and writes goldens for the C++ Core ML loader.

    python3 -m venv /work/venv-coreml-torch
    /work/venv-coreml-torch/bin/pip install -r tests/reference/requirements-coreml.txt
    OMP_NUM_THREADS=1 /work/venv-coreml-torch/bin/python tests/reference/make_coreml_tiny.py [--dump-mil DIR]

Under another interpreter (regen.sh runs every make_*.py with the reference stack, which has no coremltools) it
re-executes itself with $SDPAL_COREML_PYTHON when set, else prints that it is skipped and exits 0.

(coremltools converts and saves ML programs on Linux; no Core ML runtime is used, nothing is predicted.)
CPU only, one thread, about a minute. Deterministic: a rerun reproduces every file byte for byte (each package's
model.mlmodel is re-serialized with deterministic=True and its Manifest.json item ids are uuid5 of the item path
instead of coremltools' random uuid4).

Writes
- tests/fixtures/tiny-sd-v1-coreml/<variant>/ for the variants fp16, palettized4, palettized6, palettized8:
  Stable_Diffusion_version_tiny-sd-v1_{text_encoder,unet,vae_decoder,vae_encoder}.mlpackage, vocab.json,
  merges.txt (the text encoder only in fp16/ and palettized6/, see TEXT_ENCODER_VARIANTS: its 49408 x 32
  token embedding is never palettized, as in Apple's converter, and would dominate the folder's size);
- tests/goldens/coreml/tiny_model/<variant>.safetensors: fixed inputs and the outputs of the ORIGINAL
  transformers/diffusers modules run in fp32 with every weight replaced by the value that variant's saved
  program holds (fp16 consts, or the decoded constexpr_lut_to_dense LUT[indices]);
  tolerances.json / README.md: max abs differences of those outputs against the fp32 model.

Interfaces (as in Apple's programs; checked against Apple's SD 2.1 export in ../shared/fixtures/coreml/):
- text_encoder: input_ids fp32 [1, 77] -> last_hidden_state fp32 [1, 77, C], pooled_outputs fp32 [1, C]
- unet: sample fp16 [2, 4, 8, 8], timestep fp16 [2], encoder_hidden_states fp16 [2, C, 1, 77] -> noise_pred fp32
- vae_decoder: z fp16 [1, 4, 8, 8] -> image fp32 [1, 3, 64, 64] (post_quant_conv then decoder, no scaling)
- vae_encoder: z fp16 [1, 3, 64, 64] -> latent fp32 [1, 8, 8, 8] (encoder then quant_conv: mean and logvar)
Outputs are fp32 because Apple's converter passes outputs=[ct.TensorType(name, dtype=np.float32)].
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coreml_stack  # noqa: E402

coreml_stack.require("make_coreml_tiny.py")

import argparse
import contextlib
import hashlib
import json
import shutil
import uuid
import warnings

import numpy as np
import torch
import torch.nn as nn

import coremltools as ct
from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
from coremltools.proto import Model_pb2
from safetensors.numpy import save_file
from transformers import CLIPTextModel, CLIPTokenizer
from transformers.models.clip import modeling_clip
from diffusers import AutoencoderKL, UNet2DConditionModel

from refcommon import PROMPT, REPO, SEED, TINY_DIR, set_torch_deterministic  # noqa: E402

OUT_DIR = os.path.join(REPO, "tests", "fixtures", "tiny-sd-v1-coreml")
GOLDEN_DIR = os.path.join(REPO, "tests", "goldens", "coreml", "tiny_model")
MODEL_VERSION = "tiny-sd-v1"
LATENT = 8  # latent H = W: 64 x 64 images
VARIANTS = [("fp16", None), ("palettized4", 4), ("palettized6", 6), ("palettized8", 8)]
TEXT_ENCODER_VARIANTS = ("fp16", "palettized6")
TIMESTEP = 500.0
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
DESCRIPTION = ("Stable Diffusion generates images conditioned on text and/or other images as input through the "
               "diffusion process. Please refer to https://arxiv.org/abs/2112.10752 for details.")
LICENSE = "Same as tests/fixtures/tiny-sd-v1 (random weights made by tests/reference/make_tiny_model.py)"

torch.set_grad_enabled(False)


def package_name(component):
    return f"Stable_Diffusion_version_{MODEL_VERSION}_{component}.mlpackage".replace("/", "_")


# ----------------------------------------------------------------------------------------------------------------
# Wrappers, as in torch2coreml.py

def patched_causal_mask(input_ids_shape, dtype, device, past_key_values_length=0):
    """torch2coreml.py's patched_make_causal_mask: -1e4 instead of finfo(dtype).min (which is -inf in fp16)."""
    bsz, tgt_len = input_ids_shape
    mask = torch.full((tgt_len, tgt_len), torch.tensor(-1e4, device=device), device=device)
    mask_cond = torch.arange(mask.size(-1), device=device)
    mask.masked_fill_(mask_cond < (mask_cond + 1).view(mask.size(-1), 1), 0)
    mask = mask.to(dtype)
    return mask[None, None, :, :].expand(bsz, 1, tgt_len, tgt_len + past_key_values_length)


@contextlib.contextmanager
def apple_causal_mask():
    saved = modeling_clip._create_4d_causal_attention_mask
    modeling_clip._create_4d_causal_attention_mask = patched_causal_mask
    try:
        yield
    finally:
        modeling_clip._create_4d_causal_attention_mask = saved


class TextEncoder(nn.Module):
    """torch2coreml.py's TextEncoder: the whole CLIPTextModel as attribute `text_encoder`."""

    def __init__(self, text_encoder):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids):
        return self.text_encoder(input_ids, return_dict=False)


class AppleLayoutUNet(UNet2DConditionModel):
    """The diffusers UNet itself (so constants are named conv_in_weight, down_blocks_0_..., as in Apple's
    programs), taking encoder_hidden_states in Apple's [B, C, 1, S] layout."""

    def forward(self, sample, timestep, encoder_hidden_states):
        encoder_hidden_states = encoder_hidden_states.squeeze(2).transpose(1, 2)  # [B, S, C]
        return UNet2DConditionModel.forward(self, sample, timestep, encoder_hidden_states, return_dict=False)[0]


class LegacyAttentionBlock(nn.Module):
    """diffusers' VAE mid-block Attention (AttnProcessor2_0 semantics, _from_deprecated_attn_block) with the old
    AttentionBlock parameter names of Apple's VAE programs: group_norm, query, key, value, proj_attn. It shares the
    parameter objects of the Attention it replaces."""

    def __init__(self, attn):
        super().__init__()
        assert attn.residual_connection and attn.spatial_norm is None and attn.norm_cross is None
        self.group_norm = attn.group_norm
        self.query, self.key, self.value = attn.to_q, attn.to_k, attn.to_v
        self.proj_attn = attn.to_out[0]
        self.heads = attn.heads
        self.rescale_output_factor = attn.rescale_output_factor

    def forward(self, hidden_states, temb=None):
        assert temb is None
        residual = hidden_states
        b, c, h, w = hidden_states.shape
        x = self.group_norm(hidden_states.view(b, c, h * w)).transpose(1, 2)  # [B, HW, C]
        q, k, v = self.query(x), self.key(x), self.value(x)
        d = q.shape[-1] // self.heads
        q = q.view(b, -1, self.heads, d).transpose(1, 2)
        k = k.view(b, -1, self.heads, d).transpose(1, 2)
        v = v.view(b, -1, self.heads, d).transpose(1, 2)
        scores = torch.matmul(q * (d ** -0.5), k.transpose(-1, -2)).softmax(dim=-1)
        x = torch.matmul(scores, v).transpose(1, 2).reshape(b, -1, self.heads * d)
        x = self.proj_attn(x)
        x = x.transpose(-1, -2).reshape(b, c, h, w)
        return (x + residual) / self.rescale_output_factor


def use_legacy_attention(coder):
    attns = coder.mid_block.attentions
    for i in range(len(attns)):
        attns[i] = LegacyAttentionBlock(attns[i])


class VAEDecoder(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder

    def forward(self, z):
        return self.decoder(self.post_quant_conv(z))


class VAEEncoder(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.quant_conv = vae.quant_conv
        self.encoder = vae.encoder

    def forward(self, z):
        return self.quant_conv(self.encoder(z))


# ----------------------------------------------------------------------------------------------------------------
# Models and inputs

RANDOMIZE_NORMS = True  # --identity-norms turns it off


def maybe_randomize_norms(model, seed):
    """The tiny fixture's GroupNorm / LayerNorm weights are ones and biases zeros (default init), so coremltools
    would drop GroupNorm's affine part altogether. By default they get seeded random values instead (the
    packages are then not the fixture's exact conversion; the goldens use the same values), which gives
    Apple's form: batch_norm with gamma / beta. --identity-norms keeps the fixture's own."""
    if RANDOMIZE_NORMS:
        g = torch.Generator().manual_seed(seed)
        for _, mod in model.named_modules():
            if isinstance(mod, (nn.GroupNorm, nn.LayerNorm)) and mod.weight is not None:
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=g))
    return model.eval()


def load_text_encoder(attn="sdpa"):
    m = CLIPTextModel.from_pretrained(os.path.join(TINY_DIR, "text_encoder"), attn_implementation=attn)
    return maybe_randomize_norms(m, 1)


def load_unet():
    m = UNet2DConditionModel.from_pretrained(os.path.join(TINY_DIR, "unet"), low_cpu_mem_usage=False)
    return maybe_randomize_norms(m, 2)


def load_vae():
    m = AutoencoderKL.from_pretrained(os.path.join(TINY_DIR, "vae"), low_cpu_mem_usage=False)
    return maybe_randomize_norms(m, 3)


def fp16_exact(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def make_inputs():
    tok = CLIPTokenizer.from_pretrained(os.path.join(TINY_DIR, "tokenizer"))
    ids = tok(PROMPT, padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="np").input_ids.astype(np.float32)
    g = torch.Generator().manual_seed(SEED)
    sample = torch.randn((2, 4, LATENT, LATENT), generator=g).numpy()
    z = torch.randn((1, 4, LATENT, LATENT), generator=g).numpy()
    vae_encoder_z = (torch.rand((1, 3, 8 * LATENT, 8 * LATENT), generator=g) * 2 - 1).numpy()
    # The unet and VAE packages take fp16 inputs: keep only fp16-exact values so both sides see the same numbers.
    return {
        "input_ids": ids,
        "sample": fp16_exact(sample),
        "timestep": fp16_exact(np.full((2,), TIMESTEP)),
        "z": fp16_exact(z),
        "vae_encoder_z": fp16_exact(vae_encoder_z),
    }


# ----------------------------------------------------------------------------------------------------------------
# Conversion

def convert(traced, inputs, outputs, pass_pipeline=None):
    """pass_pipeline: coremltools' default when None (make_coreml_ane.py removes a fusion)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.convert(
            traced,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS16,
            inputs=[ct.TensorType(name=n, shape=s, dtype=d) for n, s, d in inputs],
            outputs=[ct.TensorType(name=n, dtype=np.float32) for n in outputs],
            compute_precision=ct.precision.FLOAT16,
            compute_units=ct.ComputeUnit.CPU_ONLY,
            skip_model_load=True,
            pass_pipeline=pass_pipeline,
        )


def set_metadata(m, inputs_desc, outputs_desc):
    m.author = "sdpal test fixture: tiny random model tests/fixtures/tiny-sd-v1"
    m.license = LICENSE
    m.version = MODEL_VERSION
    m.short_description = DESCRIPTION
    for k, v in inputs_desc.items():
        m.input_description[k] = v
    for k, v in outputs_desc.items():
        m.output_description[k] = v


def convert_all():
    """Returns {component: (fp16 MLModel, {traced module's parameter path: original module's parameter key})}.
    Each traced wrapper is first checked against the original module in fp32."""
    out = {}
    te = load_text_encoder("eager")
    emb = te.config.hidden_size
    wrapper = TextEncoder(te).eval()
    ids = torch.randint(te.config.vocab_size, (1, 77), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    with apple_causal_mask():
        check_close("text_encoder wrapper", wrapper(ids)[0], load_text_encoder()(ids, return_dict=False)[0])
        traced = torch.jit.trace(wrapper, (ids,))
    m = convert(traced, [("input_ids", (1, 77), np.float32)], ["last_hidden_state", "pooled_outputs"])
    set_metadata(m, {"input_ids": "The token ids that represent the input text"},
                 {"last_hidden_state": "The token embeddings as encoded by the Transformer model",
                  "pooled_outputs": "The version of the `last_hidden_state` output after pooling"})
    out["text_encoder"] = (m, param_map(wrapper, te))

    unet = load_unet()
    ref = UNet2DConditionModel.forward
    ehs = torch.randn((2, 77, emb), generator=torch.Generator().manual_seed(0))
    x = torch.randn((2, 4, LATENT, LATENT), generator=torch.Generator().manual_seed(1))
    t = torch.tensor([TIMESTEP, TIMESTEP])
    expect = ref(unet, x, t, ehs, return_dict=False)[0]
    unet.__class__ = AppleLayoutUNet
    apple_ehs = ehs.transpose(1, 2).unsqueeze(2)
    check_close("unet wrapper", unet(x, t, apple_ehs), expect)
    traced = torch.jit.trace(unet, (x, t, apple_ehs))
    m = convert(traced, [("sample", tuple(x.shape), np.float16), ("timestep", (2,), np.float16),
                         ("encoder_hidden_states", tuple(apple_ehs.shape), np.float16)], ["noise_pred"])
    set_metadata(m, {"sample": "The low resolution latent feature maps being denoised through reverse diffusion",
                     "timestep": "A value emitted by the associated scheduler object to condition the model on a "
                                 "given noise schedule",
                     "encoder_hidden_states": "Output embeddings from the associated text_encoder model to "
                                              "condition to generated image on text. A maximum of 77 tokens "
                                              "(~40 words) are allowed. Longer text is truncated."},
                 {"noise_pred": "Same shape and dtype as the `sample` input. The predicted noise to facilitate "
                                "the reverse diffusion (denoising) process"})
    out["unet"] = (m, {n: n for n, _ in unet.named_parameters()})

    vae = load_vae()
    z = torch.randn((1, vae.config.latent_channels, LATENT, LATENT), generator=torch.Generator().manual_seed(2))
    expect = vae.decoder(vae.post_quant_conv(z))
    dec = VAEDecoder(vae).eval()
    use_legacy_attention(dec.decoder)
    check_close("vae_decoder wrapper", dec(z), expect)
    traced = torch.jit.trace(dec, (z,))
    m = convert(traced, [("z", tuple(z.shape), np.float16)], ["image"])
    set_metadata(m, {"z": "The denoised latent embeddings from the unet model after the last step of reverse "
                          "diffusion"}, {"image": "Generated image normalized to range [-1, 1]"})
    out["vae_decoder"] = (m, param_map(dec, vae))

    vae = load_vae()
    img = torch.rand((1, 3, 8 * LATENT, 8 * LATENT), generator=torch.Generator().manual_seed(3)) * 2 - 1
    expect = vae.quant_conv(vae.encoder(img))
    enc = VAEEncoder(vae).eval()
    use_legacy_attention(enc.encoder)
    check_close("vae_encoder wrapper", enc(img), expect)
    traced = torch.jit.trace(enc, (img,))
    m = convert(traced, [("z", tuple(img.shape), np.float16)], ["latent"])
    set_metadata(m, {"z": "The input image to base the initial latents on normalized to range [-1, 1]"},
                 {"latent": "The latent embeddings from the unet model from the input image."})
    out["vae_encoder"] = (m, param_map(enc, vae))
    return out


def param_map(wrapper, original):
    """{wrapper parameter path: original module's key}, by parameter identity."""
    orig = {id(p): n for n, p in original.named_parameters()}
    return {n: orig[id(p)] for n, p in wrapper.named_parameters()}


def check_close(what, got, expect, tol=1e-5):
    d = (got - expect).abs().max().item()
    if d > tol:
        raise SystemExit(f"{what}: differs from the original module by {d}")


def palettize_config(nbits):
    op_config = ct.optimize.coreml.OpPalettizerConfig(mode="kmeans", nbits=nbits, weight_threshold=2048)
    # As torch2coreml.py's _quantize_weights: leave the embedding table (gather's x) in fp16.
    return ct.optimize.coreml.OptimizationConfig(global_config=op_config, op_type_configs={"gather": None})


def palettize(m, nbits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.optimize.coreml.palettize_weights(m, config=palettize_config(nbits))


def make_package_deterministic(pkg):
    """coremltools writes protobuf maps in hash order and the Manifest's item ids as random uuid4s."""
    spec_path = os.path.join(pkg, "Data", "com.apple.CoreML", "model.mlmodel")
    spec = Model_pb2.Model()
    with open(spec_path, "rb") as f:
        spec.ParseFromString(f.read())
    with open(spec_path, "wb") as f:
        f.write(spec.SerializeToString(deterministic=True))
    path = os.path.join(pkg, "Manifest.json")
    with open(path) as f:
        man = json.load(f)
    remap = {k: str(uuid.uuid5(uuid.NAMESPACE_URL, "sdpal/" + v["path"])).upper()
             for k, v in man["itemInfoEntries"].items()}
    man["itemInfoEntries"] = {remap[k]: v for k, v in sorted(man["itemInfoEntries"].items(),
                                                               key=lambda kv: remap[kv[0]])}
    man["rootModelIdentifier"] = remap[man["rootModelIdentifier"]]
    with open(path, "w") as f:
        json.dump(man, f, indent=4)
        f.write("\n")


# ----------------------------------------------------------------------------------------------------------------
# Reading the saved programs back

def load_program(pkg):
    m = ct.models.MLModel(pkg, skip_model_load=True)
    spec = m.get_spec()
    return milproto_load(model_spec=spec, specification_version=spec.specificationVersion,
                         file_weights_dir=m.weights_dir)


def program_weights(prog):
    """{output name: (op type, dense value)} for every const / constexpr_lut_to_dense of main."""
    vals = {}
    for op in prog.functions["main"].operations:
        if op.op_type == "const":
            v = op.outputs[0].val
            if isinstance(v, np.ndarray) and v.dtype in (np.float16, np.float32):
                vals[op.outputs[0].name] = ("const", v)
        elif op.op_type == "constexpr_lut_to_dense":
            vals[op.outputs[0].name] = ("lut", op.materialized_val_inference())
    return vals


def base_name(name):
    for suffix in ("_palettized", "_to_fp16"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def dequantized_state_dict(prog, pmap, original_sd, component):
    """The original module's state dict with every parameter replaced by the value the program holds.
    Returns (state dict, info) where info lists how each parameter was found."""
    vals = program_weights(prog)
    by_base = {}
    for name, (kind, v) in vals.items():
        by_base.setdefault(base_name(name), []).append((name, kind, v))
    by_bytes = {}
    for name, (kind, v) in vals.items():
        if kind == "const" and v.dtype == np.float16:
            by_bytes.setdefault(hashlib.sha1(v.tobytes()).hexdigest(), []).append(name)
    special = {}
    if component == "text_encoder":
        special["text_model.embeddings.position_embedding.weight"] = "position_embeddings"
    sd = dict(original_sd)
    info = {"named": 0, "named_lut": 0, "anonymous_fp16": [], "identity_removed": [], "missing": []}
    inv = {v: k for k, v in pmap.items()}
    for key, tensor in original_sd.items():
        if key not in inv:  # buffers, and parameters outside the converted module (the other VAE half)
            continue
        ref16 = tensor.numpy().astype(np.float16)
        cand = by_base.get(special.get(key, inv[key].replace(".", "_")))
        if cand:
            assert len(cand) == 1, (key, [c[0] for c in cand])
            name, kind, v = cand[0]
            v = np.asarray(v).reshape(tensor.shape)
            if kind == "const" and not np.array_equal(v.astype(np.float16), ref16):
                raise SystemExit(f"{component}: {name} is not fp16({key})")
            info["named_lut" if kind == "lut" else "named"] += 1
            sd[key] = torch.from_numpy(v.astype(np.float32))
        else:
            # Not under its own name: either the program holds it under another name (GroupNorm's gamma / beta
            # become batch_norm's add_N_gamma_0 / add_N_beta_0), or coremltools removed it as an identity
            # (a norm's weight of ones: mul by 1; a bias of zeros: add of 0). Either way the value is fp16(param).
            hit = by_bytes.get(hashlib.sha1(ref16.tobytes()).hexdigest())
            if np.all(ref16 == 1) or np.all(ref16 == 0):
                info["identity_removed"].append(key)
            elif hit:
                info["anonymous_fp16"].append((key, hit[0]))
            else:
                info["missing"].append(key)
            sd[key] = torch.from_numpy(ref16.astype(np.float32))
    if info["missing"]:
        raise SystemExit(f"{component}: parameters not found in the program: {info['missing']}")
    return sd, info


def op_histogram(prog):
    hist = {}
    for op in prog.functions["main"].operations:
        hist[op.op_type] = hist.get(op.op_type, 0) + 1
    return dict(sorted(hist.items()))


# ----------------------------------------------------------------------------------------------------------------
# Goldens

def run_models(state_dicts, inputs, ehs_from=None):
    """Runs the original modules in fp32. state_dicts: {component: state dict or None (= fp32 weights)}."""
    res = {}
    if "text_encoder" in state_dicts:
        te = load_text_encoder()
        if state_dicts["text_encoder"] is not None:
            te.load_state_dict(state_dicts["text_encoder"])
        lhs, pooled = te(torch.from_numpy(inputs["input_ids"]).to(torch.int64), return_dict=False)[:2]
        res["last_hidden_state"], res["pooled_outputs"] = lhs.numpy(), pooled.numpy()
    hidden = res["last_hidden_state"] if ehs_from is None else ehs_from
    ehs = fp16_exact(np.concatenate([hidden, hidden], axis=0))  # CFG batch: [2, 77, C]
    res["encoder_hidden_states"] = np.ascontiguousarray(ehs.transpose(0, 2, 1)[:, :, None, :])  # [2, C, 1, 77]
    unet = load_unet()
    if state_dicts["unet"] is not None:
        unet.load_state_dict(state_dicts["unet"])
    res["noise_pred"] = unet(torch.from_numpy(inputs["sample"]), torch.from_numpy(inputs["timestep"]),
                             torch.from_numpy(ehs), return_dict=False)[0].numpy()
    vae = load_vae()
    if state_dicts["vae_decoder"] is not None:
        vae.load_state_dict(state_dicts["vae_decoder"])
    res["image"] = vae.decoder(vae.post_quant_conv(torch.from_numpy(inputs["z"]))).numpy()
    vae = load_vae()
    if state_dicts["vae_encoder"] is not None:
        vae.load_state_dict(state_dicts["vae_encoder"])
    res["latent"] = vae.quant_conv(vae.encoder(torch.from_numpy(inputs["vae_encoder_z"]))).numpy()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_DIR)
    ap.add_argument("--goldens", default=GOLDEN_DIR)
    ap.add_argument("--dump-mil", default=None, help="also write each program's MIL text under this folder")
    ap.add_argument("--identity-norms", action="store_true",
                    help="keep the fixture's identity norm weights (no batch_norm in the programs; use with --out / --goldens elsewhere)")
    args = ap.parse_args()
    global RANDOMIZE_NORMS
    RANDOMIZE_NORMS = not args.identity_norms
    set_torch_deterministic(1)

    converted = convert_all()
    originals = {"text_encoder": load_text_encoder().state_dict(), "unet": load_unet().state_dict()}
    vae_sd = load_vae().state_dict()
    originals["vae_decoder"] = originals["vae_encoder"] = vae_sd

    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.goldens, exist_ok=True)
    inputs = make_inputs()
    ref = run_models({c: None for c in COMPONENTS}, inputs)
    report = {"inputs": {k: list(v.shape) for k, v in inputs.items()}, "variants": {}}
    summary = {}
    fp16_hidden = None
    for variant, nbits in VARIANTS:
        vdir = os.path.join(args.out, variant)
        os.makedirs(vdir)
        for f in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(TINY_DIR, "tokenizer", f), os.path.join(vdir, f))
        state_dicts, vinfo, weight_checks = {}, {}, {}
        for comp in COMPONENTS:
            if comp == "text_encoder" and variant not in TEXT_ENCODER_VARIANTS:
                continue
            m, pmap = converted[comp]
            if nbits is not None:
                m = palettize(m, nbits)
            pkg = os.path.join(vdir, package_name(comp))
            m.save(pkg)
            make_package_deterministic(pkg)
            prog = load_program(pkg)
            if args.dump_mil:
                d = os.path.join(args.dump_mil, variant)
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, comp + ".mil.txt"), "w") as f:
                    f.write(str(prog))
            sd, info = dequantized_state_dict(prog, pmap, originals[comp], comp)
            for op in prog.functions["main"].operations:  # the first palettized weight, decoded, for the loader
                if op.op_type == "constexpr_lut_to_dense":
                    weight_checks[f"weights.{comp}.{op.outputs[0].name}"] = op.materialized_val_inference()
                    break
            state_dicts[comp] = sd
            fn = prog.functions["main"]
            vinfo[comp] = {
                "inputs": {k: [str(v.dtype.__name__ if hasattr(v.dtype, "__name__") else v.dtype), list(v.shape)]
                           for k, v in fn.inputs.items()},
                "outputs": [[o.name, list(o.shape)] for o in fn.outputs],
                "ops": op_histogram(prog),
                "params_named": info["named"], "params_named_lut": info["named_lut"],
                "params_anonymous_fp16": info["anonymous_fp16"],
                "params_identity_removed": info["identity_removed"],
            }
        if "text_encoder" in state_dicts:
            res = run_models(state_dicts, inputs)
            if variant == "fp16":
                fp16_hidden = res["last_hidden_state"]
        else:
            # No text encoder package in this variant: the unet is conditioned on the fp16 variant's output.
            res = run_models(state_dicts, inputs, ehs_from=fp16_hidden)
        # fp32 model on the same inputs (same encoder_hidden_states) for the tolerance table
        ref_same = run_models({c: None for c in COMPONENTS if c != "text_encoder"}, inputs,
                              ehs_from=res["encoder_hidden_states"][:1, :, 0, :].transpose(0, 2, 1))
        diffs = {}
        for k in ("last_hidden_state", "pooled_outputs", "noise_pred", "image", "latent"):
            if k in res:
                r = ref[k] if k in ("last_hidden_state", "pooled_outputs") else ref_same[k]
                diffs[k] = {"max_abs_diff": float(np.abs(res[k] - r).max()), "max_abs_ref": float(np.abs(r).max())}
        tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        tensors.update({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in res.items()})
        tensors.update({k: np.ascontiguousarray(v) for k, v in weight_checks.items()})  # fp16
        save_file(tensors, os.path.join(args.goldens, variant + ".safetensors"),
                  metadata={"variant": variant})  # one key: safetensors writes metadata in hash order
        report["variants"][variant] = {"nbits": nbits, "max_abs_diff_vs_fp32_model": diffs,
                                       "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())}}
        summary[variant] = vinfo
    with open(os.path.join(args.goldens, "tolerances.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(args.goldens, "programs.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")
    write_readmes(args, report, summary)
    write_fixture_readme(args)
    total = 0
    for root, _, files in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"wrote {args.out} ({total / 1e6:.2f} MB) and {args.goldens}")


def write_readmes(args, report, summary):
    rows = []
    for variant, v in report["variants"].items():
        d = v["max_abs_diff_vs_fp32_model"]
        cells = [f"{d[k]['max_abs_diff']:.3g}" if k in d else "-" for k in
                 ("last_hidden_state", "pooled_outputs", "noise_pred", "image", "latent")]
        rows.append(f"| {variant} | " + " | ".join(cells) + " |")
    refmax = {k: f"{x['max_abs_ref']:.3g}" for k, x in report["variants"]["fp16"]["max_abs_diff_vs_fp32_model"].items()}
    ios = []
    for comp in COMPONENTS:
        i = summary["fp16"][comp]
        ins = ", ".join(f"`{k}` {t} {s}" for k, (t, s) in sorted(i["inputs"].items()))
        outs = ", ".join(f"`{n}` fp32 {s}" for n, s in i["outputs"])
        ios.append(f"- {comp}: {ins} -> {outs}")
    norms = "seeded random values (the default)" if RANDOMIZE_NORMS else "the fixture's own (ones / zeros)"
    text = f"""# Core ML goldens for the tiny model (tests/fixtures/tiny-sd-v1-coreml)

Made by `tests/reference/make_coreml_tiny.py` (see its docstring for the command; pins in
`tests/reference/requirements-coreml.txt`). Deterministic: a rerun reproduces these files byte for byte.
GroupNorm / LayerNorm parameters: {norms}.

## `<variant>.safetensors` (fp16, palettized4, palettized6, palettized8)

Inputs (fp32 arrays; every value fed to an fp16 package input is fp16-exact):
- `input_ids` [1, 77]: CLIPTokenizer ids of "{PROMPT}", padded with the pad token (`<|endoftext|>`, 49407)
  to 77 as diffusers does; fp32 like the text encoder package's input.
- `sample` [2, 4, 8, 8] (torch.randn, seed {SEED}), `timestep` [2] = [{TIMESTEP:g}, {TIMESTEP:g}],
  `encoder_hidden_states` [2, C, 1, 77]: the unet package's input in Apple's layout: this variant's
  `last_hidden_state` (for palettized4 / palettized8, which ship no text encoder: the fp16 variant's), rounded
  to fp16, duplicated (CFG batch) and transposed from diffusers' [2, 77, C].
- `z` [1, 4, 8, 8] (vae_decoder input), `vae_encoder_z` [1, 3, 64, 64] in [-1, 1] (the vae_encoder package's
  input, also named `z` there).

Outputs: the ORIGINAL transformers / diffusers modules (CLIPTextModel; UNet2DConditionModel; AutoencoderKL's
post_quant_conv + decoder; encoder + quant_conv) run in fp32 on CPU with every parameter replaced by the value
this variant's saved program holds (fp16 consts; decoded `constexpr_lut_to_dense` LUT[indices]; parameters the
program does not hold under their own name are fp16-rounded: GroupNorm gamma / beta, or identities coremltools
removed): `last_hidden_state` [1, 77, C], `pooled_outputs` [1, C], `noise_pred` [2, 4, 8, 8],
`image` [1, 3, 64, 64], `latent` [1, 8, 8, 8].

`weights.<component>.<const name>` (fp16, palettized variants only): the first `constexpr_lut_to_dense` of each
program, decoded by coremltools, to check a LUT decoder against.

## Package interfaces

{chr(10).join(ios)}

## Tolerances observed

Max abs difference of each variant's golden against the same modules with the fixture's fp32 weights (same
inputs; for the unet and VAE the same `encoder_hidden_states`), i.e. the effect of the stored weights alone with
fp32 compute (`tolerances.json` has the numbers):

| variant | last_hidden_state | pooled_outputs | noise_pred | image | latent |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Max abs of the fp32 outputs: {", ".join(f"{k} {v}" for k, v in refmax.items())}.
Running these programs in fp32 on the dequantized weights should match the goldens to fp32 rounding noise (the
Apple-layout wrappers that were traced agree with the original modules to < 1e-5, checked by the script); fp16
compute (as Core ML does) adds its own error, of the order of the fp16 row.

## programs.json

Per variant and package: inputs, outputs, op type histogram (const ops included), how many diffusers parameters
the program holds under their own name (`params_named`: `<module path with _>_to_fp16`, `params_named_lut`:
`..._to_fp16_palettized`), those held under another name (`params_anonymous_fp16`: [parameter, const]) and those
coremltools removed as identities (`params_identity_removed`).
"""
    with open(os.path.join(args.goldens, "README.md"), "w") as f:
        f.write(text)


def write_fixture_readme(args):
    norms = ("GroupNorm / LayerNorm weights and biases replaced by seeded random values, the default"
             if RANDOMIZE_NORMS else "the fixture's weights unchanged")
    groupnorm = ("Here the norms have random values, so every GroupNorm ends in batch_norm." if RANDOMIZE_NORMS else
                 "The fixture's GroupNorms have weight 1 and bias 0, so coremltools removed the affine part: these "
                 "programs have no batch_norm (the default, random norms, gives Apple's form).")
    text = f"""# tiny-sd-v1-coreml: the tiny test model as Core ML ML programs (test fixture)

`tests/fixtures/tiny-sd-v1` ({norms}) converted with coremltools to `.mlpackage` ML programs laid out like the
`packages/` output of Apple's ml-stable-diffusion converter (`torch2coreml.py`, ORIGINAL attention):
`convert_to="mlprogram"`, `minimum_deployment_target=iOS16`, `compute_precision=FLOAT16`, fp32 outputs.
Made by `tests/reference/make_coreml_tiny.py` (command in its docstring, pins in
`tests/reference/requirements-coreml.txt`); deterministic, byte for byte. Goldens: `tests/goldens/coreml/tiny_model/`.

Variants, one folder each, every folder with the tokenizer's `vocab.json` and `merges.txt`:
- `fp16/`: fp16 weights;
- `palettized4/`, `palettized6/`, `palettized8/`: the same programs after
  `ct.optimize.coreml.palettize_weights` with `OpPalettizerConfig(mode="kmeans", nbits=N, weight_threshold=2048)`
  and `op_type_configs={{"gather": None}}` (as Apple's converter: the token embedding stays fp16): every weight
  of more than 2048 elements and rank > 1 becomes an iOS16 `constexpr_lut_to_dense` (one LUT of 2^N fp16
  values per tensor, packed indices).
- The text encoder is only in `fp16/` and `palettized6/` (its unpalettized 49408 x 32 token embedding is 3.2 MB).
- `palettized6-chunked/`: the palettized6 UNet cut in two (`*_unet_chunk1` / `*_unet_chunk2`, as Apple's
  `--chunk-unet`), made afterwards by `tests/reference/make_coreml_tiny_chunks.py` (see its README).

Packages (`Stable_Diffusion_version_{MODEL_VERSION}_<name>.mlpackage`):
- `text_encoder`: `input_ids` fp32 [1, 77] -> `last_hidden_state` fp32 [1, 77, 32], `pooled_outputs` fp32 [1, 32]
- `unet`: `sample` fp16 [2, 4, 8, 8], `timestep` fp16 [2], `encoder_hidden_states` fp16 [2, 32, 1, 77]
  -> `noise_pred` fp32 [2, 4, 8, 8]
- `vae_decoder`: `z` fp16 [1, 4, 8, 8] -> `image` fp32 [1, 3, 64, 64] (post_quant_conv + decoder, no scaling)
- `vae_encoder`: `z` fp16 [1, 3, 64, 64] -> `latent` fp32 [1, 8, 8, 8] (encoder + quant_conv)

Norms: LayerNorm is a `layer_norm` op whose gamma / beta are named consts (`..._norm1_weight_to_fp16`,
`..._norm1_bias_to_fp16`). GroupNorm is `reshape [B, G, C/G, H, W]` -> `reduce_mean` -> `sub` -> `square` ->
`reduce_mean` -> `add(eps)` -> `sqrt` -> `real_div` -> `reshape`, then, when its affine part is not the identity,
`batch_norm(mean = 0, variance = 1, gamma = add_N_gamma_0_to_fp16, beta = add_N_beta_0_to_fp16)` as in Apple's
programs. {groupnorm}

Constant names carry the torch module paths as in Apple's programs (`down_blocks_0_resnets_0_conv1_weight_to_fp16`,
`text_encoder_text_model_encoder_layers_0_self_attn_q_proj_weight_to_fp16`, `position_embeddings_to_fp16`,
the VAE attention's `decoder_mid_block_attentions_0_query_weight_to_fp16`, ...;
palettized ones end in `_palettized`; the text encoder's causal mask, a [1, 1, 77, 77] const of 0 / -1e4, is
`var_56_to_fp16` (op name `op_56_to_fp16`) where Apple's is `causal_attention_mask_to_fp16`).

License: same as `tests/fixtures/tiny-sd-v1` (random weights made by this project's scripts);
`vocab.json` / `merges.txt` are OpenAI's CLIP BPE files (MIT, `tests/fixtures/tiny-sd-v1/tokenizer/LICENSE`).
"""
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
