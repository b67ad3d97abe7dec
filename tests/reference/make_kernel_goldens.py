"""Golden outputs of torch's fp32 CPU kernels for tests/unit/test_kernels_golden.cpp.

Writes tests/goldens/kernels/kernels.safetensors (< 1 MB). Activations are stored channels-last,
as sdpal keeps them: images [N, H, W, C] (torch computes in NCHW; we permute), attention tensors
[B, S, heads * D] (torch's SDPA takes [B, heads, S, D]). Weights keep torch's layout.

Run with the pinned stack (tests/reference/requirements.txt):
    python tests/reference/make_kernel_goldens.py
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "goldens", "kernels", "kernels.safetensors")


def nhwc(x):
    return x.permute(0, 2, 3, 1).contiguous()


def bshd(x):  # [B, H, S, D] -> [B, S, H * D]
    b, h, s, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, s, h * d).contiguous()


def main():
    torch.manual_seed(1234)
    t = {}

    # GroupNorm as diffusers' ResNet blocks use it (NCHW in torch), then SiLU as a separate op.
    x = torch.randn(2, 64, 9, 7) * 2.0 + 0.5
    w, b = torch.randn(64), torch.randn(64)
    y = F.group_norm(x, 32, w, b, eps=1e-5)
    t["group_norm.x"], t["group_norm.weight"], t["group_norm.bias"] = nhwc(x), w, b
    t["group_norm.y"], t["group_norm.y_silu"] = nhwc(y), nhwc(F.silu(y))
    # One group over all channels, a large common offset (tests the variance's numerics), eps 1e-6.
    x = torch.randn(1, 32, 16, 16) * 0.1 + 50.0
    t["group_norm_offset.x"] = nhwc(x)
    t["group_norm_offset.y"] = nhwc(F.group_norm(x, 1, None, None, eps=1e-6))

    # LayerNorm over the last dim.
    x = torch.randn(3, 5, 320) * 3.0 + 1.0
    w, b = torch.randn(320), torch.randn(320)
    t["layer_norm.x"], t["layer_norm.weight"], t["layer_norm.bias"] = x, w, b
    t["layer_norm.y"] = F.layer_norm(x, (320,), w, b, eps=1e-5)

    # Activations over a sweep and random values (2048 elements: all on torch's vectorized path).
    x = torch.cat([torch.linspace(-10.0, 10.0, 1024), torch.randn(1024) * 3.0])
    t["act.x"] = x
    t["act.gelu"] = F.gelu(x)
    t["act.silu"] = F.silu(x)
    t["act.quick_gelu"] = x * torch.sigmoid(1.702 * x)

    # Scaled dot-product attention: self, cross (Sk = 77), causal (CLIP), one 512-wide head (VAE).
    cases = {
        "attn_self": (2, 2, 50, 50, 40, False),
        "attn_cross": (1, 2, 40, 77, 64, False),
        "attn_causal": (1, 2, 77, 77, 64, True),
        "attn_vae": (1, 1, 24, 24, 512, False),
    }
    for name, (bsz, heads, sq, sk, d, causal) in cases.items():
        q = torch.randn(bsz, heads, sq, d)
        k = torch.randn(bsz, heads, sk, d)
        v = torch.randn(bsz, heads, sk, d)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        t[name + ".q"], t[name + ".k"], t[name + ".v"], t[name + ".out"] = bshd(q), bshd(k), bshd(v), bshd(o)

    # Conv2d: 3x3 pad 1, 3x3 stride 2 pad 1, 1x1, and the VAE encoder's downsample
    # (F.pad(x, (0, 1, 0, 1)) then a 3x3 stride-2 conv without padding).
    x = torch.randn(2, 13, 11, 9)
    w3, b3 = torch.randn(16, 13, 3, 3) * 0.2, torch.randn(16)
    w1, b1 = torch.randn(8, 13, 1, 1) * 0.2, torch.randn(8)
    t["conv.x"], t["conv.w3"], t["conv.b3"], t["conv.w1"], t["conv.b1"] = nhwc(x), w3, b3, w1, b1
    t["conv.y3"] = nhwc(F.conv2d(x, w3, b3, stride=1, padding=1))
    t["conv.y3s2"] = nhwc(F.conv2d(x, w3, b3, stride=2, padding=1))
    t["conv.y1"] = nhwc(F.conv2d(x, w1, b1))
    t["conv.y3_asym"] = nhwc(F.conv2d(F.pad(x, (0, 1, 0, 1)), w3, b3, stride=2, padding=0))

    t = {k: v.contiguous().float() for k, v in t.items()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(t, OUT, metadata={"torch": torch.__version__})
    print(f"wrote {OUT}: {os.path.getsize(OUT)} bytes, {len(t)} tensors")


if __name__ == "__main__":
    main()
