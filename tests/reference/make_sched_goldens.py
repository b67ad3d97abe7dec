"""Scheduler goldens: diffusers 0.31.0 timesteps, sigmas and short trajectories.

Each case builds the scheduler a StableDiffusionPipeline would use for a model whose
scheduler_config.json is `config` (SD v1.4's PNDM config unless stated), then runs it on a
[1, 4, 8, 8] sample with a synthetic model,

    model(x, t) = 0.1 * x + sin(t / 100) * FIXED      (float32, t as a Python float)

and records every model input and intermediate sample. Noise for Euler a / DDIM eta > 0 at step i
is NOISE[i] (torch.randn with seed 1000 + i), exactly what a generator seeded that way feeds
diffusers' randn_tensor.

Writes tests/goldens/sched/index.json (cases, timesteps, sigmas, init_noise_sigma, alphas_cumprod
checks), common.safetensors (X0, FIXED, NOISE, alphas_cumprod_*) and trajectories.safetensors
("<case>.samples" [steps + 1, 1, 4, 8, 8], samples[0] = X0 * init_noise_sigma, and for the cases
named in INPUT_CASES "<case>.model_inputs" [steps, 1, 4, 8, 8]; for ADD_NOISE_CASES
"<case>.add_noise_3" = add_noise(FIXED, X0, timesteps[3])).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import diffusers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler)
from diffusers.configuration_utils import FrozenDict
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(__file__))
from refcommon import REPO, SD14_SCHEDULER_CONFIG  # noqa: E402

OUT = os.path.join(REPO, "tests", "goldens", "sched")
SHAPE = (1, 4, 8, 8)
MAX_NOISE_STEPS = 20
# Cases that also record add_noise at step 3.
ADD_NOISE_CASES = ("default_10", "ddim_10", "euler_10", "euler_a_10", "dpmpp_2m_10", "dpmpp_2m_karras_10")
# Cases whose scaled model inputs are stored too (the others' follow from samples and sigmas).
INPUT_CASES = ("euler_10", "euler_a_10", "euler_leading_7", "euler_a_leading_7", "euler_vpred_6", "ddim_10")

SAMPLERS = {
    "pndm": PNDMScheduler,
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
}


def with_keys(base, **changes):
    return dict(base, **changes)


def pipeline_scheduler(model_config, sampler, karras):
    """The model's scheduler as StableDiffusionPipeline.__init__ fixes it, or
    `Sampler.from_config(pipe.scheduler.config)`."""
    base_cls = getattr(diffusers, model_config["_class_name"])
    sched = base_cls.from_config(model_config)
    # StableDiffusionPipeline.__init__ (diffusers 0.31.0): outdated-config fixes.
    if hasattr(sched.config, "steps_offset") and sched.config.steps_offset != 1:
        new_config = dict(sched.config)
        new_config["steps_offset"] = 1
        sched._internal_dict = FrozenDict(new_config)
    if hasattr(sched.config, "clip_sample") and sched.config.clip_sample is True:
        new_config = dict(sched.config)
        new_config["clip_sample"] = False
        sched._internal_dict = FrozenDict(new_config)
    cls = SAMPLERS[sampler] if sampler != "default" else base_cls
    kwargs = {"use_karras_sigmas": True} if karras else {}
    if cls is base_cls and not kwargs:
        return sched
    return cls.from_config(sched.config, **kwargs)


def model_fn(x, t, fixed):
    return 0.1 * x + math.sin(float(t) / 100.0) * fixed


def run_case(case, x0, fixed, noise_bank):
    sched = pipeline_scheduler(case["config"], case["sampler"], case.get("karras", False))
    sched.set_timesteps(case["steps"])
    eta = case.get("eta", 0.0)
    ancestral = isinstance(sched, EulerAncestralDiscreteScheduler)
    uses_noise = ancestral or (isinstance(sched, DDIMScheduler) and eta > 0)
    sigma0 = sched.init_noise_sigma
    x = x0 * sigma0
    samples, inputs = [x.numpy().copy()], []
    for i, t in enumerate(sched.timesteps):
        inp = sched.scale_model_input(x, t)
        inputs.append(inp.numpy().copy())
        eps = model_fn(inp, t, fixed)
        if isinstance(sched, DDIMScheduler):
            kw = {"eta": eta, "variance_noise": noise_bank[i] if eta > 0 else None}
        elif ancestral:
            kw = {"generator": torch.Generator().manual_seed(1000 + i)}
        else:
            kw = {}
        x = sched.step(eps, t, x, **kw).prev_sample
        samples.append(x.numpy().copy())
    timesteps = sched.timesteps.tolist()
    sigmas = sched.sigmas.tolist() if hasattr(sched, "sigmas") and not isinstance(
        sched, (PNDMScheduler, DDIMScheduler)) else None
    entry = {
        "name": case["name"],
        "config": case["config"],
        "sampler": case["sampler"],
        "karras": case.get("karras", False),
        "eta": eta,
        "steps": case["steps"],
        "class_name": type(sched).__name__,
        "timesteps": timesteps,
        "sigmas": sigmas,
        "init_noise_sigma": float(sigma0),
        "uses_noise": uses_noise,
    }
    name = case["name"]
    tensors = {name + ".samples": np.stack(samples).astype(np.float32)}
    if name in INPUT_CASES:
        tensors[name + ".model_inputs"] = np.stack(inputs).astype(np.float32)
    if name in ADD_NOISE_CASES:
        # img2img's add_noise(original=FIXED, noise=X0) at the timestep of step 3, on a fresh scheduler.
        fresh = pipeline_scheduler(case["config"], case["sampler"], case.get("karras", False))
        fresh.set_timesteps(case["steps"])
        noisy = fresh.add_noise(fixed, x0, fresh.timesteps[3:4])
        tensors[name + ".add_noise_3"] = noisy.numpy().astype(np.float32)
    return entry, tensors


def cases():
    sd = SD14_SCHEDULER_CONFIG
    c = []

    def add(name, sampler, steps, config=sd, **kw):
        c.append(dict(name=name, sampler=sampler, steps=steps, config=config, **kw))

    # SD v1.4 as shipped: PNDM (PLMS), N steps -> N + 1 UNet calls.
    for n in (1, 2, 10, 50):
        add(f"default_{n}", "default", n)
    add("pndm_3", "pndm", 3)
    for n in (1, 10):
        add(f"ddim_{n}", "ddim", n)
    add("ddim_eta05_10", "ddim", 10, eta=0.5)
    add("ddim_eta1_2", "ddim", 2, eta=1.0)
    for n in (1, 2, 10, 20):
        add(f"euler_{n}", "euler", n)
    for n in (1, 10):
        add(f"euler_a_{n}", "euler_a", n)
    for n in (1, 2, 10, 20):
        add(f"dpmpp_2m_{n}", "dpmpp_2m", n)
    for n in (2, 10, 20):
        add(f"dpmpp_2m_karras_{n}", "dpmpp_2m", n, karras=True)
    add("euler_karras_10", "euler", 10, karras=True)

    # Timestep spacings.
    for sp in ("leading", "trailing", "linspace"):
        cfg = with_keys(sd, timestep_spacing=sp)
        for s in ("pndm", "ddim", "euler", "euler_a", "dpmpp_2m"):
            add(f"{s}_{sp}_7", s, 7, config=cfg)

    # DPM++ options.
    add("dpmpp_sigma_min_10", "dpmpp_2m", 10, config=with_keys(sd, final_sigmas_type="sigma_min"))
    add("dpmpp_sigma_min_20", "dpmpp_2m", 20, config=with_keys(sd, final_sigmas_type="sigma_min"))
    add("dpmpp_no_lof_sigma_min_10", "dpmpp_2m", 10,
        config=with_keys(sd, final_sigmas_type="sigma_min", lower_order_final=False))
    add("dpmpp_order3_10", "dpmpp_2m", 10, config=with_keys(sd, solver_order=3))
    add("dpmpp_order3_sigma_min_20", "dpmpp_2m", 20,
        config=with_keys(sd, solver_order=3, final_sigmas_type="sigma_min"))
    add("dpmpp_order1_5", "dpmpp_2m", 5, config=with_keys(sd, solver_order=1))
    add("dpmpp_heun_10", "dpmpp_2m", 10, config=with_keys(sd, solver_type="heun"))
    add("dpmpp_karras_sigma_range_5", "dpmpp_2m", 5, karras=True, config=with_keys(sd, sigma_min=0.1, sigma_max=10.0))
    add("euler_sigma_min_10", "euler", 10, config=with_keys(sd, final_sigmas_type="sigma_min"))

    # Betas and prediction types (SD 2.x style).
    add("ddim_linear_10", "ddim", 10, config=with_keys(sd, beta_schedule="linear", beta_start=0.0001, beta_end=0.02))
    add("ddim_cosine_10", "ddim", 10, config=with_keys(sd, beta_schedule="squaredcos_cap_v2"))
    add("ddim_alpha_one_10", "ddim", 10, config=with_keys(sd, set_alpha_to_one=True))
    vpred = with_keys(sd, prediction_type="v_prediction")
    for s in ("pndm", "ddim", "euler", "euler_a", "dpmpp_2m"):
        add(f"{s}_vpred_6", s, 6, config=vpred)
    zsnr = with_keys(sd, prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing")
    for s in ("ddim", "euler", "euler_a", "dpmpp_2m"):
        add(f"{s}_zero_snr_6", s, 6, config=zsnr)
    add("ddim_sample_pred_6", "ddim", 6, config=with_keys(sd, prediction_type="sample"))

    # from_config semantics: keys the file lacks take the *target* class's defaults, and the
    # pipeline's fixes (steps_offset -> 1, clip_sample -> false) reach a swapped scheduler only
    # for keys the file has.
    bare = {"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
            "beta_end": 0.012, "skip_prk_steps": True}
    add("bare_default_10", "default", 10, config=bare)
    add("bare_ddim_10", "ddim", 10, config=bare)
    add("clip_true_ddim_10", "ddim", 10, config=with_keys(sd, clip_sample=True, steps_offset=0))
    ddim_model = {"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                  "beta_end": 0.012}
    add("ddim_model_default_10", "default", 10, config=ddim_model)
    add("ddim_model_euler_10", "euler", 10, config=ddim_model)
    # PNDM.from_config of a config without skip_prk_steps: Runge-Kutta warm-up (N + 9 calls).
    add("ddim_model_pndm_prk_10", "pndm", 10, config=ddim_model)
    add("pndm_prk_4", "default", 4, config=with_keys(sd, skip_prk_steps=False))
    add("pndm_prk_vpred_6", "default", 6, config=with_keys(sd, skip_prk_steps=False, prediction_type="v_prediction"))
    add("dpm_model_default_10", "default", 10,
        config={"_class_name": "DPMSolverMultistepScheduler", "beta_schedule": "scaled_linear",
                "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "use_karras_sigmas": True})
    return c


def alphas_checks():
    out = []
    for name, cfg in [
        ("scaled_linear", SD14_SCHEDULER_CONFIG),
        ("linear", {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}),
        ("squaredcos_cap_v2", {"beta_schedule": "squaredcos_cap_v2"}),
        ("zero_snr", dict(SD14_SCHEDULER_CONFIG, rescale_betas_zero_snr=True)),
    ]:
        s = DDIMScheduler.from_config(cfg)
        out.append((name, cfg, s.alphas_cumprod.numpy().astype(np.float32)))
    return out


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    fixed = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    noise = torch.stack([torch.randn(SHAPE, generator=torch.Generator().manual_seed(1000 + i))
                         for i in range(MAX_NOISE_STEPS)])
    common = {"X0": x0.numpy(), "FIXED": fixed.numpy(), "NOISE": noise.numpy()}
    index = {"generator": "tests/reference/make_sched_goldens.py", "diffusers": diffusers.__version__,
             "torch": torch.__version__, "numpy": np.__version__, "cases": [], "alphas_cumprod": []}
    for name, cfg, ac in alphas_checks():
        common["alphas_cumprod_" + name] = ac
        index["alphas_cumprod"].append({"name": name, "config": cfg, "tensor": "alphas_cumprod_" + name})
    save_file(common, os.path.join(OUT, "common.safetensors"))
    trajectories = {}
    for case in cases():
        entry, tensors = run_case(case, x0, fixed, noise)
        assert not entry["uses_noise"] or len(entry["timesteps"]) <= MAX_NOISE_STEPS
        trajectories.update(tensors)
        index["cases"].append(entry)
    save_file(trajectories, os.path.join(OUT, "trajectories.safetensors"))
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(f"wrote {len(index['cases'])} scheduler cases to {OUT}")


if __name__ == "__main__":
    main()
