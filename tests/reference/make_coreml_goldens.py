"""Makes the Core ML goldens in tests/goldens/coreml/ with coremltools (runs on Linux: no Core ML
runtime is needed to build and save ML programs).

    python -m venv /work/venv-coreml && /work/venv-coreml/bin/pip install coremltools==8.1
    /work/venv-coreml/bin/python tests/reference/make_coreml_goldens.py

Writes:
- tiny_ios16.mlpackage, tiny_ios18.mlpackage: small ML programs (protobuf + weight.bin) built with the
  MIL builder, covering iOS16 constexpr_lut_to_dense (attributes, uint8 indices, one table) and iOS18
  (sub-byte indices uint1..uint8, per-group tables, vector palettization), consts in the weight file
  and immediate values, tuple arguments, multi-output ops;
- tiny_expected.safetensors: the dense value coremltools computes for every constexpr op and blob const
  of those programs ("ios16/<op name>"), and tiny_expected.json: op types in order, inputs, outputs;
- palettized_cases.safetensors / .json: packed indices, tables and coremltools' decoded values for
  nbits 1,2,3,4,6,8, odd sizes, per-group tables and vectors along every axis.
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coreml_stack  # noqa: E402

coreml_stack.require("make_coreml_goldens.py", need_torch=False)

import numpy as np
import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_lut_to_dense as lut_to_dense_ios18
from coremltools.optimize.coreml import _utils as optimize_utils  # coremltools 8.x location

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "goldens", "coreml")


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


def pack_lsb_first(values, nbits):
    return optimize_utils.pack_elements_into_bits(np.asarray(values, dtype=np.uint8), nbits)


def tiny_ios16(rng):
    def lut16(nbits, shape):
        n = int(np.prod(shape))
        idx = rng.integers(0, 2**nbits, size=n)
        return dict(indices=pack_lsb_first(idx, nbits),
                    lut=rng.standard_normal(2**nbits).astype(np.float16),
                    shape=np.array(shape, dtype=np.uint32))

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8), dtype=types.fp16)], opset_version=ct.target.iOS16)
    def prog(x):
        w6 = mb.constexpr_lut_to_dense(**lut16(6, (16, 8)), name="w6")
        b = mb.const(val=rng.standard_normal(16).astype(np.float16), name="b16")
        h = mb.linear(x=x, weight=w6, bias=b, name="h")
        h = mb.relu(x=h, name="h_relu")
        r = mb.reshape(x=h, shape=[1, 16, 1, 1], name="r")
        w4 = mb.constexpr_lut_to_dense(**lut16(4, (8, 16, 1, 1)), name="w4")
        c = mb.conv(x=r, weight=w4, strides=[1, 1], pad_type="valid", name="c")
        c = mb.reshape(x=c, shape=[1, 8], name="c_flat")
        s0, s1 = mb.split(x=c, num_splits=2, axis=1, name="s")
        cat = mb.concat(values=(s0, s1, s0), axis=1, interleave=False, name="cat")
        y = mb.mul(x=cat, y=np.float16(0.5), name="y")
        w2 = mb.constexpr_lut_to_dense(**lut16(2, (5, 3)), name="w2")
        w1 = mb.constexpr_lut_to_dense(**lut16(1, (3, 7)), name="w1")
        w8 = mb.constexpr_lut_to_dense(**lut16(8, (3, 5)), name="w8")
        z = mb.add(x=w2, y=mb.const(val=rng.standard_normal((5, 3)).astype(np.float16), name="z_bias"), name="z")
        z1 = mb.add(x=w1, y=np.float16(1.0), name="z1")
        z8 = mb.sub(x=w8, y=np.float16(2.0), name="z8")
        return y, z, z1, z8

    return prog


def tiny_ios18(rng):
    def lut18(nbits, idx_shape, lut_shape, vector_axis=None, lut_dtype=np.float16):
        dt = {1: types.np_uint1_dtype, 2: types.np_uint2_dtype, 3: types.np_uint3_dtype, 4: types.np_uint4_dtype,
              6: types.np_uint6_dtype, 8: np.uint8}[nbits]
        args = dict(indices=rng.integers(0, 2**nbits, size=idx_shape).astype(dt),
                    lut=rng.standard_normal(lut_shape).astype(lut_dtype))
        if vector_axis is not None:
            args["vector_axis"] = np.int32(vector_axis)
        return args

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def prog(x):
        w4g = mb.constexpr_lut_to_dense(**lut18(4, (8, 16), (2, 1, 16, 1)), name="w4g")
        h = mb.linear(x=x, weight=w4g, name="h")
        wv = mb.constexpr_lut_to_dense(**lut18(2, (4, 8), (1, 1, 4, 2), vector_axis=0), name="wv")
        h2 = mb.linear(x=h, weight=wv, name="h2")
        w6 = mb.constexpr_lut_to_dense(**lut18(6, (3, 8), (1, 2, 64, 1)), name="w6")
        y = mb.linear(x=h2, weight=w6, name="y")
        w3 = mb.constexpr_lut_to_dense(**lut18(3, (5, 7), (5, 1, 8, 1)), name="w3")
        z3 = mb.add(x=w3, y=np.float16(1.0), name="z3")
        w1 = mb.constexpr_lut_to_dense(**lut18(1, (3, 5), (1, 1, 2, 3), vector_axis=-1), name="w1")
        z1 = mb.add(x=w1, y=np.float16(1.0), name="z1")
        w8 = mb.constexpr_lut_to_dense(**lut18(8, (4, 4), (1, 2, 256, 1)), name="w8")
        z8 = mb.add(x=w8, y=np.float16(1.0), name="z8")
        return y, z3, z1, z8

    return prog


def expected_values(prog, prefix):
    out = {}
    for op in prog.functions["main"].operations:
        if op.op_type.startswith("constexpr_"):  # coremltools' own decompression of the op
            out[f"{prefix}/{op.name}"] = np.asarray(op.materialized_val_inference()).astype(np.float32)
        elif op.op_type == "const" and op.outputs[0].val is not None and np.size(op.outputs[0].val) >= 10:
            out[f"{prefix}/{op.name}"] = np.asarray(op.outputs[0].val).astype(np.float32)
    return out


def describe(model):
    spec = model.get_spec()
    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    return {
        "opset": fn.opset,
        "op_types": [op.type for op in block.operations],
        "op_names": [op.attributes["name"].immediateValue.tensor.strings.values[0] for op in block.operations],
        "inputs": [{"name": i.name, "shape": list(i.type.multiArrayType.shape)} for i in spec.description.input],
        "outputs": [o.name for o in spec.description.output],
        "block_outputs": list(block.outputs),
    }


def palettized_cases(rng):
    cases, tensors = [], {}

    def add(nbits, shape, lut_shape, vector_axis=None, lut_dtype=np.float16):
        i = len(cases)
        vs = lut_shape[-1] if len(lut_shape) > 1 else 1
        idx_shape = list(shape)
        if vs > 1:
            idx_shape[vector_axis] //= vs
        idx = rng.integers(0, 2**nbits, size=idx_shape).astype(np.uint8)
        lut = rng.standard_normal(lut_shape).astype(lut_dtype)
        if len(lut_shape) == 1:
            dense = lut[idx.reshape(-1)].reshape(shape)
        else:
            dense = lut_to_dense_ios18.decompress(idx, lut, None if vector_axis is None else np.int32(vector_axis))
        assert list(dense.shape) == list(shape), (dense.shape, shape)
        tensors[f"c{i}.indices"] = pack_lsb_first(idx.reshape(-1), nbits)
        tensors[f"c{i}.lut"] = lut
        tensors[f"c{i}.expected"] = dense.astype(np.float32)
        cases.append({"nbits": nbits, "shape": list(shape), "lut_shape": list(lut_shape),
                      "vector_axis": -1 if vector_axis is None else int(vector_axis % len(shape)),
                      "lut_dtype": "F16" if lut_dtype == np.float16 else "F32"})

    for nbits in (1, 2, 3, 4, 6, 8):  # iOS16 form: one table, odd sizes leave partial bytes
        add(nbits, (7, 13), (2**nbits,))
        add(nbits, (24, 10, 3, 3), (2**nbits,))
    add(6, (9,), (64,), lut_dtype=np.float32)
    for nbits in (1, 2, 3, 4, 6, 8):  # iOS18 per-group tables
        add(nbits, (8, 12), (4, 3, 2**nbits, 1))
    add(4, (6, 4, 3, 3), (3, 1, 1, 1, 16, 1))
    add(4, (4, 64), (1, 16, 16, 1))          # groups along the last axis (per-block of 4)
    add(2, (6, 8), (1, 1, 4, 3), vector_axis=0)
    add(2, (4, 9), (1, 1, 4, 3), vector_axis=1)
    add(3, (4, 6, 4), (2, 1, 1, 8, 2), vector_axis=1)
    add(1, (2, 3, 10), (1, 3, 1, 2, 5), vector_axis=2)
    add(6, (16, 5), (2, 1, 64, 2), vector_axis=0)
    return cases, tensors


def save_package(model, name):
    path = os.path.join(OUT, name)
    if os.path.exists(path):
        shutil.rmtree(path)
    model.save(path)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    expected, info = {}, {}
    for name, builder, target in (("ios16", tiny_ios16, ct.target.iOS16), ("ios18", tiny_ios18, ct.target.iOS18)):
        prog = builder(rng)
        expected.update(expected_values(prog, name))
        model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=target,
                           compute_precision=ct.precision.FLOAT16)
        save_package(model, f"tiny_{name}.mlpackage")
        info[name] = describe(model)
    write_safetensors(os.path.join(OUT, "tiny_expected.safetensors"), expected)
    with open(os.path.join(OUT, "tiny_expected.json"), "w") as f:
        json.dump({"coremltools": ct.__version__, "programs": info}, f, indent=1)
    cases, tensors = palettized_cases(rng)
    write_safetensors(os.path.join(OUT, "palettized_cases.safetensors"), tensors)
    with open(os.path.join(OUT, "palettized_cases.json"), "w") as f:
        json.dump({"coremltools": ct.__version__, "cases": cases}, f, indent=1)
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
