#!/usr/bin/env python3
"""Goldens for the I/O tests (tests/goldens/io/). Run from the repo root with the pinned stack
(tests/reference/requirements.txt):  python tests/reference/make_io_goldens.py

- preprocess.json + preprocess.safetensors: CLIPImageProcessor (transformers 4.46.3, Pillow 11.0)
  on deterministic images. To stay small, each case stores the uint8 image after resize + crop
  and one lookup table lut[c, v] = pixel value of channel c for uint8 value v; the script asserts
  that the processor's pixel_values equal lut[crop] exactly, so the pair is the processor output.
- safetensors_ref.safetensors: written by the safetensors Python library (layout reference).
- tiny.ckpt (+ tiny_expected.safetensors, the same tensors), tiny_p4.ckpt, noncontig.ckpt,
  evil_system.ckpt, legacy.ckpt: torch.save checkpoints (and hostile or unsupported ones) for the
  restricted unpickler. Everything but legacy.ckpt (random magic) regenerates byte-identically.
- deflated.zip: a zip with stored and deflated entries, made by Python's zipfile.
- png_*.png + png_expected.safetensors + png_text.json: Pillow-written PNGs of each color type
  with their RGB pixels and text chunks (tEXt, iTXt, zTXt).
"""
import collections
import json
import os
import zipfile

import numpy as np
import PIL
import PIL.Image
import torch
import transformers
from safetensors.torch import save_file
from transformers import CLIPImageProcessor

OUT = os.path.join("tests", "goldens", "io")


# --- deterministic images, mirrored in tests/unit/test_image_preprocess.cpp ------------------
def hash_u8(w, h):
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64),
                          np.arange(3, dtype=np.uint64), indexing="ij")
    m = np.uint64(0xFFFFFFFF)
    v = ((x * np.uint64(73856093)) ^ (y * np.uint64(19349663)) ^ (c * np.uint64(83492791))) & m
    v ^= v >> np.uint64(13)
    v = (v * np.uint64(0x5BD1E995)) & m
    v ^= v >> np.uint64(15)
    return (v & np.uint64(255)).astype(np.uint8)


def gradient_u8(w, h):
    y, x = np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64), indexing="ij")
    r = x * 255 // max(w - 1, 1)
    g = y * 255 // max(h - 1, 1)
    b = (x + y) * 255 // max(w + h - 2, 1)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def mixed_u8(w, h):  # smooth gradient plus small noise
    return np.minimum(gradient_u8(w, h).astype(np.int64) + (hash_u8(w, h) & 31), 255).astype(np.uint8)


PATTERNS = {"hash": hash_u8, "gradient": gradient_u8, "mixed": mixed_u8}

# The SD v1.x feature_extractor/preprocessor_config.json.
SD_CONFIG = {
    "crop_size": 224, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
    "do_resize": True, "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224,
}

CASES = [  # name, width, height, pattern, config overrides
    ("hash64", 64, 64, "hash", {}),
    ("hash512", 512, 512, "hash", {}),
    ("mixed300x200", 300, 200, "mixed", {}),
    ("mixed200x301_bilinear", 200, 301, "mixed", {"resample": 2}),
    ("mixed150x100_pad", 150, 100, "mixed", {"do_resize": False}),
]


def processor(overrides):
    cfg = dict(SD_CONFIG, **overrides)
    return cfg, CLIPImageProcessor(**{k: v for k, v in cfg.items() if k != "feature_extractor_type"})


def pil_resize_crop(img, cfg):
    """The processor's uint8 path spelled out: PIL resize (shortest edge), center crop with zero pad."""
    h, w = img.shape[:2]
    if cfg["do_resize"]:
        s = cfg["size"]
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(s * long / short)
        oh, ow = (new_long, s) if w <= h else (s, new_long)
        img = np.array(PIL.Image.fromarray(img).resize((ow, oh), resample=cfg["resample"]))
        h, w = oh, ow
    c = cfg["crop_size"]
    top, left = (h - c) // 2, (w - c) // 2
    out = np.zeros((c, c, 3), np.uint8)
    for yy in range(c):
        for xx in range(c):
            sy, sx = top + yy, left + xx
            if 0 <= sy < h and 0 <= sx < w:
                out[yy, xx] = img[sy, sx]
    return out


