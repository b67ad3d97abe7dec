#!/usr/bin/env python3
"""PyTorch / diffusers CPU baseline for the sdpal benchmarks.

    python bench/pytorch_reference.py MODEL_DIR [--threads N] [--height 512] [--width 512]
        [--runs 3] [--warmup 1] [--bf16] [--json OUT] [--dump-unet FILE] [--seed 0]

Loads a diffusers Stable Diffusion v1 folder in float32 and times, on the CPU, the stages sdpal
implements: text encoder (batch 2: "" and the prompt, as classifier-free guidance needs), one CFG
UNet step (batch 2, plus the scheduler update), VAE decode (batch 1), safety checker (feature
extractor + checker on one image). Each stage runs --warmup times untimed, then --runs times;
the median is reported. --bf16 runs the stages under torch.autocast("cpu", bfloat16).
Prints a JSON report (also written to --json OUT): seconds per stage, peak RSS, load time, versions.

--dump-unet FILE saves one float32 UNet evaluation (seeded inputs, the model's output) as
safetensors, so sdpal can be checked against PyTorch on a full-size model:
  input_ids [2, 77] int64          tokenizer(["", prompt]) padded to 77
  encoder_hidden_states [2, 77, C]  text_encoder(input_ids)[0]
  sample [2, 4, H/8, W/8] f32       torch.randn(generator=manual_seed(seed)) * init_noise_sigma, NCHW
  timestep [1] int64               the scheduler's first timestep for --steps (981 for 50 PNDM steps)
  noise_pred [2, 4, H/8, W/8] f32   unet(sample, timestep, encoder_hidden_states).sample, NCHW
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs_s": times}


def main():
    ap = argparse.ArgumentParser(description="PyTorch CPU baseline for sdpal")
    ap.add_argument("model_dir")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=50, help="scheduler steps (picks the timestep used)")
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--prompt", default="a photograph of an astronaut riding a horse")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    ap.add_argument("--skip-safety", action="store_true")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--dump-unet", metavar="FILE")
    args = ap.parse_args()

    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    import diffusers
    import transformers
    from diffusers import StableDiffusionPipeline
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()

    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(args.model_dir, torch_dtype=torch.float32)
    load_s = time.perf_counter() - t0
    rss_after_load = peak_rss_mib()
    for m in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.safety_checker):
        if m is not None:
            m.eval()

    h8, w8 = args.height // pipe.vae_scale_factor, args.width // pipe.vae_scale_factor
    ids = pipe.tokenizer(["", args.prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    sched = pipe.scheduler
    sched.set_timesteps(args.steps)
    t = sched.timesteps[0]
    gen = torch.Generator().manual_seed(args.seed)
    latents = torch.randn((1, 4, h8, w8), generator=gen) * sched.init_noise_sigma

    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.bf16 else torch.no_grad

    def run_text():
        with torch.no_grad(), ctx():
            return pipe.text_encoder(ids)[0]

    ehs = run_text().float()

    def run_unet_step():
        with torch.no_grad(), ctx():
            x = torch.cat([latents] * 2)
            x = sched.scale_model_input(x, t)
            noise = pipe.unet(x, t, encoder_hidden_states=ehs).sample.float()
            uncond, cond = noise.chunk(2)
            noise = uncond + args.guidance * (cond - uncond)
            # the scheduler update (PNDM keeps state: reset it so every run does the same work)
            sched.set_timesteps(args.steps)
            return sched.step(noise, t, latents).prev_sample

    def run_vae():
        with torch.no_grad(), ctx():
            return pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample

    image = (run_vae().float() / 2 + 0.5).clamp(0, 1)
    pil = pipe.image_processor.numpy_to_pil(image.permute(0, 2, 3, 1).numpy())

    def run_safety():
        with torch.no_grad(), ctx():
            px = pipe.feature_extractor(pil, return_tensors="pt").pixel_values
            return pipe.safety_checker(images=[np.zeros((1,))], clip_input=px)

    report = {
        "engine": "pytorch",
        "model_dir": os.path.abspath(args.model_dir),
        "threads": args.threads,
        "height": args.height,
        "width": args.width,
        "dtype": "bf16-autocast" if args.bf16 else "fp32",
        "runs": args.runs,
        "warmup": args.warmup,
        "timestep": int(t),
        "load_s": load_s,
        "stages": {},
    }
    report["stages"]["text_encoder_b2"] = timed(run_text, args.runs, args.warmup)
    report["stages"]["unet_cfg_step_b2"] = timed(run_unet_step, args.runs, args.warmup)
    report["stages"]["vae_decode_b1"] = timed(run_vae, args.runs, args.warmup)
    if pipe.safety_checker is not None and pipe.feature_extractor is not None and not args.skip_safety:
        report["stages"]["safety_checker_b1"] = timed(run_safety, args.runs, args.warmup)

    if args.dump_unet:
        from safetensors.torch import save_file
        sample = torch.cat([latents] * 2)
        sample = sched.scale_model_input(sample, t).contiguous()
        with torch.no_grad():
            ehs32 = pipe.text_encoder(ids)[0]
            out = pipe.unet(sample, t, encoder_hidden_states=ehs32).sample
        save_file({
            "input_ids": ids.to(torch.int64).contiguous(),
            "encoder_hidden_states": ehs32.contiguous(),
            "sample": sample,
            "timestep": torch.tensor([int(t)], dtype=torch.int64),
            "noise_pred": out.contiguous(),
        }, args.dump_unet, metadata={"prompt": args.prompt, "seed": str(args.seed),
                                     "model_dir": os.path.abspath(args.model_dir), "layout": "NCHW"})
        report["dump_unet"] = os.path.abspath(args.dump_unet)

    report["peak_rss_mib"] = peak_rss_mib()
    report["rss_after_load_mib"] = rss_after_load
    report["versions"] = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                          "transformers": transformers.__version__, "python": platform.python_version(),
                          "mkldnn": torch.backends.mkldnn.is_available()}
    report["cpu"] = platform.processor() or platform.machine()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
