"""Splits the tiny model's palettized6 Core ML unet into two chunks the way Apple's ml-stable-diffusion converter
does with --chunk-unet (python_coreml_stable_diffusion/chunk_mlprogram.py, which with coremltools >= 8.0 calls
coremltools.models.utils.bisect_model), and writes a complete chunked resources folder.

    OMP_NUM_THREADS=1 /work/venv-coreml-torch/bin/python tests/reference/make_coreml_tiny_chunks.py

Run it after tests/reference/make_coreml_tiny.py (which makes the input and deletes the whole
tests/fixtures/tiny-sd-v1-coreml folder, this script's output included, when it runs). Under another interpreter
it re-executes itself with $SDPAL_COREML_PYTHON when set, else prints that it is skipped and exits 0 (as
make_coreml_tiny.py does). Needs coremltools 8.1 only (tests/reference/requirements-coreml.txt); no Core ML
runtime: nothing is predicted, the chunks are checked structurally (see verify()). Under a minute.
Deterministic: a rerun reproduces every file byte for byte.

Reads  tests/fixtures/tiny-sd-v1-coreml/palettized6/ (unet, text_encoder, vae_decoder, vae_encoder, tokenizer).
Writes tests/fixtures/tiny-sd-v1-coreml/palettized6-chunked/:
  Stable_Diffusion_version_tiny-sd-v1_unet_chunk1.mlpackage, ..._unet_chunk2.mlpackage, byte copies of the
  palettized6 text_encoder / vae_decoder / vae_encoder packages, vocab.json, merges.txt; README.md.

Algorithm (bisect_model's, re-implemented on coremltools' MIL API so that the result is deterministic: bisect_model
collects the boundary variables in a Python set of Vars, hashed by id, so its chunk1 output / chunk2 input order
changes from run to run; here they are in program order):
- The program is the milproto loader's pymil Program of the package (an iOS16 constexpr_lut_to_dense appears
  there with three const ops, <name>_indices_0 / _lut_0 / _shape_0, which are attributes in the proto).
- Cut: total = bytes of every `const` op holding an ndarray (fp16 weights, the LUTs' uint8 packed indices and fp16
  tables); walking the ops in order and adding each const's bytes, the cut op is the first op whose cumulative
  total is >= total / 2 that is not const / constexpr_*, has one output and that output has exactly one consumer.
  Chunk 1 is ops [0, cut], chunk 2 ops (cut, end].
- Boundary variables: outputs of non-const ops in [0, cut] (value not known at compile time) that an op after the
  cut consumes (the cut op's output, skip connections, the time embedding, the transposed encoder_hidden_states).
- Chunk 1: the whole program with the boundary variables as outputs, each fp16 one through cast(fp32) named like
  the variable (bisect_model does this "due to possible numerical issues"; the fp16 -> fp32 -> fp16 round trip is
  exact), then dead code elimination.
- Chunk 2: the whole program where each boundary variable's uses after the cut read a new fp32 input of the same
  name through cast(fp16) (its output named <var>_to_fp16 here, builder-named in bisect_model), then dead code
  elimination and removal of unused original inputs. A const or constexpr_lut_to_dense used on both sides is
  thereby in both chunks, under its own name.
- Both programs go through coremltools' default MIL pipeline as bisect_model's mil_convert(convert_from=
  "milinternal") does (it renames transposes and casts, see verify()), are saved, and re-serialized
  deterministically as make_coreml_tiny.py does.
--fp16-boundary keeps the boundary variables fp16 (no casts: not what bisect_model writes; not the fixture).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coreml_stack  # noqa: E402

coreml_stack.require("make_coreml_tiny_chunks.py", need_torch=False)

import argparse
import collections
import hashlib
import json
import logging
import shutil
import tempfile
import uuid
import warnings

import numpy as np

import coremltools as ct
from coremltools.converters.mil.converter import mil_convert
from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil import Placeholder, types
from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
from coremltools.proto import FeatureTypes_pb2, Model_pb2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE_DIR = os.path.join(REPO, "tests", "fixtures", "tiny-sd-v1-coreml")
SRC_VARIANT = "palettized6"
DST_VARIANT = "palettized6-chunked"
MODEL_VERSION = "tiny-sd-v1"
COPIED = ("text_encoder", "vae_decoder", "vae_encoder")
TOKENIZER_FILES = ("vocab.json", "merges.txt")


def package_name(component):
    return f"Stable_Diffusion_version_{MODEL_VERSION}_{component}.mlpackage"


def quiet():
    """coremltools logs every removed op and shows tqdm bars for each pass pipeline."""
    logging.getLogger("coremltools").setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    try:
        import functools
        import tqdm
        tqdm.tqdm.__init__ = functools.partialmethod(tqdm.tqdm.__init__, disable=True)
    except ImportError:
        pass


# ----------------------------------------------------------------------------------------------------------------
# Programs

def load_program(pkg):
    """(pymil Program with main's operations as a list, spec) of a saved .mlpackage."""
    m = ct.models.MLModel(pkg, skip_model_load=True)
    spec = m.get_spec()
    prog = milproto_load(model_spec=spec, specification_version=spec.specificationVersion,
                         file_weights_dir=m.weights_dir)
    if len(prog.functions) != 1 or "main" not in prog.functions:
        raise SystemExit(f"{pkg}: expected a single 'main' function")
    block = prog.functions["main"]
    block.operations = list(block.operations)
    return prog, spec


def const_bytes(op):
    if op.op_type == "const" and isinstance(op.val.val, np.ndarray):
        return op.val.val.nbytes
    return 0


def find_cut(block):
    """bisect_model's _get_op_idx_split_location, in bytes: (op index, bytes of consts in [0, index], total)."""
    total = sum(const_bytes(op) for op in block.operations)
    cum = 0
    for i, op in enumerate(block.operations):
        cum += const_bytes(op)
        if (2 * cum >= total and not op.op_type.startswith("const") and len(op.outputs) == 1
                and len(op.outputs[0].child_ops) == 1):
            return i, cum, total
    raise SystemExit("no cut point found")


def boundary_vars(block, cut):
    """Vars made by non-const ops in [0, cut] and consumed after the cut, in program order."""
    index = {id(op): i for i, op in enumerate(block.operations)}
    out = []
    for op in block.operations[: cut + 1]:
        if op.op_type.startswith("const"):
            continue
        for var in op.outputs:
            if var.val is None and any(index[id(c)] > cut for c in var.child_ops):
                out.append(var)
    return out


def make_chunk1(prog, cut, fp32_boundary):
    block = prog.functions["main"]
    bvars = boundary_vars(block, cut)
    with block:
        outs = [mb.cast(x=v, dtype="fp32", name=v.name) if fp32_boundary and v.dtype == types.fp16 else v
                for v in bvars]
    block.outputs.clear()
    block.set_outputs(outs)
    PASS_REGISTRY["common::dead_code_elimination"](prog)
    return prog, [v.name for v in bvars]


def make_chunk2(prog, cut, fp32_boundary):
    block = prog.functions["main"]
    block.opset_version = ct.target.iOS16
    bvars = boundary_vars(block, cut)
    anchor = block.operations[cut]
    with block:
        for var in bvars:
            cast = fp32_boundary and var.dtype == types.fp16
            ph = Placeholder(sym_shape=var.shape, dtype=types.fp32 if cast else var.dtype, name=var.name)
            block._input_dict[ph.outputs[0].name] = ph.outputs[0]
            block.function_inputs = tuple(block._input_dict.values())
            new = (mb.cast(x=ph.outputs[0], dtype="fp16", before_op=var.op, name=var.name + "_to_fp16")
                   if cast else ph.outputs[0])
            # force_replace: constexpr ops would otherwise block the replacement; chunk 1's ops all go away here
            block.replace_uses_of_var_after_op(anchor_op=anchor, old_var=var, new_var=new, force_replace=True)
    PASS_REGISTRY["common::dead_code_elimination"](prog)
    block._input_dict = collections.OrderedDict((k, v) for k, v in block._input_dict.items() if v.child_ops)
    block.function_inputs = tuple(block._input_dict.values())
    return prog


def to_mlmodel(prog, spec_version):
    """As bisect_model: the default MIL pipeline, then the ML program backend."""
    return mil_convert(prog, convert_from="milinternal", convert_to="mlprogram",
                       specification_version=spec_version, compute_units=ct.ComputeUnit.CPU_ONLY,
                       skip_model_load=True)


def make_package_deterministic(pkg):
    """Same as make_coreml_tiny.py's: protobuf maps in hash order, random uuid4 Manifest item ids."""
    spec_path = os.path.join(pkg, "Data", "com.apple.CoreML", "model.mlmodel")
    spec = Model_pb2.Model()
    with open(spec_path, "rb") as f:
        spec.ParseFromString(f.read())
    with open(spec_path, "wb") as f:
        f.write(spec.SerializeToString(deterministic=True))
    path = os.path.join(pkg, "Manifest.json")
    with open(path) as f:
        man = json.load(f)
    remap = {k: str(uuid.uuid5(uuid.NAMESPACE_URL, "sdpal/" + v["path"])).upper()
             for k, v in man["itemInfoEntries"].items()}
    man["itemInfoEntries"] = {remap[k]: v for k, v in sorted(man["itemInfoEntries"].items(),
                                                               key=lambda kv: remap[kv[0]])}
    man["rootModelIdentifier"] = remap[man["rootModelIdentifier"]]
    with open(path, "w") as f:
        json.dump(man, f, indent=4)
        f.write("\n")


# ----------------------------------------------------------------------------------------------------------------
# Checks (no Core ML runtime on Linux: structure only)

def feature(f):
    a = f.type.multiArrayType
    return f.name, FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(a.dataType), tuple(a.shape)


def interface(pkg):
    spec = ct.models.MLModel(pkg, skip_model_load=True).get_spec()
    return [feature(f) for f in spec.description.input], [feature(f) for f in spec.description.output]


def is_const(op):
    return op.op_type.startswith("const")


def same_value(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def feeds_only_constexpr(op):
    """The pymil loader's const inputs of an iOS16 constexpr op (attributes in the proto; their pymil names,
    <op>_indices_<n>, number from a process-wide counter, so they are compared through the constexpr op)."""
    users = op.outputs[0].child_ops
    return op.op_type == "const" and len(users) > 0 and all(u.op_type.startswith("constexpr_") for u in users)


def verify(src_pkg, c1_pkg, c2_pkg, bnames, fp32_boundary):
    """Raises SystemExit on any mismatch; returns facts for the report.

    coremltools' default MIL pipeline (run on each chunk, as bisect_model does) renames things that do not
    matter to a runtime: every transpose op (and its perm const) gets a new builder name, the ops whose outputs
    chunk 1 casts keep their op name but their fp16 output var becomes <var>_1 (the cast's output takes the
    name), and cast ops are renamed cast_<n>. So ops are matched by op name, except transposes (counted) and
    casts (the original's one, plus one per fp16 boundary variable in each chunk)."""
    def fail(msg):
        raise SystemExit("verify: " + msg)

    orig_in, orig_out = interface(src_pkg)
    c1_in, c1_out = interface(c1_pkg)
    c2_in, c2_out = interface(c2_pkg)
    orig_in_d = {n: (t, s) for n, t, s in orig_in}
    c1_out_d = {n: (t, s) for n, t, s in c1_out}
    c2_in_names = [n for n, _, _ in c2_in]
    if [n for n, _, _ in c1_out] != bnames:
        fail(f"chunk1 outputs {[n for n, _, _ in c1_out]} != boundary variables {bnames}")
    for n, t, s in c1_in:
        if orig_in_d.get(n) != (t, s):
            fail(f"chunk1 input {n} {t} {s} is not an original input")
    for n, t, s in c1_out:
        if t != ("FLOAT32" if fp32_boundary else "FLOAT16"):
            fail(f"chunk1 output {n} is {t}")
    for n, t, s in c2_in:
        if c1_out_d.get(n, orig_in_d.get(n)) != (t, s):
            fail(f"chunk2 input {n} {t} {s} is neither a chunk1 output nor an original input")
    if [n for n in c2_in_names if n in c1_out_d] != bnames:
        fail(f"chunk2's boundary inputs {c2_in_names} != chunk1's outputs {bnames}")
    if c2_out != orig_out or [n for n, _, _ in c2_out] != ["noise_pred"]:
        fail(f"chunk2 outputs {c2_out} != original {orig_out}")

    progs = {k: load_program(p)[0].functions["main"].operations for k, p in
             (("orig", src_pkg), ("c1", c1_pkg), ("c2", c2_pkg))}
    orig_ops = {op.name: op for op in progs["orig"]}
    if len(orig_ops) != len(progs["orig"]):
        fail("the original has duplicate op names")
    counted = ("transpose", "cast")
    seen = collections.Counter()
    consts = {"c1": set(), "c2": set()}
    renamed_consts = collections.Counter()
    for k in ("c1", "c2"):
        for op in progs[k]:
            o = orig_ops.get(op.name)
            if op.op_type in counted:
                continue
            if feeds_only_constexpr(op):
                continue
            if op.op_type == "const" and o is None:
                users = {u.op_type for u in op.outputs[0].child_ops}
                if users <= set(counted):  # a new transpose's perm / a cast's dtype
                    renamed_consts[k] += 1
                    continue
            if o is None or o.op_type != op.op_type:
                fail(f"{k}: op {op.name} ({op.op_type}) not in the original")
            if op.op_type == "const":
                if not same_value(op.val.val, o.val.val):
                    fail(f"{k}: const {op.name} differs from the original's")
                consts[k].add(op.name)
            elif op.op_type.startswith("constexpr_"):
                if set(op.inputs) != set(o.inputs) or not all(
                        same_value(op.inputs[i].val, o.inputs[i].val) for i in op.inputs):
                    fail(f"{k}: {op.op_type} {op.name} differs from the original's")
                consts[k].add(op.name)
            else:
                seen[op.name] += 1
    hist = {k: collections.Counter(op.op_type for op in progs[k]) for k in progs}
    orig_named = {op.name for op in progs["orig"] if not is_const(op) and op.op_type not in counted}
    twice = sorted(n for n, c in seen.items() if c > 1)
    missing = sorted(orig_named - set(seen))
    if twice or missing:
        fail(f"ops in both chunks: {twice[:5]}; in neither: {missing[:5]}")
    if hist["c1"]["transpose"] + hist["c2"]["transpose"] != hist["orig"]["transpose"]:
        fail("transpose ops are not split between the chunks")
    n16 = len(bnames) if fp32_boundary else 0  # every boundary variable here is fp16
    if hist["c1"]["cast"] + hist["c2"]["cast"] != hist["orig"]["cast"] + 2 * n16:
        fail(f"casts: {hist['c1']['cast']} + {hist['c2']['cast']} != {hist['orig']['cast']} + 2 x {n16}")
    orig_consts = {op.name for op in progs["orig"]
                   if is_const(op) and not feeds_only_constexpr(op)
                   and not {u.op_type for u in op.outputs[0].child_ops} <= set(counted)}
    lost = orig_consts - consts["c1"] - consts["c2"]
    if lost:
        fail(f"consts of the original in neither chunk: {sorted(lost)[:5]}")
    shared = consts["c1"] & consts["c2"]

    def op_bytes(name):  # const bytes, or a constexpr op's const inputs
        op = orig_ops[name]
        return const_bytes(op) + sum(const_bytes(v.op) for v in op.inputs.values() if v.op is not None)
    return {
        "interfaces": {"chunk1": (c1_in, c1_out), "chunk2": (c2_in, c2_out)},
        "ops": {k: len(v) for k, v in progs.items()},
        "nonconst": {k: sum(not is_const(op) for op in progs[k]) for k in progs},
        "shared": sorted(shared),
        "shared_const_bytes": sum(op_bytes(n) for n in shared),
        "const_bytes": {k: sum(const_bytes(op) for op in progs[k]) for k in progs},
        "histograms": {k: hist[k] for k in ("c1", "c2")},
        "renamed_consts": dict(renamed_consts),
    }


def compare_with_bisect_model(src_pkg, c1_pkg, c2_pkg, facts):
    """coremltools' own bisect_model (what chunk_mlprogram.py calls) on the same package: same interfaces (as sets)
    and the same ops (type histogram), only the order of the boundary variables and cast names may differ."""
    with tempfile.TemporaryDirectory() as tmp:
        ct.models.utils.bisect_model(src_pkg, tmp, check_output_correctness=False)
        stem = os.path.splitext(os.path.basename(src_pkg))[0]
        for k, mine, ref in (("chunk1", c1_pkg, os.path.join(tmp, stem + "_chunk1.mlpackage")),
                             ("chunk2", c2_pkg, os.path.join(tmp, stem + "_chunk2.mlpackage"))):
            a, b = interface(mine), interface(ref)
            if sorted(a[0]) != sorted(b[0]) or sorted(a[1]) != sorted(b[1]):
                raise SystemExit(f"{k}: interface differs from bisect_model's: {a} vs {b}")
            ha = facts["histograms"]["c1" if k == "chunk1" else "c2"]
            hb = collections.Counter(op.op_type for op in load_program(ref)[0].functions["main"].operations)
            if ha != hb:
                raise SystemExit(f"{k}: ops differ from bisect_model's: {ha - hb} / {hb - ha}")


# ----------------------------------------------------------------------------------------------------------------

def tree_size(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def describe(feats):
    return ", ".join(f"{n} {t.replace('FLOAT', 'fp')} {list(s)}" for n, t, s in feats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default=BASE_DIR, help="the tiny-sd-v1-coreml folder")
    ap.add_argument("--out", default=None, help=f"output folder (default <base>/{DST_VARIANT})")
    ap.add_argument("--fp16-boundary", action="store_true",
                    help="no fp32 casts at the cut (not what bisect_model / Apple's converter writes)")
    ap.add_argument("--no-bisect-check", action="store_true",
                    help="skip the comparison with coremltools.models.utils.bisect_model")
    args = ap.parse_args()
    quiet()
    fp32 = not args.fp16_boundary
    src_dir = os.path.join(args.base, SRC_VARIANT)
    out = args.out or os.path.join(args.base, DST_VARIANT)
    src_pkg = os.path.join(src_dir, package_name("unet"))
    if not os.path.isdir(src_pkg):
        raise SystemExit(f"{src_pkg} missing: run tests/reference/make_coreml_tiny.py first")

    prog, spec = load_program(src_pkg)
    block = prog.functions["main"]
    cut, first_bytes, total_bytes = find_cut(block)
    cut_op = block.operations[cut]
    fn = spec.mlProgram.functions["main"]
    proto_ops = fn.block_specializations[fn.opset].operations
    proto_names = [op.attributes["name"].immediateValue.tensor.strings.values[0] for op in proto_ops]
    cut_info = {"index": cut, "ops": len(block.operations), "name": cut_op.name, "type": cut_op.op_type,
                "output": cut_op.outputs[0].name, "bytes_first": first_bytes, "bytes_total": total_bytes,
                "proto_index": proto_names.index(cut_op.name), "proto_ops": len(proto_ops)}
    prog1, bnames = make_chunk1(prog, cut, fp32)
    prog2 = make_chunk2(load_program(src_pkg)[0], cut, fp32)

    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    pkgs = {}
    for i, p in ((1, prog1), (2, prog2)):
        pkgs[i] = os.path.join(out, package_name(f"unet_chunk{i}"))
        to_mlmodel(p, spec.specificationVersion).save(pkgs[i])
        make_package_deterministic(pkgs[i])
    for comp in COPIED:
        shutil.copytree(os.path.join(src_dir, package_name(comp)), os.path.join(out, package_name(comp)))
    for f in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(src_dir, f), os.path.join(out, f))

    facts = verify(src_pkg, pkgs[1], pkgs[2], bnames, fp32)
    if not args.no_bisect_check:
        compare_with_bisect_model(src_pkg, pkgs[1], pkgs[2], facts)
    write_readme(out, cut_info, facts, pkgs, fp32)

    print(f"cut: op {cut_info['index']}/{cut_info['ops']} (proto op {cut_info['proto_index']}/{cut_info['proto_ops']}, {cut_info['type']} {cut_info['name']} -> "
          f"{cut_info['output']}); const bytes [0, cut] {first_bytes}, after {total_bytes - first_bytes}, "
          f"total {total_bytes}")
    for k, name in (("chunk1", "c1"), ("chunk2", "c2")):
        ins, outs = facts["interfaces"][k]
        print(f"{k}: {facts['ops'][name]} ops ({facts['nonconst'][name]} non-const), const bytes "
              f"{facts['const_bytes'][name]}, package {tree_size(pkgs[1 if k == 'chunk1' else 2])} bytes")
        print(f"  inputs : {describe(ins)}")
        print(f"  outputs: {describe(outs)}")
    print(f"const / constexpr ops in both chunks: {len(facts['shared'])} ({facts['shared_const_bytes']} bytes): "
          f"{', '.join(facts['shared'])}")
    files = sorted(os.path.relpath(os.path.join(r, f), out) for r, _, fs in os.walk(out) for f in fs)
    digest = hashlib.sha256()
    for f in files:
        with open(os.path.join(out, f), "rb") as fh:
            digest.update(f.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
    print(f"wrote {out} ({len(files)} files, {tree_size(out)} bytes, sha256 of tree {digest.hexdigest()[:16]})")


def write_readme(out, cut, facts, pkgs, fp32):
    c1_in, c1_out = facts["interfaces"]["chunk1"]
    c2_in, c2_out = facts["interfaces"]["chunk2"]
    boundary = ("fp32:\nchunk 1 casts each (fp16) variable to fp32, the cast's output taking the variable's name, "
                "and chunk 2 casts its input\nback to fp16 (an exact round trip), as bisect_model does" if fp32 else
                "fp16 (--fp16-boundary: no casts; NOT what bisect_model writes)")
    bullets = lambda feats: "\n".join(f"  - `{n}` {t.replace('FLOAT', 'fp')} {list(s)}" for n, t, s in feats)
    kb = 1024
    text = f"""# palettized6-chunked: the palettized6 unet split in two chunks (test fixture)

`../palettized6/`'s unet split the way Apple's ml-stable-diffusion converter does with `--chunk-unet`
(`python_coreml_stable_diffusion/chunk_mlprogram.py`, which with coremltools >= 8.0 calls
`coremltools.models.utils.bisect_model`). Made by `tests/reference/make_coreml_tiny_chunks.py` (coremltools 8.1;
run it after `make_coreml_tiny.py`, which deletes this folder; command in its docstring). Deterministic, byte for
byte. The script checks the chunks structurally (no Core ML runtime on Linux) and against bisect_model's own
output on the same package (same inputs and outputs, whose order varies from run to run there; same op counts).

A complete resources folder in Apple's Python `packages/` layout:
- `{os.path.basename(pkgs[1])}` and `{os.path.basename(pkgs[2])}`
  (`UnetChunk1.mlmodelc` / `UnetChunk2.mlmodelc` once compiled for the Swift pipeline); Apple's converter also
  keeps the unchunked unet next to them: left out here, it is `../palettized6/`'s;
- byte copies of `../palettized6/`'s text_encoder, vae_decoder and vae_encoder packages, `vocab.json`, `merges.txt`.

Cut: after op {cut['index']} of the {cut['ops']} ops of the unet's program as coremltools' milproto loader gives it
(op {cut['proto_index']} of the {cut['proto_ops']} ops in the proto: the loader makes three const ops of each iOS16
`constexpr_lut_to_dense`'s attributes), the {cut['type']} `{cut['name']}`: the first op that is not const /
constexpr, has a single output used by a single op, where the const bytes so far reach half of all of them
({cut['bytes_first']} of {cut['bytes_total']} bytes: {cut['bytes_first'] / kb:.0f} KiB up to the cut,
{(cut['bytes_total'] - cut['bytes_first']) / kb:.0f} KiB after). The variables crossing the cut (non-const outputs
of chunk 1 ops used by chunk 2 ops: the cut op's output, the skip connections, the time embedding, the transposed
encoder_hidden_states) are chunk 1's outputs and chunk 2's inputs, by name, in program order, in {boundary}.

- chunk 1 ({facts['ops']['c1']} ops, {facts['nonconst']['c1']} not const): inputs
{bullets(c1_in)}
  outputs
{bullets(c1_out)}
- chunk 2 ({facts['ops']['c2']} ops, {facts['nonconst']['c2']} not const): inputs (no input of the unet is needed)
{bullets(c2_in)}
  outputs
{bullets(c2_out)}

Running chunk 1 then chunk 2 (each chunk 2 input is chunk 1's output of that name, else the unet input of that
name) computes the palettized6 unet's `noise_pred`; the golden is
`tests/goldens/coreml/tiny_model/palettized6.safetensors`.

Weights: each const / `constexpr_lut_to_dense` op is in the chunk that uses it, under its original name with its
original value; the {len(facts['shared'])} used on both sides are in both
({", ".join(f"`{n}`" for n in facts['shared'])}, {facts['shared_const_bytes']} bytes).
Every other op of the unet is in exactly one chunk under its op name, except what coremltools' default MIL pipeline (which bisect_model runs on each chunk) renames: every
`transpose` op and its perm const get new builder names (`transpose_<n>`), the ops whose outputs chunk 1 casts
keep their op name but their fp16 output becomes `<var>_1`, and casts are named `cast_<n>`. The chunks have no
metadata (author, descriptions), as bisect_model's.
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
