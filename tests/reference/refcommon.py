"""Shared constants and helpers for the reference scripts (tiny model, model and pipeline goldens).

Not a make_*.py script: regen.sh does not run it, the make_* scripts import it.
"""
import json
import os

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_DIR = os.path.join(REPO, "tests", "fixtures", "tiny-sd-v1")
GOLDEN_MODEL_DIR = os.path.join(REPO, "tests", "goldens", "model")
GOLDEN_PIPELINE_DIR = os.path.join(REPO, "tests", "goldens", "pipeline")

# The pipeline goldens' common settings.
PROMPT = "a photograph of an astronaut riding a horse"
NEGATIVE_PROMPT = "blurry, low quality"
SEED = 1234
HEIGHT = WIDTH = 128
GUIDANCE = 7.5
STEPS = 10

# SD v1.4's scheduler/scheduler_config.json (CompVis/stable-diffusion-v1-4).
SD14_SCHEDULER_CONFIG = {
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

# SD v1.4's feature_extractor/preprocessor_config.json (legacy CLIPFeatureExtractor form: int sizes).
SD14_PREPROCESSOR_CONFIG = {
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


def set_torch_deterministic(threads=1):
    import torch
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def json_safe(obj):
    """Strict JSON: non-finite floats (e.g. DPMSolver's lambda_min_clipped = -inf) become the
    strings "Infinity" / "-Infinity" / "NaN"; tuples become lists."""
    import math
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(json_safe(obj), f, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
        f.write("\n")


def to_np(t):
    """torch tensor -> contiguous numpy array (float32 stays float32)."""
    import torch
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.dtype == torch.bool:
            return np.ascontiguousarray(t.numpy().astype(np.uint8))
        return np.ascontiguousarray(t.numpy())
    return np.ascontiguousarray(np.asarray(t))


def save_tensors(path, tensors, metadata=None):
    """Saves a dict of arrays with safetensors.numpy (bools stored as uint8)."""
    from safetensors.numpy import save_file
    out = {}
    for k, v in tensors.items():
        a = to_np(v)
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        out[k] = np.ascontiguousarray(a)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(out, path, metadata=metadata)


def numpy_to_uint8(images):
    """diffusers' numpy_to_pil conversion: (x * 255).round().astype(uint8), x in [0, 1], NHWC."""
    return (images * 255).round().astype("uint8")
