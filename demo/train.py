#!/usr/bin/env python3
"""Trains sdpal's demo model, a small Stable Diffusion v1 that draws the "shapes" world of
demo/make_dataset.py, on the CPU, and exports it as a diffusers folder.

    python demo/train.py run --data DATA --work RUN --out models/sdpal-shapes-64 [--resume] [--threads 2]

runs everything in order: (1) the VAE (AutoencoderKL) on the images, (2) the dataset's latents with it,
(3) the UNet (UNet2DConditionModel) and text encoder (CLIPTextModel) together on those latents, (4) the
export (EMA weights) to --out. Checkpoints go to RUN/ckpt/ every --ckpt-minutes; with --resume the run
continues from the newest one (the result is the same as an uninterrupted run: every step's batch and
noise come from a generator seeded with (seed, stage, step), and optimiser and EMA states are saved).
Losses are logged to RUN/log.jsonl and printed.

Other commands:
    python demo/train.py export --work RUN --out DIR          export the newest checkpoint
    python demo/train.py sample --model DIR --out grid.png    a few prompts through diffusers (a look)
    python demo/train.py bench [--threads 1]                  seconds per training step of candidate sizes

The architecture (CONFIGS) keeps SD v1's component classes, block types, tokenizer and PNDM scheduler,
only smaller: see demo/README.md for the choices and the measured speed.
"""
import argparse
import glob
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

# Where the networks run (--device). Batches and noise are always drawn on the CPU, from the step's own
# generator, and then moved: a run on a GPU sees exactly the data and noise of the same run on the CPU.
DEVICE = torch.device("cpu")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))

# SD v1.4's scheduler/scheduler_config.json (CompVis/stable-diffusion-v1-4); training uses its betas.
SD14_SCHEDULER_CONFIG = {
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None,
}

TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64,
    bos_token_id=0, eos_token_id=2, pad_token_id=1,  # SD v1.4's legacy special ids
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=64, layers_per_block=1,
    block_out_channels=(32, 64, 64), down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=16, act_fn="silu", scaling_factor=1.0,
)
UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(48, 96, 96),
    # Attention (self + cross) at 8x8 and 4x4 and in the middle block, resnets only at 16x16: self-attention
    # over 256 tokens cost ~40 % of a training step for little gain (bench: 2.6 -> 1.9 s/step).
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=4,  # SD v1's quirk: diffusers reads this as the number of heads
    cross_attention_dim=64, norm_num_groups=16, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True,
    freq_shift=0, downsample_padding=1, mid_block_scale_factor=1, center_input_sample=False,
)

CONFIGS = {
    "default": dict(
        seed=1234, text=TEXT_CONFIG, vae=VAE_CONFIG, unet=UNET_CONFIG,
        # VAE: 32x32 crops (on the latent grid) first, 3.5x cheaper per step; the last vae_full_steps on
        # whole 64x64 pictures, so GroupNorm statistics and borders are those of inference.
        vae_steps=6000, vae_batch=16, vae_crop=32, vae_full_steps=1000, vae_full_batch=8, vae_lr=5e-4,
        vae_warmup=200, vae_kl_weight=1e-6,
        unet_steps=16000, unet_batch=64, unet_lr=5e-4, text_lr=2.5e-4, unet_warmup=500, ema_decay=0.9995,
        cfg_drop=0.1, min_snr_gamma=5.0, snr_floor=1.0, bf16=False,
    ),
}
# The smoke configuration: the same networks, a few steps (checks the whole path end to end).
CONFIGS["smoke"] = dict(CONFIGS["default"], vae_steps=60, vae_full_steps=20, unet_steps=60, unet_warmup=10,
                        vae_warmup=10, ema_decay=0.9)


# ---- helpers ------------------------------------------------------------------------------------

def log(run, **kw):
    kw["time"] = round(time.time(), 1)
    with open(os.path.join(run, "log.jsonl"), "a") as f:
        f.write(json.dumps(kw) + "\n")
    print(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in kw.items() if k != "time"),
          flush=True)


def step_generator(seed, stage, step):
    """The generator of one training step: batches and noise depend only on (seed, stage, step)."""
    g = torch.Generator()
    g.manual_seed((seed * 1000003 + {"vae": 1, "unet": 2}[stage] * 7919 + step * 104729) % (2 ** 63))
    return g


def lr_at(step, base, warmup):
    return base * min(1.0, (step + 1) / max(1, warmup))


def autocast(enabled):
    return torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=enabled)


