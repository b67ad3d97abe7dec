#!/usr/bin/env python3
"""Goldens for src/rng/cuda_philox: torch.randn on a CUDA device. Two steps, since the machine that has a
GPU need not be the one with this repository's reference stack:

    # 1. on any machine with an NVIDIA GPU and torch (numpy too):
    python tests/reference/make_cuda_rng_goldens.py --capture cuda_randn.npz
    # 2. here (numpy + safetensors):
    /work/venv-ref/bin/python tests/reference/make_cuda_rng_goldens.py --npz cuda_randn.npz \
        --device "NVIDIA H100 80GB HBM3" --torch 2.11.0+cu130

Writes tests/goldens/rng/cuda_randn.{safetensors,json} in the case format of make_rng_goldens.py: a seed
and the successive draws from ONE torch.Generator("cuda").manual_seed(seed).
The committed files were captured on an NVIDIA H100 80GB HBM3 with torch 2.11.0+cu130.
"""
import argparse
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "goldens", "rng")
SEEDS = [0, 1, 42, 93, 2**32 + 5]
SHAPES = [(1, 4, 64, 64), (1, 4, 8, 8), (2, 4, 16, 16), (7,), (100,), (3, 5, 7), (1, 4, 96, 96)]
LATENT_SEEDS = {0, 42}  # the big shapes are committed for these seeds only (size)


def capture(path):
    import numpy as np
    import torch
    out = {}
    for seed in SEEDS:
        for shape in SHAPES:
            g = torch.Generator(device="cuda").manual_seed(seed)
            out[f"s{seed}_" + "x".join(map(str, shape))] = torch.randn(shape, generator=g, device="cuda").cpu().numpy()
        g = torch.Generator(device="cuda").manual_seed(seed)
        torch.randn((1, 4, 8, 8), generator=g, device="cuda")
        out[f"s{seed}_second_1x4x8x8"] = torch.randn((1, 4, 8, 8), generator=g, device="cuda").cpu().numpy()
    np.savez(path, **out)
    print(torch.__version__, torch.cuda.get_device_name(), len(out))


def write_goldens(npz, device, torch_version):
    import numpy as np
    from safetensors.numpy import save_file
    from make_rng_goldens import write_json
    d = np.load(npz)
    tensors, cases = {}, []
    for seed in SEEDS:
        for shape in SHAPES:
            if shape[-1] >= 64 and (seed not in LATENT_SEEDS or shape[-1] > 64):
                continue
            tag = "x".join(map(str, shape))
            key = f"cuda/s{seed}/{tag}/0"
            tensors[key] = np.ascontiguousarray(d[f"s{seed}_{tag}"].astype(np.float32))
            cases.append({"name": f"cuda/s{seed}/{tag}", "seed": seed,
                          "draws": [{"shape": list(shape), "tensor": key, "reseed": False}]})
        first, second = f"cuda/s{seed}/two_draws/0", f"cuda/s{seed}/two_draws/1"
        tensors[first] = np.ascontiguousarray(d[f"s{seed}_1x4x8x8"].astype(np.float32))
        tensors[second] = np.ascontiguousarray(d[f"s{seed}_second_1x4x8x8"].astype(np.float32))
        cases.append({"name": f"cuda/s{seed}/two_draws", "seed": seed,
                      "draws": [{"shape": [1, 4, 8, 8], "tensor": first, "reseed": False},
                                {"shape": [1, 4, 8, 8], "tensor": second, "reseed": False}]})
    save_file(dict(sorted(tensors.items())), os.path.join(OUT, "cuda_randn.safetensors"))
    write_json(os.path.join(OUT, "cuda_randn.json"), {"cases": cases, "device": device, "torch": torch_version})
    print("wrote", len(tensors), "tensors to", OUT)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", help="draw on this machine's GPU and save to this .npz")
    ap.add_argument("--npz", help="write the goldens from a captured .npz")
    ap.add_argument("--device", default="NVIDIA H100 80GB HBM3")
    ap.add_argument("--torch", default="2.11.0+cu130")
    a = ap.parse_args()
    if a.capture:
        capture(a.capture)
    if a.npz:
        write_goldens(a.npz, a.device, a.torch)
    if not (a.capture or a.npz):  # as regen.sh runs it: only where a GPU is present
        try:
            import torch
            gpu = torch.cuda.is_available()
        except ImportError:
            gpu = False
        if not gpu:
            print("make_cuda_rng_goldens.py: skipped (no CUDA device; see its docstring for the two-step way)")
            return
        import tempfile
        import torch
        with tempfile.TemporaryDirectory() as tmp:
            npz = os.path.join(tmp, "cuda_randn.npz")
            capture(npz)
            write_goldens(npz, torch.cuda.get_device_name(), torch.__version__)


if __name__ == "__main__":
    main()
