#!/usr/bin/env python3
"""Model and pipeline goldens from the tiny fixture (tests/fixtures/tiny-sd-v1), float32 on CPU.

Writes tests/goldens/model/{text_encoder,unet,vae_decode,safety_checker}.{safetensors,json} and
tests/goldens/pipeline/<run>.safetensors + pipeline/runs.json. Layouts are torch's (NCHW) unless a
name says otherwise; see the README.md in each folder.

Run after make_tiny_model.py:  python tests/reference/make_model_goldens.py
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refcommon as rc  # noqa: E402

TEXT_PROMPTS = [
    "",
    rc.PROMPT,
    "A Cat's 3 bright-green eyes, hyper-detailed!! (8k)",
    "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e \u2014 \u65e5\u672c\u8a9e \U0001F370",
    "an extremely detailed and intricate oil painting of a quiet harbour town at dusk, with fishing boats, "
    "gulls circling over the masts, warm lanterns reflected in the rippling water, cobblestone streets "
    "climbing the hill, a lighthouse on the cliff, dramatic clouds lit in orange and violet, "
    "in the style of the old Dutch masters, museum quality, very high resolution, masterpiece, "
    "soft volumetric light, long shadows, a cat asleep on a barrel, nets drying on wooden poles",
]
UNET_FLOAT_TIMESTEP = 500.25
UNET_INT_TIMESTEP = 981


def load_pipe():
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(rc.TINY_DIR, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def without_checker(pipe):
    from diffusers import StableDiffusionPipeline
    comps = dict(pipe.components)
    comps["safety_checker"] = None
    p = StableDiffusionPipeline(**comps, requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    return p


def tokenize(tokenizer, prompts):
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


# ---- text encoder ------------------------------------------------------------------------------

def text_goldens(pipe):
    from transformers import CLIPTextModel
    ids = tokenize(pipe.tokenizer, TEXT_PROMPTS)
    with torch.no_grad():
        hidden = pipe.text_encoder(ids)[0]
    te16 = CLIPTextModel.from_pretrained(os.path.join(rc.TINY_DIR, "text_encoder"), variant="fp16",
                                         torch_dtype=torch.float16).float().eval()
    with torch.no_grad():
        hidden16 = te16(ids[1:2])[0]
    full_lengths = [len(pipe.tokenizer(p).input_ids) for p in TEXT_PROMPTS]
    assert max(full_lengths) > 77, full_lengths
    rc.save_tensors(os.path.join(rc.GOLDEN_MODEL_DIR, "text_encoder.safetensors"), {
        "input_ids": ids.to(torch.int64),
        "last_hidden_state": hidden,
        "last_hidden_state_fp16_weights": hidden16,
    })
    rc.write_json(os.path.join(rc.GOLDEN_MODEL_DIR, "text_encoder.json"), {
        "prompts": TEXT_PROMPTS,
        "untruncated_token_counts": full_lengths,
        "input_ids": ids.tolist(),
        "fp16_weights_prompt_index": 1,
        "note": "input_ids from the tokenizer with padding='max_length', max_length=77, truncation=True "
                "(as StableDiffusionPipeline.encode_prompt); no attention mask is used.",
    })
    print("text:", hidden.shape, "std", float(hidden.std()))
    return hidden


# ---- UNet ------------------------------------------------------------------------------------------

def unet_goldens(pipe, hidden):
    from diffusers import UNet2DConditionModel
    sample = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    ehs = hidden[0:2].clone()  # ["" , PROMPT]: the CFG batch order (uncond first)
    un16 = UNet2DConditionModel.from_pretrained(os.path.join(rc.TINY_DIR, "unet"), variant="fp16",
                                                torch_dtype=torch.float16).float().eval()
    with torch.no_grad():
        out_int = pipe.unet(sample, UNET_INT_TIMESTEP, ehs).sample
        out_float = pipe.unet(sample, UNET_FLOAT_TIMESTEP, ehs).sample
        out_int16 = un16(sample, UNET_INT_TIMESTEP, ehs).sample
        # the pipeline passes a 0-d tensor taken from scheduler.timesteps: must give the same result
        out_tensor = pipe.unet(sample, torch.tensor(UNET_INT_TIMESTEP, dtype=torch.int64), ehs).sample
    assert torch.equal(out_int, out_tensor)
    rc.save_tensors(os.path.join(rc.GOLDEN_MODEL_DIR, "unet.safetensors"), {
        "sample": sample,
        "encoder_hidden_states": ehs,
        "timestep_int": torch.tensor([UNET_INT_TIMESTEP], dtype=torch.int64),
        "timestep_float": torch.tensor([UNET_FLOAT_TIMESTEP], dtype=torch.float32),
        "noise_pred_t981": out_int,
        "noise_pred_t500_25": out_float,
        "noise_pred_t981_fp16_weights": out_int16,
    })
    rc.write_json(os.path.join(rc.GOLDEN_MODEL_DIR, "unet.json"), {
        "sample": "torch.randn([2,4,16,16], generator=torch.Generator().manual_seed(0)), NCHW",
        "encoder_hidden_states": "text_encoder golden last_hidden_state[0:2] (prompts '' and the astronaut prompt)",
        "timestep_int": UNET_INT_TIMESTEP,
        "timestep_float": UNET_FLOAT_TIMESTEP,
        "config": json.loads(json.dumps(dict(pipe.unet.config), default=list)),
    })
    print("unet: out std", float(out_int.std()), float(out_float.std()),
          "fp16-weights max diff", float((out_int16 - out_int).abs().max()))


# ---- VAE -----------------------------------------------------------------------------------------

def vae_goldens(pipe):
    vae = pipe.vae
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    scaled = latents / vae.config.scaling_factor
    with torch.no_grad():
        image = vae.decode(scaled, return_dict=False)[0]
    image_np = pipe.image_processor.postprocess(image, output_type="np")
    rc.save_tensors(os.path.join(rc.GOLDEN_MODEL_DIR, "vae_decode.safetensors"), {
        "latents": latents,
        "scaled_latents": scaled,
        "image": image,
        "image_np": image_np.astype(np.float32),
        "image_uint8": rc.numpy_to_uint8(image_np),
    })
    print("vae: image", image.shape, "mean", float(image.mean()), "std", float(image.std()))


# ---- safety checker -------------------------------------------------------------------------------

def safety_scores(cos, special_cos, concept_th, special_th):
    """The checker's per-image loop: float64 arithmetic on float32 cosines, Python round(x, 3)."""
    n = cos.shape[0]
    special_scores = np.zeros(special_cos.shape, np.float64)
    concept_scores = np.zeros(cos.shape, np.float64)
    raw_min = np.inf
    flags = []
    for i in range(n):
        adjustment = 0.0
        for k in range(special_cos.shape[1]):
            raw = float(special_cos[i, k]) - float(special_th[k]) + adjustment
            raw_min = min(raw_min, abs(raw))
            special_scores[i, k] = round(raw, 3)
            if special_scores[i, k] > 0:
                adjustment = 0.01
        bad = False
        for k in range(cos.shape[1]):
            raw = float(cos[i, k]) - float(concept_th[k]) + adjustment
            raw_min = min(raw_min, abs(raw))
            concept_scores[i, k] = round(raw, 3)
            bad = bad or concept_scores[i, k] > 0
        flags.append(bad)
    return special_scores, concept_scores, flags, raw_min