def make_preprocess():
    cfg, proc = processor({"do_resize": False, "do_center_crop": False})
    # A 16 x 16 image holding every value (a 1-pixel-high one would be read as channels-first).
    ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    lut = proc(images=PIL.Image.fromarray(ramp), return_tensors="np")["pixel_values"][0].reshape(3, 256)
    lut = np.ascontiguousarray(lut.astype(np.float32))  # [3, 256]
    tensors = {"lut": torch.from_numpy(lut)}
    cases = []
    for name, w, h, pattern, overrides in CASES:
        cfg, proc = processor(overrides)
        img = PATTERNS[pattern](w, h)
        pv = proc(images=PIL.Image.fromarray(img), return_tensors="np")["pixel_values"][0]  # CHW
        crop = pil_resize_crop(img, cfg)
        expect = np.stack([lut[c][crop[..., c]] for c in range(3)], axis=0)
        assert pv.dtype == np.float32 and np.array_equal(pv, expect), name
        tensors[name] = torch.from_numpy(crop)
        cases.append({"name": name, "width": w, "height": h, "pattern": pattern, "config": cfg})
    save_file(tensors, os.path.join(OUT, "preprocess.safetensors"),
              metadata={"made_by": "transformers %s, pillow %s" % (transformers.__version__, PIL.__version__)})
    with open(os.path.join(OUT, "preprocess.json"), "w") as f:
        json.dump({"lut_config": processor({"do_resize": False, "do_center_crop": False})[0],
                   "cases": cases}, f, indent=1)


def safetensors_reference_tensors():
    """Every dtype, odd sizes; mirrored in tests/unit/test_safetensors.cpp (value = index pattern)."""
    def ramp(n, dtype):
        return (torch.arange(n) % 7).to(dtype)
    return {
        "f32": ramp(6, torch.float32).reshape(2, 3), "f16": ramp(5, torch.float16),
        "bf16": ramp(3, torch.bfloat16), "f64": ramp(2, torch.float64), "i64": ramp(4, torch.int64),
        "i32": ramp(3, torch.int32), "i16": ramp(3, torch.int16), "i8": ramp(5, torch.int8),
        "u8": ramp(7, torch.uint8), "bool": ramp(3, torch.bool), "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(2.5),
    }


def make_safetensors():
    save_file(safetensors_reference_tensors(), os.path.join(OUT, "safetensors_ref.safetensors"),
              metadata={"format": "pt"})


def checkpoint_state_dict():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    base = torch.arange(12, dtype=torch.float32) / 4
    # A real module state dict carries a _metadata attribute, pickled with BUILD.
    sd = torch.nn.Sequential(torch.nn.Linear(4, 3)).state_dict()
    assert hasattr(sd, "_metadata")
    sd["model.a.weight"] = torch.randn(3, 4, generator=g)
    sd["model.b.half"] = torch.randn(2, 3, generator=g).half()
    sd["model.c.bf16"] = torch.randn(5, generator=g).bfloat16()
    sd["shared.first"] = base[2:6]            # one storage, two views at offsets 2 and 6
    sd["shared.second"] = base[6:12].view(2, 3)
    sd["int64"] = torch.arange(5)
    sd["bool"] = torch.tensor([True, False, True])
    sd["param"] = torch.nn.Parameter(torch.full((2, 2), 0.5))
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["unit_dim"] = torch.randn(4, 1, generator=g).t()  # [1, 4], stride (1, 1): still contiguous
    return sd


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def make_checkpoints():
    sd = checkpoint_state_dict()
    # A Lightning-style checkpoint: weights under "state_dict" next to training counters (a numpy
    # scalar pickles through numpy.core.multiarray.scalar, numpy.dtype and _codecs.encode).
    torch.save({"state_dict": sd, "global_step": np.int64(7), "epoch": 1, "lr": 0.5},
               os.path.join(OUT, "tiny.ckpt"))
    # Protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE) and a flat state dict.
    torch.save(sd, os.path.join(OUT, "tiny_p4.ckpt"), pickle_protocol=4)
    save_file({k: v.detach().contiguous().clone() for k, v in sd.items()},
              os.path.join(OUT, "tiny_expected.safetensors"))
    torch.save({"t": torch.arange(12.0).reshape(3, 4).t()}, os.path.join(OUT, "noncontig.ckpt"))
    torch.save({"state_dict": {"w": torch.ones(2)}, "x": Evil()}, os.path.join(OUT, "evil_system.ckpt"))
    torch.save({"w": torch.ones(2)}, os.path.join(OUT, "legacy.ckpt"), _use_new_zipfile_serialization=False)


