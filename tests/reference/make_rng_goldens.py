#!/usr/bin/env python3
"""Goldens for src/rng: torch.randn on the CPU (both of torch's float samplers) and numpy's legacy
RandomState.randn. Deterministic; run from anywhere:

    /work/venv-ref/bin/python tests/reference/make_rng_goldens.py

torch picks its sampler from the CPU capability, which can only be forced before torch is
imported, so each path is made in a child process:
    ATEN_CPU_CAPABILITY=avx2    -> normal_fill_AVX2 (what every AVX2/AVX512 x86-64 runs) -> "avx2"
    ATEN_CPU_CAPABILITY=default -> normal_fill (libm float log/sin/cos)                 -> "scalar"

Writes tests/goldens/rng/{torch_randn,numpy_randn}.{safetensors,json}. Each JSON case lists a
seed and the successive draws from ONE generator; "reseed": true means manual_seed(seed) again
right before that draw.
"""
import json
import os
import subprocess
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "goldens", "rng")

LATENT = [1, 4, 64, 64]
SINGLE_SHAPES = [[2, 4, 16, 16], [1, 4, 8, 8], [3], [15], [16], [17], [33]]
SEQUENCES = {
    "seq3": [[1, 4, 16, 16]] * 3,          # initial latents then per-step noise
    "small_then_big": [[5], [100]],
    "cache_across_big": [[3], [100], [3]],  # the cached sine of a small draw survives a big draw
}
TORCH_SEEDS = [0, 1, 42, 1234, 2**32 + 5, 2**63 - 1, -1, -123456789]
SCALAR_SEEDS = [0, 42, 2**63 - 1]
RAW_SEEDS = [0, 2**32 + 5]
RAW_COUNT = 700  # > 624 / 2: crosses an mt19937 regeneration
NUMPY_SEEDS = [0, 1, 42, 1234, 2**32 - 1]


def write_json(path, doc):
    """One case per line: small, diffable."""
    lines = []
    for key in sorted(doc):
        if isinstance(doc[key], list):
            items = ",\n  ".join(json.dumps(c, sort_keys=True) for c in doc[key])
            lines.append(f' "{key}": [\n  {items}\n ]')
        else:
            lines.append(f' "{key}": {json.dumps(doc[key], sort_keys=True)}')
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def torch_cases(path, seeds, latent_seeds):
    cases = []
    for seed in seeds:
        tag = f"s{seed}".replace("-", "m")
        if seed in latent_seeds:
            cases.append((f"{path}/{tag}/latent", seed, [LATENT]))
        for shape in SINGLE_SHAPES:
            cases.append((f"{path}/{tag}/{'x'.join(map(str, shape))}", seed, [shape]))
        for name, draws in SEQUENCES.items():
            cases.append((f"{path}/{tag}/{name}", seed, draws))
        cases.append((f"{path}/{tag}/reseed", seed, [[3], ("reseed", [1])]))
    return cases


def child(path):
    """Runs in a process whose ATEN_CPU_CAPABILITY is already set; prints JSON + writes tensors."""
    import torch
    from safetensors.torch import save_file

    seeds = TORCH_SEEDS if path == "avx2" else SCALAR_SEEDS
    latent_seeds = seeds if path == "avx2" else [0]
    tensors, cases = {}, []
    for name, seed, draws in torch_cases(path, seeds, latent_seeds):
        g = torch.Generator().manual_seed(seed)
        entries = []
        for i, d in enumerate(draws):
            reseed = isinstance(d, tuple)
            shape = d[1] if reseed else d
            if reseed:
                g.manual_seed(seed)
            key = f"{name}/{i}"
            tensors[key] = torch.randn(shape, generator=g).contiguous()
            entries.append({"shape": shape, "tensor": key, "reseed": reseed})
        cases.append({"name": name, "seed": seed % 2**64, "python_seed": seed, "path": path, "draws": entries})
    # Sanity: reseeding drops the cached normal, so the reseed case's last draw equals a fresh one.
    g = torch.Generator().manual_seed(7)
    torch.randn(3, generator=g)
    g.manual_seed(7)
    assert torch.equal(torch.randn(1, generator=g), torch.randn(1, generator=torch.Generator().manual_seed(7)))
    if path == "avx2":
        for seed in RAW_SEEDS:
            g = torch.Generator().manual_seed(seed)
            tensors[f"raw64/s{seed}"] = torch.empty(RAW_COUNT, dtype=torch.int64).random_(-(2**63), None, generator=g)
    tmp = os.path.join(OUT, f".torch_{path}.safetensors")
    save_file(tensors, tmp)
    print(json.dumps({"cases": cases, "capability": torch.backends.cpu.get_cpu_capability(),
                      "torch": torch.__version__}))


def make_torch():
    from safetensors.numpy import load_file, save_file
    merged, cases, meta = {}, [], {}
    for path, cap in [("avx2", "avx2"), ("scalar", "default"), ("native", None)]:
        env = dict(os.environ)
        env.pop("ATEN_CPU_CAPABILITY", None)
        if cap:
            env["ATEN_CPU_CAPABILITY"] = cap
        # "native" reruns the avx2 cases at this machine's own capability to show which sampler it uses.
        out = subprocess.run([sys.executable, __file__, "--child", "avx2" if path == "native" else path],
                             env=env, check=True, capture_output=True, text=True).stdout
        info = json.loads(out)
        tmp = os.path.join(OUT, f".torch_{'avx2' if path == 'native' else path}.safetensors")
        loaded = load_file(tmp)
        os.remove(tmp)
        if path == "native":
            same = all((loaded[k] == merged[k]).all() for k in loaded)
            print(f"native capability {info['capability']}: avx2 sampler {'used' if same else 'NOT used'}")
            continue
        meta[path] = info["capability"]
        cases += info["cases"]
        merged.update(loaded)
    save_file(dict(sorted(merged.items())), os.path.join(OUT, "torch_randn.safetensors"))
    raw = [{"seed": s % 2**64, "tensor": f"raw64/s{s}", "count": RAW_COUNT} for s in RAW_SEEDS]
    doc = {"torch": info["torch"], "capability_per_path": meta, "cases": cases, "raw64": raw}
    write_json(os.path.join(OUT, "torch_randn.json"), doc)


def make_numpy():
    import numpy as np
    from safetensors.numpy import save_file
    tensors, cases = {}, []
    for seed in NUMPY_SEEDS:
        plans = {"1x4x8x8": [[1, 4, 8, 8]], "3": [[3]], "small_then_big": [[5], [100]], "4x4_twice": [[4, 4], [4, 4]]}
        if seed == 0:
            plans["latent"] = [LATENT]
        for pname, draws in plans.items():
            rs = np.random.RandomState(seed)
            entries = []
            for i, shape in enumerate(draws):
                key = f"numpy/s{seed}/{pname}/{i}"
                tensors[key] = np.ascontiguousarray(rs.randn(*shape).astype(np.float64))
                entries.append({"shape": shape, "tensor": key, "reseed": False})
            cases.append({"name": f"numpy/s{seed}/{pname}", "seed": seed, "draws": entries})
    save_file(dict(sorted(tensors.items())), os.path.join(OUT, "numpy_randn.safetensors"))
    write_json(os.path.join(OUT, "numpy_randn.json"), {"numpy": np.__version__, "cases": cases})


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        os.makedirs(OUT, exist_ok=True)
        make_torch()
        make_numpy()