def check_safety(pipe, images_uint8):
    """uint8 NHWC list -> dict of everything the checker computes."""
    from PIL import Image
    from transformers.image_transforms import get_resize_output_image_size
    checker = pipe.safety_checker
    pil = [Image.fromarray(im) for im in images_uint8]
    pixel_values = pipe.feature_extractor(pil, return_tensors="pt").pixel_values
    resized = []
    for im in images_uint8:
        h, w = get_resize_output_image_size(im, size=224, default_to_square=False, input_data_format="channels_last")
        resized.append(np.asarray(Image.fromarray(im).resize((w, h), resample=Image.BICUBIC)))
    with torch.no_grad():
        pooled = checker.vision_model(pixel_values)[1]
        embeds = checker.visual_projection(pooled)
        normed = torch.nn.functional.normalize(embeds)
        special_cos = (normed @ torch.nn.functional.normalize(checker.special_care_embeds).t()).numpy()
        cos = (normed @ torch.nn.functional.normalize(checker.concept_embeds).t()).numpy()
        _, flags_ref = checker(clip_input=pixel_values, images=[np.zeros(1)] * len(pil))
    concept_th = checker.concept_embeds_weights.detach().numpy()
    special_th = checker.special_care_embeds_weights.detach().numpy()
    special_scores, concept_scores, flags, margin = safety_scores(cos, special_cos, concept_th, special_th)
    assert flags == list(flags_ref), (flags, flags_ref)
    return dict(pixel_values=pixel_values, pooled_output=pooled, image_embeds=embeds,
                special_cos_dist=special_cos, cos_dist=cos, special_scores=special_scores,
                concept_scores=concept_scores, has_nsfw=np.array(flags, np.uint8), margin=margin,
                resized=resized, concept_th=concept_th, special_th=special_th)