def atomic_torch_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def latest_checkpoint(run):
    paths = sorted(glob.glob(os.path.join(run, "ckpt", "*.pt")))
    return paths[-1] if paths else None


def save_checkpoint(run, stage, step, state, keep=2):
    os.makedirs(os.path.join(run, "ckpt"), exist_ok=True)
    order = {"vae": 1, "latents": 2, "unet": 3}[stage]
    path = os.path.join(run, "ckpt", f"{order}-{stage}-{step:07d}.pt")
    atomic_torch_save(dict(stage=stage, step=step, **state), path)
    for old in sorted(glob.glob(os.path.join(run, "ckpt", "*.pt")))[:-keep]:
        os.remove(old)
    return path


# ---- data ---------------------------------------------------------------------------------------

def build_tokenizer(folder):
    from make_clip_vocab import write_tokenizer_files
    from transformers import CLIPTokenizer
    vocab, merges = write_tokenizer_files(folder, with_license=False)
    return CLIPTokenizer(vocab, merges, model_max_length=77, pad_token="<|endoftext|>")


class Dataset:
    """images.npy (memory-mapped uint8) + captions tokenized once into RUN/tokens.npy."""

    def __init__(self, data, run, tokenizer):
        self.images = np.load(os.path.join(data, "images.npy"), mmap_mode="r")
        self.n = len(self.images)
        tok_path = os.path.join(run, "tokens.npy")
        if os.path.exists(tok_path):
            self.tokens = np.load(tok_path)
        else:
            metas = [json.loads(l) for l in open(os.path.join(data, "meta.jsonl"), encoding="utf-8")]
            assert len(metas) == self.n, "meta.jsonl and images.npy disagree"
            k = max(len(m["captions"]) for m in metas)
            flat = [c for m in metas for c in (m["captions"] + m["captions"][:1] * (k - len(m["captions"])))]
            ids = []
            for i in range(0, len(flat), 4096):
                ids.append(tokenizer(flat[i:i + 4096], padding="max_length", max_length=77, truncation=True,
                                     return_tensors="np").input_ids.astype(np.int32))
            self.tokens = np.concatenate(ids).reshape(self.n, k, 77)
            np.save(tok_path + ".tmp.npy", self.tokens)
            os.replace(tok_path + ".tmp.npy", tok_path)
        assert len(self.tokens) == self.n, f"{tok_path} was made for another dataset: delete it"
        self.empty = tokenizer([""], padding="max_length", max_length=77, return_tensors="np").input_ids[0]

    def image_batch(self, idx):
        x = torch.from_numpy(np.stack([self.images[i] for i in idx])).float()
        return (x / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()


# ---- models -------------------------------------------------------------------------------------

def make_models(cfg, seed):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**cfg["vae"])
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text"]))
    torch.manual_seed(seed + 3)
    unet = UNet2DConditionModel(**cfg["unet"])
    return vae, text_encoder, unet


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def alphas_cumprod():
    c = SD14_SCHEDULER_CONFIG
    # exactly as diffusers' schedulers compute it (float32)
    betas = torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, c["num_train_timesteps"],
                           dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def vae_loss(vae, x, g, kl_weight, bf16):
    with autocast(bf16):
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g).to(DEVICE)
        rec = vae.decode(z).sample.float()
    l1 = (rec - x).abs().mean()
    mse = ((rec - x) ** 2).mean()
    kl = post.kl().float().mean() / x[0].numel()  # LDM convention: weight x KL-sum per sample, / pixels
    return l1 + mse + kl_weight * kl, dict(l1=l1.item(), mse=mse.item(), kl=kl.item())


def unet_loss(unet, text_encoder, z0, ids, g, acp, gamma, bf16, floor=0.0):
    b = z0.shape[0]
    t = torch.randint(0, len(acp), (b,), generator=g)
    noise = torch.randn(z0.shape, generator=g)
    a = acp[t].view(b, 1, 1, 1)
    zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
    snr = acp[t] / (1 - acp[t])
    zt, noise, snr, ids, t = (v.to(DEVICE) for v in (zt, noise, snr, ids, t))
    with autocast(bf16):
        enc = text_encoder(ids)[0]
        pred = unet(zt, t, enc).sample.float()
    # The eps loss is snr * |x0 error|^2: nearly nothing at high noise, where the layout (where the shape
    # goes) is decided. Weighting it to clamp(snr, floor, gamma) * |x0 error|^2 -- min-SNR-gamma above,
    # truncated SNR (Salimans & Ho) below -- makes those steps count; floor 0 is plain min-SNR-gamma.
    if gamma > 0:
        w = torch.clamp(snr, min=floor, max=gamma) / snr if floor > 0 else torch.clamp(snr, max=gamma) / snr
    else:
        w = torch.ones_like(snr)
    per = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
    return (w * per).mean(), per.mean().detach()


