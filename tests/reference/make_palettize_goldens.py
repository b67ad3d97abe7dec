"""Makes tests/goldens/quant/: weights palettized by coremltools 8.1's own k-means, for
tests/unit/test_kmeans.cpp (sdpal's quant/kmeans_1d + quant/palettize must give the same tables and
indices).

    /work/venv-coreml/bin/python tests/reference/make_palettize_goldens.py

(coremltools==8.1 and numpy only; its vendored kmeans1d is used, scikit-learn is not needed.)

coremltools clusters with kmeans1d (exact, weighted by the counts of the distinct values) when a
tensor or channel group is float16 with >= 10,000 elements, and with scikit-learn's KMeans otherwise.
The "real path" cases below go through palettize_weights.blockwise_compress exactly as the
palettize_weights pass calls it (fp16, >= 10,000 elements per group, so kmeans1d is picked); the
small cases (4096 elements) call the same _get_kmeans_lookup_table_and_weight with
force_kmeans1d=True, since sdpal uses the exact algorithm for every size.

Writes palettize_cases.safetensors with the weights W.input (F16) and, per case C: C.lut (F16, the
table flattened: groups x 2^nbits) and C.packed (U8, coremltools' LSB-first packing of the indices,
row-major); palettize_cases.json: {C: {input, nbits, group_size, shape, path, n_unique}}.
"""
import json
import os
import struct

import sys

import numpy as np

try:
    from coremltools.models.neural_network.quantization_utils import _get_kmeans_lookup_table_and_weight
    from coremltools.optimize.coreml import _utils as optimize_utils
    from coremltools.optimize.coreml._quantization_passes import palettize_weights
except ImportError:  # regen.sh runs every make_*.py with the torch stack, which lacks coremltools
    print("make_palettize_goldens.py: skipped, needs coremltools==8.1 (see the docstring)", file=sys.stderr)
    sys.exit(0)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "goldens", "quant")


def write_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer (the safetensors package is not in this venv)."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def real_path(w, nbits, group_size):
    """palettize_weights' own call for a const of shape w.shape (channel axis 0)."""
    block_sizes = [0] * w.ndim
    if group_size:
        block_sizes[0] = group_size
    params = palettize_weights.blockwise_compress(w, "KMEANS", nbits, block_sizes)
    lut = np.asarray(params.lut).astype(np.float16)  # [groups, 1.., 2^nbits, 1]
    groups = lut.shape[0]
    return lut.reshape(groups, 2**nbits), np.asarray(params.indices).astype(np.uint8).reshape(-1)


def forced_kmeans1d(w, nbits):
    lut, idx = _get_kmeans_lookup_table_and_weight(nbits, w, force_kmeans1d=True)
    return lut.astype(w.dtype).reshape(1, 2**nbits), np.asarray(idx).astype(np.uint8).reshape(-1)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240607)
    cases = []
    # Small random-normal weights (4096 elements): the exact path, forced.
    w = (rng.standard_normal((64, 64)) * 0.05).astype(np.float16)
    cases += [("normal4096_4bit", "normal4096", w, 4, 0, "forced_kmeans1d"),
              ("normal4096_6bit", "normal4096", w, 6, 0, "forced_kmeans1d"),
              ("normal4096_8bit", "normal4096", w, 8, 0, "forced_kmeans1d")]
    # Conv-shaped normal weights with >= 10,000 elements: coremltools' real path picks kmeans1d.
    w = (rng.standard_normal((128, 32, 3, 3)) * 0.02).astype(np.float16)
    cases += [("conv36864_6bit", "conv36864", w, 6, 0, "real"), ("conv36864_8bit", "conv36864", w, 8, 0, "real"),
              ("conv36864_4bit", "conv36864", w, 4, 0, "real")]
    # Heavy tails (a few large values), as attention projections have.
    w = (rng.standard_t(3, size=(160, 80)) * 0.03).astype(np.float16)
    cases += [("student12800_6bit", "student12800", w, 6, 0, "real")]
    # Few distinct values (40, skewed counts) for 4-bit: the counts weigh the clusters.
    levels = np.round(rng.standard_normal(40) * 0.5, 3)
    p = rng.dirichlet(np.ones(40) * 0.3)
    w = rng.choice(levels, size=(100, 120), p=p).astype(np.float16)
    cases += [("few40_4bit", "few40", w, 4, 0, "real")]
    # Fewer distinct values (20) than 2^nbits (64): the table has 20 entries, then zeros.
    levels = np.round(rng.uniform(-1, 1, 20), 2)
    w = rng.choice(levels, size=(120, 100)).astype(np.float16)
    cases += [("few20_6bit", "few20", w, 6, 0, "real")]
    # Fewer than 2^nbits distinct values, small tensor.
    w = rng.choice(np.array([-0.5, -0.25, 0.0, 0.125, 0.75]), size=(64, 64)).astype(np.float16)
    cases += [("five4096_4bit", "five4096", w, 4, 0, "forced_kmeans1d")]
    # One table per 32 output channels (3 groups of 13,824 elements).
    w = (rng.standard_normal((96, 48, 3, 3)) * 0.03).astype(np.float16)
    cases += [("grouped96_g32_4bit", "grouped96", w, 4, 32, "real"),
              ("grouped96_g32_6bit", "grouped96", w, 6, 32, "real")]

    tensors, meta = {}, {}
    for name, wname, w, nbits, group, path in cases:
        if path == "real":
            lut, idx = real_path(w, nbits, group)
        else:
            lut, idx = forced_kmeans1d(w, nbits)
        assert idx.size == w.size and int(idx.max()) < 2**nbits
        tensors[wname + ".input"] = w
        tensors[name + ".lut"] = lut.reshape(-1)
        tensors[name + ".packed"] = optimize_utils.pack_elements_into_bits(idx, nbits)
        meta[name] = {"input": wname + ".input", "nbits": nbits, "group_size": group, "shape": list(w.shape), "path": path,
                      "n_unique": int(len(np.unique(w)))}
        print(f"{name}: shape {w.shape}, {meta[name]['n_unique']} unique, {nbits} bits, group {group}, {path}")
    write_safetensors(os.path.join(OUT, "palettize_cases.safetensors"), tensors)
    with open(os.path.join(OUT, "palettize_cases.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