def synthetic_image(h, w, seed):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / (w - 1), 255 * y / (h - 1), 128 + 100 * np.sin(x / 9.0) * np.cos(y / 7.0)], -1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def safety_goldens(pipe, batch_images_uint8):
    images = [batch_images_uint8[0], batch_images_uint8[1], synthetic_image(256, 320, 7)]
    r = check_safety(pipe, images)
    t = {f"image_{i}": im for i, im in enumerate(images)}
    t.update({f"resized_{i}": im for i, im in enumerate(r["resized"])})
    for k in ("pixel_values", "pooled_output", "image_embeds", "special_cos_dist", "cos_dist",
              "special_scores", "concept_scores", "has_nsfw"):
        t[k] = r[k]
    t["concept_thresholds"] = r["concept_th"]
    t["special_care_thresholds"] = r["special_th"]
    rc.save_tensors(os.path.join(rc.GOLDEN_MODEL_DIR, "safety_checker.safetensors"), t)
    rc.write_json(os.path.join(rc.GOLDEN_MODEL_DIR, "safety_checker.json"), {
        "images": ["pipeline batch run (pndm_batch2) image 0", "pipeline batch run (pndm_batch2) image 1",
                   "synthetic 256x320 (HxW) gradient + noise, numpy RandomState(7)"],
        "has_nsfw": [bool(x) for x in r["has_nsfw"]],
        "smallest_unrounded_score_magnitude": r["margin"],
    })
    print("safety: has_nsfw", r["has_nsfw"].tolist(), "margin", r["margin"])
    assert r["has_nsfw"][0] == 1 and r["has_nsfw"][1] == 0, "safety thresholds no longer split the batch images"


# ---- pipeline runs ---------------------------------------------------------------------------------