def make_zip():
    def info(name, method):  # fixed timestamps keep the file reproducible
        return zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), method
    with zipfile.ZipFile(os.path.join(OUT, "deflated.zip"), "w") as z:
        for (zi, method), data in [(info("dir/", zipfile.ZIP_STORED), b""),
                                   (info("dir/stored.txt", zipfile.ZIP_STORED), b"hello, stored entry\n"),
                                   (info("dir/deflated.bin", zipfile.ZIP_DEFLATED),
                                    bytes(i * i % 251 for i in range(100000)))]:
            z.writestr(zi, data, compress_type=method)
        z.comment = b"made by make_io_goldens.py"


PNG_TEXT = [("parameters", "a photo of a cat\nSteps: 20, Sampler: Euler a, Seed: 42"),
            ("latin1", "caf\u00e9 na\u00efve"), ("unicode", "\u732b\u306e\u5199\u771f \U0001F431"),
            ("zipped", "z" * 300)]


def make_png():
    """PNGs of every color type written by Pillow; expected pixels are Pillow's convert("RGB")."""
    from PIL import PngImagePlugin
    rgb = mixed_u8(7, 5)
    gray = rgb[..., 0]
    images = {
        "gray": PIL.Image.fromarray(gray, "L"),
        "gray1": PIL.Image.fromarray(gray > 100).convert("1"),
        "la": PIL.Image.fromarray(np.stack([gray, rgb[..., 1]], -1), "LA"),
        "rgba": PIL.Image.fromarray(np.concatenate([rgb, rgb[..., :1]], -1), "RGBA"),
        "palette": PIL.Image.fromarray(rgb).quantize(5),
        "text": PIL.Image.fromarray(rgb),
    }
    images["palette"].info["transparency"] = 2
    expected = {}
    for name, im in images.items():
        path = os.path.join(OUT, "png_%s.png" % name)
        info = PngImagePlugin.PngInfo()
        if name == "text":
            for k, v in PNG_TEXT:
                info.add_text(k, v, zip=(k == "zipped"))
        kwargs = {"transparency": 2} if name == "palette" else {}
        im.save(path, pnginfo=info, **kwargs)
        back = PIL.Image.open(path)
        if name == "text":
            assert back.text == dict(PNG_TEXT), back.text
        expected[name] = torch.from_numpy(np.array(back.convert("RGB")))
    # 16-bit gray: Pillow clips "I;16" to 255 when converting to RGB; we keep the high byte like
    # its 16-bit RGB path does, so the expectation here is computed, not Pillow's.
    g16 = (gray.astype(np.uint16) * 257 + 3)
    PIL.Image.fromarray(g16, "I;16").save(os.path.join(OUT, "png_gray16.png"))
    assert np.array_equal(np.array(PIL.Image.open(os.path.join(OUT, "png_gray16.png"))), g16)
    expected["gray16"] = torch.from_numpy(np.repeat((g16 >> 8).astype(np.uint8)[..., None], 3, axis=2))
    save_file(expected, os.path.join(OUT, "png_expected.safetensors"))
    with open(os.path.join(OUT, "png_text.json"), "w") as f:
        json.dump(PNG_TEXT, f, indent=1, ensure_ascii=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    make_preprocess()
    make_safetensors()
    make_checkpoints()
    make_zip()
    make_png()


if __name__ == "__main__":
    main()
