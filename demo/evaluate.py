#!/usr/bin/env python3
"""Evaluates sdpal's demo model: does it draw what the prompt says?

The pictures are made by sdpal itself (C++, not Python) and judged by sdpal's shape judge
(src/eval/shape_judge.h): this script runs the GoogleTest `test_demo_model_eval` (which reads
demo/prompts_eval.txt, generates every prompt with the C++ pipeline, judges each picture and checks the bars)
with the chosen settings, then summarises its report: accuracy per attribute for seen and held-out
combinations, the most common confusions, and a contact sheet of all pictures.

    python demo/evaluate.py [--model models/sdpal-shapes-64] [--build build] [--out /tmp/sdpal-demo-eval]
                            [--steps 15] [--images 2] [--seeds 1] [--cfg 7.5] [--limit N]
                            [--threads N] [--variant main|bf16|6bit|4bit] [--check-diffusers N]

--check-diffusers N additionally generates the first N prompts with the `sdpal generate` command and with
diffusers' StableDiffusionPipeline (same seed, scheduler, steps) and reports the largest pixel difference.
"""
import argparse
import collections
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def read_prompts():
    rows = []
    with open(os.path.join(HERE, "prompts_eval.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            split, color, shape, size, position, bg, prompt = line.rstrip("\n").split("\t")
            rows.append(dict(split=split, color=color, shape=shape, size=size, position=position, background=bg,
                             prompt=prompt))
    return rows


# --variant: the test that evaluates it (tests/unit/test_demo_model_eval.cpp) and where it keeps its pictures.
VARIANT_TESTS = {"main": "DrawsWhatThePromptSays", "bf16": "Bf16ComputeDrawsWhatThePromptSays",
                 "6bit": "Palettized6BitDrawsWhatThePromptSays", "4bit": "Palettized4BitDrawsWhatThePromptSays"}


def variant_out(a):
    return a.out if a.variant == "main" else os.path.join(a.out, a.variant)


def run_eval(a):
    exe = os.path.join(a.build, "test_demo_model_eval")
    if not os.path.exists(exe):
        sys.exit(f"{exe} not found: build it (ninja -C {a.build} test_demo_model_eval)")
    env = dict(os.environ, SDPAL_DEMO_MODEL=os.path.abspath(a.model), SDPAL_DEMO_EVAL_STEPS=str(a.steps),
               SDPAL_DEMO_EVAL_IMAGES=str(a.images), SDPAL_DEMO_EVAL_SEEDS=str(a.seeds),
               SDPAL_DEMO_EVAL_CFG=str(a.cfg), SDPAL_DEMO_EVAL_LIMIT=str(a.limit or 0),
               SDPAL_DEMO_EVAL_OUT=os.path.abspath(a.out), SDPAL_DEMO_EVAL_THREADS=str(a.threads))
    r = subprocess.run([exe, "--gtest_filter=DemoModelEval." + VARIANT_TESTS[a.variant]], env=env, cwd=REPO)
    return r.returncode


def summarise(out):
    with open(os.path.join(out, "report.json")) as f:
        rep = json.load(f)
    print(f"\n{rep['prompts']} prompts, {rep['seeds']} seed(s) x {rep['images_per_prompt']} image(s), "
          f"{rep['steps']} {rep['sampler']} steps, cfg {rep['guidance']}, {rep['seconds']:.0f} s")
    print(f"{'split':22s} {'images':>6s} {'color':>7s} {'bg':>7s} {'pos':>7s} {'shape':>7s} {'size':>7s} {'all4':>7s}")
    for name, t in sorted(rep["accuracy"].items()):
        print(f"{name:22s} {t['images']:6d} " + " ".join(f"{t[k]:6.1f}%" for k in
                                                       ("color", "background", "position", "shape", "size", "all4")))
    for attr in ("color", "background", "position", "shape"):
        conf = collections.Counter((r["want"][attr], r["got"][attr]) for r in rep["images"]
                                   if r["want"][attr] != r["got"][attr])
        if conf:
            print(f"most common {attr} errors (want -> got): " +
                  ", ".join(f"{w} -> {g or 'nothing'} x{n}" for (w, g), n in conf.most_common(6)))
    return rep


def contact_sheet(out, rep, per_row=16):
    from PIL import Image, ImageDraw
    recs = [r for r in rep["images"] if "file" in r]
    if not recs:
        return
    tile = 66
    rows = (len(recs) + per_row - 1) // per_row
    sheet = Image.new("RGB", (per_row * tile, rows * tile), (0, 0, 0))
    d = ImageDraw.Draw(sheet)
    for i, r in enumerate(recs):
        im = Image.open(os.path.join(out, r["file"])).convert("RGB")
        x, y = (i % per_row) * tile, (i // per_row) * tile
        sheet.paste(im, (x + 1, y + 1))
        ok = all(r["want"][k] == r["got"][k] for k in ("color", "background", "position", "shape"))
        d.rectangle([x, y, x + tile - 1, y + tile - 1], outline=(0, 200, 0) if ok else (230, 0, 0))
    path = os.path.join(out, "sheet.png")
    sheet.save(path)
    print("contact sheet (green frame: all four attributes right):", path)


def check_diffusers(a, n):
    """The first n prompts through `sdpal generate --precision f32` and diffusers; both PNDM (the model's
    scheduler)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from PIL import Image
    torch.set_num_threads(1)
    exe = os.path.join(a.build, "sdpal")
    pipe = StableDiffusionPipeline.from_pretrained(a.model)
    pipe.set_progress_bar_config(disable=True)
    worst = 0
    for i, p in enumerate(read_prompts()[:n]):
        png = os.path.join(a.out, f"cli_{i:03d}.png")
        # fp32: the reference-exact mode (the foundation's tolerance); bf16, the default, differs by a few levels.
        cmd = [exe, "generate", "-m", a.model, "-p", p["prompt"], "--seed", str(i), "--steps", str(a.steps),
               "--precision", "f32", "-o", png]
        subprocess.run(cmd + ["-t", str(a.threads)] if a.threads else cmd, check=True,
                       stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        got = np.asarray(Image.open(png).convert("RGB")).astype(int)
        ref = pipe(p["prompt"], num_inference_steps=a.steps, guidance_scale=7.5, output_type="np",
                   generator=torch.Generator().manual_seed(i)).images[0]
        ref = np.round(ref * 255).astype(int)
        diff = np.abs(got - ref)
        worst = max(worst, int(diff.max()))
        print(f"sdpal vs diffusers, prompt {i}: max |diff| {diff.max()}, values differing {(diff > 0).mean():.4%}")
    print(f"largest difference over {n} prompts: {worst}")
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "sdpal-shapes-64"))
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--out", default="/tmp/sdpal-demo-eval")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="0: all cores (fastest on an idle machine)")
    ap.add_argument("--check-diffusers", type=int, default=0, metavar="N")
    ap.add_argument("--variant", default="main", choices=sorted(VARIANT_TESTS),
                    help="main: the model as given, f32 compute, --images per prompt; bf16: bf16 compute; 6bit, "
                         "4bit: palettized by `sdpal convert --palettize N` first, bf16 compute (these make one "
                         "image per prompt, into OUT/<variant>/)")
    ap.add_argument("--no-run", action="store_true", help="only summarise an existing OUT/report.json")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    rc = 0 if a.no_run else run_eval(a)
    rep = summarise(variant_out(a))
    contact_sheet(variant_out(a), rep)
    if a.check_diffusers:
        if check_diffusers(a, a.check_diffusers) > 1:
            rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