def scheduler_for(name, base_config):
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, PNDMScheduler)
    if name.startswith("pndm"):
        return PNDMScheduler.from_config(base_config)
    if name.startswith("ddim"):
        return DDIMScheduler.from_config(base_config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(base_config)
    if name == "euler_ancestral":
        return EulerAncestralDiscreteScheduler.from_config(base_config)
    if name == "dpmpp_2m":
        return DPMSolverMultistepScheduler.from_config(base_config, algorithm_type="dpmsolver++", solver_order=2)
    if name == "dpmpp_2m_karras":
        return DPMSolverMultistepScheduler.from_config(base_config, algorithm_type="dpmsolver++", solver_order=2,
                                                       use_karras_sigmas=True)
    raise ValueError(name)


RUNS = [
    # name, extra pipeline kwargs
    ("pndm", {}),
    ("ddim_eta0", {"eta": 0.0}),
    ("ddim_eta0_5", {"eta": 0.5}),
    ("euler", {}),
    ("euler_ancestral", {}),
    ("dpmpp_2m", {}),
    ("dpmpp_2m_karras", {}),
    ("pndm_batch2", {"num_images_per_prompt": 2}),
    ("pndm_negative", {"negative_prompt": rc.NEGATIVE_PROMPT}),
]


class NoiseRecorder:
    """Wraps randn_tensor in the stochastic schedulers' modules to record the per-step noise."""

    def __init__(self):
        import diffusers.schedulers.scheduling_ddim as m1
        import diffusers.schedulers.scheduling_euler_ancestral_discrete as m2
        self.modules = [m1, m2]
        self.noise = []

    def __enter__(self):
        self.orig = [m.randn_tensor for m in self.modules]

        def wrapped(*a, _orig=self.orig[0], **k):
            out = _orig(*a, **k)
            self.noise.append(out.clone())
            return out
        for m in self.modules:
            m.randn_tensor = wrapped
        return self

    def __exit__(self, *exc):
        for m, o in zip(self.modules, self.orig):
            m.randn_tensor = o


def run_pipeline(pipe, extra, record):
    state = {"latents": [], "prompt_embeds": None, "init": None, "unet_calls": 0}
    orig_prepare = pipe.prepare_latents
    orig_unet_forward = pipe.unet.forward

    def prepare(*a, **k):
        out = orig_prepare(*a, **k)
        state["init"] = out.clone()
        return out

    def unet_forward(*a, **k):
        state["unet_calls"] += 1
        return orig_unet_forward(*a, **k)

    def callback(p, i, t, kw):
        state["latents"].append(kw["latents"].clone())
        if state["prompt_embeds"] is None:
            state["prompt_embeds"] = kw["prompt_embeds"].clone()
        return kw

    pipe.prepare_latents = prepare
    pipe.unet.forward = unet_forward
    try:
        with NoiseRecorder() as rec:
            out = pipe(rc.PROMPT, height=rc.HEIGHT, width=rc.WIDTH, num_inference_steps=rc.STEPS,
                       guidance_scale=rc.GUIDANCE, output_type="np",
                       generator=torch.Generator().manual_seed(rc.SEED),
                       callback_on_step_end=callback if record else None,
                       callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"], **extra)
    finally:
        pipe.prepare_latents = orig_prepare
        pipe.unet.forward = orig_unet_forward
    return out, state, rec.noise


def pipeline_goldens(pipe):
    base_config = dict(pipe.scheduler.config)
    plain = without_checker(pipe)
    runs = {}
    batch_images = None
    for name, extra in RUNS:
        plain.scheduler = scheduler_for(name, base_config)
        pipe.scheduler = scheduler_for(name, base_config)
        out, st, noise = run_pipeline(plain, extra, record=True)
        out_on, _, _ = run_pipeline(pipe, extra, record=False)
        images = out.images.astype(np.float32)
        images_u8 = rc.numpy_to_uint8(out.images)
        flags = [bool(x) for x in out_on.nsfw_content_detected]
        for i, f in enumerate(flags):
            if f:
                assert not out_on.images[i].any(), "flagged image is not black"
            else:
                assert np.array_equal(out_on.images[i], out.images[i]), "unflagged image differs"
        sc = plain.scheduler
        n = images.shape[0]
        init_noise = torch.randn((n, 4, rc.HEIGHT // 8, rc.WIDTH // 8), generator=torch.Generator().manual_seed(rc.SEED))
        assert torch.equal(init_noise * sc.init_noise_sigma, st["init"])
        tensors = {
            "init_noise": init_noise,
            "init_latents": st["init"],
            "latents_steps": torch.stack(st["latents"]),
            "timesteps": sc.timesteps.clone(),
            "prompt_embeds": st["prompt_embeds"],
            "image": images,
            "image_uint8": images_u8,
        }
        if getattr(sc, "sigmas", None) is not None:
            tensors["sigmas"] = sc.sigmas.clone().to(torch.float32)
        if noise:
            tensors["step_noise"] = torch.stack(noise)
        rc.save_tensors(os.path.join(rc.GOLDEN_PIPELINE_DIR, name + ".safetensors"), tensors)
        checks = check_safety(pipe, list(images_u8))
        assert [bool(x) for x in checks["has_nsfw"]] == flags
        runs[name] = {
            "scheduler_class": type(sc).__name__,
            "scheduler_config": json.loads(sc.to_json_string()),
            "init_noise_sigma": float(sc.init_noise_sigma),
            "prompt": rc.PROMPT,
            "negative_prompt": extra.get("negative_prompt"),
            "seed": rc.SEED,
            "height": rc.HEIGHT,
            "width": rc.WIDTH,
            "num_inference_steps": rc.STEPS,
            "guidance_scale": rc.GUIDANCE,
            "eta": extra.get("eta", 0.0),
            "num_images_per_prompt": extra.get("num_images_per_prompt", 1),
            "timesteps": sc.timesteps.tolist(),
            "num_steps_recorded": len(st["latents"]),
            "unet_calls": st["unet_calls"],
            "step_noise_draws": len(noise),
            "has_nsfw": flags,
            "safety_smallest_unrounded_score_magnitude": checks["margin"],
            "image_mean": float(images.mean()),
            "image_std": float(images.std()),
        }
        print(f"pipeline {name}: steps {len(st['latents'])}, unet calls {st['unet_calls']}, noise draws "
              f"{len(noise)}, nsfw {flags}, safety margin {checks['margin']:.4f}, "
              f"image mean {images.mean():.3f} std {images.std():.3f}, frac clipped "
              f"{float(((images == 0) | (images == 1)).mean()):.3f}")
        if name == "pndm_batch2":
            batch_images = images_u8
    rc.write_json(os.path.join(rc.GOLDEN_PIPELINE_DIR, "runs.json"), runs)
    all_flags = [f for r in runs.values() for f in r["has_nsfw"]]
    assert any(all_flags) and not all(all_flags), "need both flagged and unflagged images"
    return batch_images


def main():
    rc.set_torch_deterministic(1)
    pipe = load_pipe()
    hidden = text_goldens(pipe)
    unet_goldens(pipe, hidden)
    vae_goldens(pipe)
    batch_images = pipeline_goldens(pipe)
    safety_goldens(pipe, batch_images)
    for d in (rc.GOLDEN_MODEL_DIR, rc.GOLDEN_PIPELINE_DIR):
        total = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{d}: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