# ---- stages -------------------------------------------------------------------------------------

def out_of_time(a):
    """--stop-after-minutes: end the stage at a step boundary (its checkpoint is saved as usual)."""
    return a.stop_after_minutes is not None and time.time() - START > a.stop_after_minutes * 60


START = time.time()


class Timer:
    def __init__(self, minutes):
        self.every, self.last = minutes * 60, time.time()

    def due(self):
        if time.time() - self.last >= self.every:
            self.last = time.time()
            return True
        return False


def train_vae(a, cfg, run, ds, vae, state):
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg["vae_lr"], weight_decay=0.0)
    step = 0
    if state and state["stage"] == "vae":
        vae.load_state_dict(state["vae"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
    vae.train()
    timer, t0, acc = Timer(a.ckpt_minutes), time.time(), []
    while step < cfg["vae_steps"] and not out_of_time(a):
        full = step >= cfg["vae_steps"] - cfg["vae_full_steps"]
        crop = 0 if full else cfg["vae_crop"]
        g = step_generator(cfg["seed"], "vae", step)
        idx = torch.randint(0, ds.n, (cfg["vae_full_batch"] if full else cfg["vae_batch"],), generator=g).tolist()
        x = ds.image_batch(idx)
        if crop and crop < x.shape[-1]:  # a random crop on the latent grid (the VAE is convolutional)
            f = 2 ** (len(cfg["vae"]["block_out_channels"]) - 1)
            oy, ox = (int(v) * f for v in torch.randint(0, (x.shape[-1] - crop) // f + 1, (2,), generator=g))
            x = x[:, :, oy:oy + crop, ox:ox + crop]
        flip = torch.rand(2, generator=g)
        if flip[0] < 0.5:
            x = x.flip(3)
        if flip[1] < 0.5:
            x = x.flip(2)
        x = x.to(DEVICE)
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, cfg["vae_lr"], cfg["vae_warmup"])
        loss, parts = vae_loss(vae, x, g, cfg["vae_kl_weight"], cfg["bf16"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        acc.append([loss.item(), parts["l1"], parts["mse"], parts["kl"]])
        if step % a.log_every == 0 or step == cfg["vae_steps"]:
            m = np.mean(acc, axis=0)
            log(run, stage="vae", step=step, loss=float(m[0]), l1=float(m[1]), mse=float(m[2]), kl=float(m[3]),
                s_per_it=(time.time() - t0) / len(acc))
            acc, t0 = [], time.time()
        if timer.due() and step < cfg["vae_steps"]:
            save_checkpoint(run, "vae", step, dict(vae=vae.state_dict(), opt=opt.state_dict()))
    vae.eval()
    return save_checkpoint(run, "vae", step, dict(vae=vae.state_dict(), opt=opt.state_dict()))


@torch.no_grad()
def vae_report(run, ds, vae, count=32):
    """Reconstruction PSNR of the first `count` images (from the posterior mean) and a picture
    RUN/vae_recon.png: originals above, reconstructions below."""
    from PIL import Image
    x = ds.image_batch(range(min(count, ds.n)))
    rec = vae.decode(vae.encode(x.to(DEVICE)).latent_dist.mean).sample.clamp(-1, 1).cpu()
    mse = ((rec - x) ** 2).mean(dim=(1, 2, 3))
    psnr = float((10 * torch.log10(4.0 / mse)).mean())
    to8 = lambda t: ((t.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    top, bottom = np.concatenate(list(to8(x)), 1), np.concatenate(list(to8(rec)), 1)
    Image.fromarray(np.concatenate([top, bottom], 0)).save(os.path.join(run, "vae_recon.png"))
    log(run, stage="vae_report", step=0, psnr=psnr, worst_psnr=float((10 * torch.log10(4.0 / mse)).min()))


@torch.no_grad()
def encode_latents(a, cfg, run, ds, vae):
    """Posterior mean and std of every image (fp16, [N, 2, C, h, w]) and the scaling factor 1 / std of
    the latents (as SD v1's 0.18215 was chosen)."""
    path = os.path.join(run, "latents.npy")
    if not os.path.exists(path):
        vae.eval()
        out = None
        for i in range(0, ds.n, 256):
            x = ds.image_batch(range(i, min(ds.n, i + 256)))
            post = vae.encode(x.to(DEVICE)).latent_dist
            m = torch.stack([post.mean, post.std], 1).half().cpu().numpy()
            if out is None:
                out = np.lib.format.open_memmap(path + ".tmp.npy", mode="w+", dtype=np.float16,
                                                shape=(ds.n,) + m.shape[1:])
            out[i:i + len(m)] = m
        out.flush()
        del out
        os.replace(path + ".tmp.npy", path)
    lat = np.load(path, mmap_mode="r")
    assert len(lat) == ds.n, f"{path} was made for another dataset: delete it"
    sample = torch.from_numpy(np.asarray(lat[:4096, 0], dtype=np.float32))
    scale = float(1.0 / sample.std())
    log(run, stage="latents", step=0, latent_mean=float(sample.mean()), latent_std=float(sample.std()),
        scaling_factor=scale)
    return lat, scale


def ema_update(ema_params, params, decay):
    with torch.no_grad():
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)


def train_unet(a, cfg, run, ds, lat, scale, text_encoder, unet, state):
    params = [dict(params=unet.parameters(), lr=cfg["unet_lr"]),
              dict(params=text_encoder.parameters(), lr=cfg["text_lr"])]
    opt = torch.optim.AdamW(params, weight_decay=0.0)
    ema_unet = [p.detach().clone() for p in unet.parameters()]
    ema_text = [p.detach().clone() for p in text_encoder.parameters()]
    step = 0
    if state and state["stage"] == "unet":
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["opt"])
        for dst, src in zip(ema_unet + ema_text, state["ema_unet"] + state["ema_text"]):
            dst.copy_(src)
        step = state["step"]

    def ckpt():
        return dict(unet=unet.state_dict(), text_encoder=text_encoder.state_dict(), opt=opt.state_dict(),
                    ema_unet=ema_unet, ema_text=ema_text, scaling_factor=scale)

    unet.train()
    text_encoder.train()
    acp = alphas_cumprod()
    tokens = torch.from_numpy(ds.tokens.astype(np.int64))
    empty = torch.from_numpy(ds.empty.astype(np.int64))
    all_params = list(unet.parameters()) + list(text_encoder.parameters())
    timer, t0, acc = Timer(a.ckpt_minutes), time.time(), []
    while step < cfg["unet_steps"] and not out_of_time(a):
        g = step_generator(cfg["seed"], "unet", step)
        b = cfg["unet_batch"]
        idx = torch.randint(0, ds.n, (b,), generator=g)
        cap = torch.randint(0, tokens.shape[1], (b,), generator=g)
        ids = tokens[idx, cap]
        drop = torch.rand(b, generator=g) < cfg["cfg_drop"]
        ids[drop] = empty
        m = torch.from_numpy(np.asarray(lat[idx.sort().values.numpy()], dtype=np.float32))
        m = m[torch.argsort(torch.argsort(idx))]  # back to the order of idx
        z0 = (m[:, 0] + m[:, 1] * torch.randn(m[:, 0].shape, generator=g)) * scale
        warm = min(1.0, (step + 1) / max(1, cfg["unet_warmup"]))
        opt.param_groups[0]["lr"] = cfg["unet_lr"] * warm
        opt.param_groups[1]["lr"] = cfg["text_lr"] * warm
        loss, raw = unet_loss(unet, text_encoder, z0, ids, g, acp, cfg["min_snr_gamma"], cfg["bf16"],
                              cfg.get("snr_floor", 0.0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(all_params, 1.0)
        opt.step()
        step += 1
        decay = min(cfg["ema_decay"], (1 + step) / (10 + step))
        ema_update(ema_unet, list(unet.parameters()), decay)
        ema_update(ema_text, list(text_encoder.parameters()), decay)
        acc.append(torch.stack([loss.detach(), raw]))  # no .item() per step: a GPU keeps running ahead
        if step % a.log_every == 0 or step == cfg["unet_steps"] or out_of_time(a):
            mm = torch.stack(acc).mean(0).tolist()
            log(run, stage="unet", step=step, loss=float(mm[0]), mse=float(mm[1]),
                s_per_it=(time.time() - t0) / len(acc))
            acc, t0 = [], time.time()
        if timer.due() and step < cfg["unet_steps"]:
            save_checkpoint(run, "unet", step, ckpt())
    return save_checkpoint(run, "unet", step, ckpt())


# ---- export -------------------------------------------------------------------------------------

MODEL_CARD = """# sdpal-shapes-64: a small Stable Diffusion v1 that draws simple shapes

A text-to-image model trained from scratch by sdpal's `demo/train.py` on the synthetic "shapes" dataset of
`demo/make_dataset.py`: 64x64 pictures of one or two shapes (circle, square, triangle, cross) in 11 named
colors (red, orange, yellow, green, blue, purple, pink, brown, white, black, gray), small or large, at one of
nine places (top left ... bottom right, center), on a plain background of another of those colors.
It understands prompts such as "a large red circle on a blue background", "a small green triangle at the top
left", "yellow square, black background". It knows nothing else: other words get a random picture of shapes.

Architecture: Stable Diffusion v1's (diffusers `StableDiffusionPipeline`), only smaller, so sdpal and diffusers
load it like any SD v1.x folder:

{arch}

Scheduler: PNDM with SD v1.4's scheduler config (the UNet was trained on the same noise schedule: scaled
linear betas 0.00085-0.012, 1000 steps, epsilon prediction). Default size {size}x{size} ({latent}x{latent} latents).
Tokenizer: the real CLIP BPE vocabulary (49408 tokens, OpenAI's MIT `LICENSE` in `tokenizer/`).

No safety checker: the model can only draw colored geometric shapes on flat backgrounds (its training data is
entirely synthetic, made by a program), so there is nothing for a checker to catch; SD's checker is also a
large CLIP vision model (1.2 GB) that would dwarf this one. `model_index.json` lists it as absent
(`requires_safety_checker: false`): diffusers loads the pipeline without it, sdpal runs without it (and
says so on stderr).

Training: seed {seed}; VAE {vae_steps} steps (batch {vae_batch} of {vae_crop}x{vae_crop} crops, then the last
{vae_full_steps} on whole pictures, batch {vae_full_batch}; L1 + MSE + KL {vae_kl_weight}); latent scaling
factor {scale:.5f} (1 / std of the latents); UNet and text encoder together {unet_steps} steps (batch
{unet_batch}, AdamW lr {unet_lr} / {text_lr}, x0-error weight clamp(snr, {floor}, {gamma}), {cfg_drop_pct}% empty prompts for
classifier-free guidance, EMA {ema}). Exported EMA weights, {dtype}.
Held-out (never drawn in training) combinations, for testing generalization: colors x shapes {held_cs};
shapes x positions {held_sp}.

Evaluate with `tests/unit/test_demo_model_eval.cpp` (ctest) or `demo/evaluate.py`.

License: MIT. The weights were trained by sdpal's own script on pictures made by a program (no third-party
images); the tokenizer files are OpenAI's CLIP vocabulary, MIT (`tokenizer/LICENSE`).
"""


def export(cfg, state, out, dtype="fp16", vae_state=None):
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from make_clip_vocab import write_tokenizer_files
    vae_cfg = dict(cfg["vae"], scaling_factor=state["scaling_factor"])
    c2 = dict(cfg, vae=vae_cfg)
    vae, text_encoder, unet = make_models(c2, cfg["seed"])
    vae.load_state_dict(vae_state)
    # EMA weights into the modules.
    with torch.no_grad():
        for p, e in zip(unet.parameters(), state["ema_unet"]):
            p.copy_(e)
        for p, e in zip(text_encoder.parameters(), state["ema_text"]):
            p.copy_(e)
    # Buffers (position ids) are not parameters: take them from the trained state.
    text_encoder.load_state_dict({**text_encoder.state_dict(),
                                  **{k: v for k, v in state["text_encoder"].items()
                                     if k not in dict(text_encoder.named_parameters())}})
    tmp = out + ".tmp-export"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = build_tokenizer(os.path.join(tmp, "tokenizer-src"))
    scheduler = PNDMScheduler.from_config(SD14_SCHEDULER_CONFIG)
    for m in (vae, text_encoder, unet):
        m.eval()
        if dtype == "fp16":
            m.half()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(os.path.join(tmp, "tokenizer-src"))
    write_tokenizer_files(os.path.join(tmp, "tokenizer"), with_license=True)
    import make_dataset as md
    arch = "\n".join([
        f"- `text_encoder/`: CLIPTextModel, hidden {cfg['text']['hidden_size']}, "
        f"{cfg['text']['num_hidden_layers']} layers, {cfg['text']['num_attention_heads']} heads, "
        f"intermediate {cfg['text']['intermediate_size']}, quick_gelu, 77 positions "
        f"({n_params(text_encoder) / 1e6:.2f} M parameters, most of them the 49408-token embedding).",
        f"- `unet/`: UNet2DConditionModel, block_out_channels {tuple(cfg['unet']['block_out_channels'])}, "
        f"{cfg['unet']['down_block_types']}, layers_per_block {cfg['unet']['layers_per_block']}, "
        f"{cfg['unet']['attention_head_dim']} heads, cross_attention_dim {cfg['unet']['cross_attention_dim']} "
        f"({n_params(unet) / 1e6:.2f} M parameters).",
        f"- `vae/`: AutoencoderKL, block_out_channels {tuple(cfg['vae']['block_out_channels'])}, layers_per_block "
        f"{cfg['vae']['layers_per_block']}, {cfg['vae']['latent_channels']} latent channels, scale factor "
        f"{2 ** (len(cfg['vae']['block_out_channels']) - 1)} ({n_params(vae) / 1e6:.2f} M parameters).",
    ])
    size = cfg["vae"]["sample_size"]
    with open(os.path.join(tmp, "README.md"), "w") as f:
        f.write(MODEL_CARD.format(
            arch=arch, size=size, latent=cfg["unet"]["sample_size"], seed=cfg["seed"], scale=state["scaling_factor"],
            gamma=cfg["min_snr_gamma"], floor=cfg.get("snr_floor", 0.0), cfg_drop_pct=round(100 * cfg["cfg_drop"]), ema=cfg["ema_decay"],
            dtype="fp16 safetensors" if dtype == "fp16" else "fp32 safetensors",
            held_cs=", ".join(f"{c} {s}" for c, s in md.HELD_OUT_COLOR_SHAPE),
            held_sp=", ".join(f"{s} {p}" for s, p in md.HELD_OUT_SHAPE_POSITION),
            unet_steps=state["step"],
            **{k: cfg[k] for k in ("vae_steps", "vae_batch", "vae_crop", "vae_kl_weight", "vae_full_steps",
                                   "vae_full_batch", "unet_batch", "unet_lr", "text_lr")}))
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    os.replace(tmp, out)
    print("exported", out)


def load_for_export(run):
    ck = latest_checkpoint(run)
    assert ck and os.path.basename(ck).startswith("3-unet"), f"no UNet checkpoint in {run}/ckpt"
    state = torch.load(ck, weights_only=False, map_location="cpu")
    vae_ck = os.path.join(run, "vae_final.pt")
    return state, torch.load(vae_ck, weights_only=False, map_location="cpu")["vae"]


# ---- commands -----------------------------------------------------------------------------------

def cmd_run(a):
    sys.path.insert(0, HERE)
    global DEVICE
    DEVICE = torch.device(a.device)
    torch.set_num_threads(a.threads)
    # CUDA has no deterministic kernel for some backward ops (nearest upsampling): warn there, don't fail.
    if DEVICE.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=DEVICE.type != "cpu")
    torch.backends.cudnn.benchmark = DEVICE.type == "cuda"
    run = a.work
    cfg_path = os.path.join(run, "config.json")
    if a.resume and os.path.exists(cfg_path):
        cfg = json.load(open(cfg_path))
    else:
        if os.path.exists(cfg_path) and not a.resume:
            sys.exit(f"{run} already holds a run: add --resume to continue it, or use another --work folder")
        cfg = json.loads(json.dumps(CONFIGS[a.config]))  # tuples -> lists, like the saved copy
        for k in ("vae_steps", "unet_steps"):
            if getattr(a, k) is not None:
                cfg[k] = getattr(a, k)
        if not a.data:
            sys.exit("--data is required for a new run")
        cfg["data"] = os.path.abspath(a.data)
        os.makedirs(run, exist_ok=True)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
    # More steps may be asked for on resume (constant learning rate after warmup: a run can be extended).
    for k in ("vae_steps", "unet_steps"):
        if a.resume and getattr(a, k) is not None and getattr(a, k) != cfg[k]:
            cfg[k] = getattr(a, k)
            with open(cfg_path, "w") as f:
                json.dump(cfg, f, indent=1)
    data = a.data or cfg["data"]
    tokenizer = build_tokenizer(os.path.join(run, "tokenizer"))
    ds = Dataset(data, run, tokenizer)
    vae, text_encoder, unet = (m.to(DEVICE) for m in make_models(cfg, cfg["seed"]))
    log(run, stage="start", step=0, images=ds.n, vae_params=n_params(vae), unet_params=n_params(unet),
        text_params=n_params(text_encoder), threads=a.threads, device=str(DEVICE), resume=bool(a.resume))
    ck = latest_checkpoint(run) if a.resume else None
    state = torch.load(ck, weights_only=False, map_location="cpu") if ck else None
    if state:
        print("resuming from", ck)

    vae_final = os.path.join(run, "vae_final.pt")
    if os.path.exists(vae_final) and json.load(open(cfg_path))["vae_steps"] <= torch.load(
            vae_final, weights_only=False, map_location="cpu")["step"]:
        vae.load_state_dict(torch.load(vae_final, weights_only=False, map_location="cpu")["vae"])
    else:
        path = train_vae(a, cfg, run, ds, vae, state if state and state["stage"] == "vae" else None)
        if out_of_time(a):
            print(f"stopped after {a.stop_after_minutes} minutes in the VAE stage: continue with --resume")
            return 0
        shutil.copy(path, vae_final + ".tmp")
        os.replace(vae_final + ".tmp", vae_final)
        state = None
    vae.eval()
    vae_report(run, ds, vae)
    lat, scale = encode_latents(a, cfg, run, ds, vae)
    unet_state = state if state and state["stage"] == "unet" else None
    path = train_unet(a, cfg, run, ds, lat, scale, text_encoder, unet, unet_state)
    if out_of_time(a):
        print(f"stopped after {a.stop_after_minutes} minutes in the UNet stage ({os.path.basename(path)}): "
              "continue with --resume")
    if a.out:
        st, vae_sd = load_for_export(run)
        export(cfg, st, a.out, a.dtype, vae_sd)
    return 0


def cmd_export(a):
    sys.path.insert(0, HERE)
    cfg = json.load(open(os.path.join(a.work, "config.json")))
    st, vae_sd = load_for_export(a.work)
    export(cfg, st, a.out, a.dtype, vae_sd)
    return 0


def cmd_sample(a):
    from diffusers import StableDiffusionPipeline
    from PIL import Image
    torch.set_num_threads(a.threads)
    pipe = StableDiffusionPipeline.from_pretrained(a.model)
    pipe.set_progress_bar_config(disable=True)
    prompts = a.prompt or ["a large red circle on a blue background", "a small green triangle at the top left",
                           "yellow square, black background", "a big white cross in the center on a purple background",
                           "a small orange circle at the bottom right on a gray background",
                           "a large blue triangle on the left on a pink background",
                           "a black square at the top on a white background", "a large pink cross on the right"]
    ims = []
    for i, p in enumerate(prompts):
        out = pipe(p, num_inference_steps=a.steps, guidance_scale=a.cfg, output_type="np",
                   generator=torch.Generator().manual_seed(a.seed + i))
        ims.append((out.images[0] * 255).round().astype(np.uint8))
        print(i, p)
    grid = np.concatenate(ims, axis=1)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(a.out)
    print("wrote", a.out)
    return 0


def cmd_bench(a):
    """Seconds per training step for candidate sizes (random data: speed does not depend on it)."""
    torch.set_num_threads(a.threads)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    acp = alphas_cumprod()
    vaes = {
        "vae(32,64,64) crop32 b16": (dict(VAE_CONFIG), 16, 32),
        "vae(32,64,64) full64 b16": (dict(VAE_CONFIG), 16, 64),
        "vae(32,64,64) full64 b8": (dict(VAE_CONFIG), 8, 64),
        "vae(16,32,64) full64 b16": (dict(VAE_CONFIG, block_out_channels=(16, 32, 64)), 16, 64),
        "vae(32,64,64,64) f8 crop32 b16": (dict(VAE_CONFIG, block_out_channels=(32, 64, 64, 64),
                                                down_block_types=("DownEncoderBlock2D",) * 4,
                                                up_block_types=("UpDecoderBlock2D",) * 4), 16, 32),
    }
    lo = dict(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
    unets = {
        "unet(32,64,64) h4 te64 b64": (dict(UNET_CONFIG, block_out_channels=(32, 64, 64), norm_num_groups=8), 64, 64),
        "unet(32,64,64) h2 te64 b64": (dict(UNET_CONFIG, block_out_channels=(32, 64, 64), norm_num_groups=8,
                                            attention_head_dim=2), 64, 64),
        "unet(32,64,64) attn8+4 h2 te64 b64": (dict(UNET_CONFIG, block_out_channels=(32, 64, 64), norm_num_groups=8,
                                                    attention_head_dim=2, **lo), 64, 64),
        "unet(64,128,128) h4 te64 b64": (dict(UNET_CONFIG), 64, 64),
        "unet(64,128,128) attn8+4 h4 te64 b64": (dict(UNET_CONFIG, **lo), 64, 64),
        "unet(64,128,128) attn8+4 h4 te128 b64": (dict(UNET_CONFIG, **lo), 64, 128),
        "unet(64,128,128) attn8+4 lpb2 h4 te64 b64": (dict(UNET_CONFIG, layers_per_block=2, **lo), 64, 64),
        "unet(48,96,96) attn8+4 h4 te64 b64 [default]": (dict(UNET_CONFIG), 64, 64),
        "unet(64,128,192) attn8+4 h4 te64 b64": (dict(UNET_CONFIG, block_out_channels=(64, 128, 192), **lo), 64, 64),
    }
    only = set(a.only.split(",")) if a.only else None
    for bf16 in ([False, True] if a.precision == "both" else [a.precision == "bf16"]):
        for name, (vc, b, crop) in vaes.items():
            if only and not any(o in name for o in only):
                continue
            torch.manual_seed(0)
            vae = AutoencoderKL(**vc)
            opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
            g = torch.Generator().manual_seed(0)
            x = torch.rand(b, 3, crop, crop) * 2 - 1
            times = []
            for i in range(a.iters + 2):
                t0 = time.time()
                loss, _ = vae_loss(vae, x, g, 1e-6, bf16)
                opt.zero_grad()
                loss.backward()
                opt.step()
                times.append(time.time() - t0)
            print(f"{name:40s} bf16={bf16!s:5s} params {n_params(vae) / 1e6:6.2f}M  "
                  f"{np.median(times[2:]):.3f} s/step", flush=True)
        for name, (uc, b, hid) in unets.items():
            if only and not any(o in name for o in only):
                continue
            torch.manual_seed(0)
            unet = UNet2DConditionModel(**dict(uc, cross_attention_dim=hid))
            te = CLIPTextModel(CLIPTextConfig(**dict(TEXT_CONFIG, hidden_size=hid, intermediate_size=4 * hid,
                                                     projection_dim=hid)))
            opt = torch.optim.AdamW(list(unet.parameters()) + list(te.parameters()), lr=1e-4)
            g = torch.Generator().manual_seed(0)
            z0 = torch.randn(b, 4, 16, 16)
            ids = torch.randint(0, 49408, (b, 77))
            times = []
            for i in range(a.iters + 2):
                t0 = time.time()
                loss, _ = unet_loss(unet, te, z0, ids, g, acp, 5.0, bf16)
                opt.zero_grad()
                loss.backward()
                opt.step()
                times.append(time.time() - t0)
            print(f"{name:40s} bf16={bf16!s:5s} params {n_params(unet) / 1e6:6.2f}M  "
                  f"{np.median(times[2:]):.3f} s/step", flush=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train (VAE, latents, UNet + text encoder) and export")
    r.add_argument("--data", help="dataset folder from demo/make_dataset.py (remembered in RUN/config.json)")
    r.add_argument("--work", required=True, help="run folder: config, checkpoints, log, latents")
    r.add_argument("--out", help="export the trained model here at the end")
    r.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --work")
    r.add_argument("--config", default="default", choices=sorted(CONFIGS))
    r.add_argument("--vae-steps", type=int)
    r.add_argument("--unet-steps", type=int)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--ckpt-minutes", type=float, default=5.0)
    r.add_argument("--log-every", type=int, default=50)
    r.add_argument("--dtype", default="fp16", choices=["fp16", "fp32"], help="weights of the export")
    r.add_argument("--device", default="cpu", help="where the networks train: cpu (default), cuda, cuda:1, ...")
    r.add_argument("--stop-after-minutes", type=float,
                   help="end the current stage after this long (checkpointed; continue with --resume)")
    e = sub.add_parser("export", help="export the newest checkpoint of a run")
    e.add_argument("--work", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--dtype", default="fp16", choices=["fp16", "fp32"])
    s = sub.add_parser("sample", help="draw a few prompts with diffusers")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--prompt", action="append")
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--cfg", type=float, default=7.5)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1)
    b = sub.add_parser("bench", help="seconds per training step of candidate sizes")
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--iters", type=int, default=5)
    b.add_argument("--only", help="comma-separated name fragments")
    b.add_argument("--precision", default="both", choices=["fp32", "bf16", "both"])
    a = ap.parse_args(argv)
    return {"run": cmd_run, "export": cmd_export, "sample": cmd_sample, "bench": cmd_bench}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
