"""Goldens for the MIL interpreter (src/mil): one small MIL program per case, its inputs and the
outputs numpy / torch compute for it, following the op semantics of coremltools'
mil/ops/defs/iOS15..iOS18 (their numpy value_inference where there is one).

Writes tests/goldens/mil/ops.json ({case: {program, inputs, outputs, tol}}) and
tests/goldens/mil/ops.safetensors ("<case>/<name>" float32 tensors for inputs and outputs).
tests/unit/test_mil_interpreter_ops.cpp runs every case. Deterministic (fixed seed); runs from any
folder of the repository (e.g. moved to tests/reference/ next to the other make_*.py scripts):

    python tests/goldens/mil/make_mil_goldens.py   (numpy, torch, safetensors: tests/reference/requirements.txt)

fp32 cases compare with a tolerance relative to the output's largest magnitude; fp16 cases model
Core ML's storage: inputs and every op result rounded to fp16, arithmetic in fp32.
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.numpy import save_file

def _repo_root():
    d = os.path.dirname(os.path.abspath(__file__))
    while not os.path.exists(os.path.join(d, "CMakeLists.txt")) or not os.path.isdir(os.path.join(d, "tests")):
        parent = os.path.dirname(d)
        if parent == d:
            raise SystemExit("make_mil_goldens.py: not inside the sdpal repository")
        d = parent
    return d


HERE = os.path.join(_repo_root(), "tests", "goldens", "mil")
RNG = np.random.default_rng(20240611)

CASES = {}
TENSORS = {}


# ---- MIL text helpers ---------------------------------------------------------------------------

def shp(s):
    return "[" + ", ".join(str(int(d)) for d in s) + "]"


def ttype(dt, s):
    return f"tensor<{dt}, {shp(s)}>"


def num(v):
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def i32(v):
    return f"int32({int(v)})"


def i32s(v):
    v = [int(a) for a in v]
    return f"tensor<int32, [{len(v)}]>([{', '.join(map(str, v))}])"


def f32(v):
    return f"fp32({num(v)})"


def boolean(v):
    return f"bool({'true' if v else 'false'})"


def bools(v):
    return f"tensor<bool, [{len(v)}]>([{', '.join('true' if a else 'false' for a in v)}])"


def string(s):
    return f'string("{s}")'


def lit(arr, dt):
    """A literal of MIL type `dt` holding `arr` (any rank; a scalar for rank 0)."""
    a = np.asarray(arr)

    def el(e):
        if dt.startswith("fp"):
            return num(e)
        if dt == "bool":
            return "true" if e else "false"
        return str(int(e))

    def rec(x):
        if x.ndim == 0:
            return el(x)
        return "[" + ", ".join(rec(e) for e in x) + "]"

    if a.ndim == 0:
        return f"{dt}({el(a)})"
    return f"{ttype(dt, a.shape)}({rec(a)})"


def op_line(outs, optype, args, attrs=None):
    """outs: [(name, dtype, shape)]; args: {name: text}; attrs: extra [..] attributes (text)."""
    o = ", ".join(f"{ttype(dt, s) if s is not None else dt} {n}" for n, dt, s in outs)
    a = ", ".join(f"{k} = {v}" for k, v in args.items())
    at = f'name = string("{outs[0][0]}")'
    if attrs:
        at = ", ".join([f"{k} = {v}" for k, v in attrs.items()] + [at])
    return f"{o} = {optype}({a})[{at}];"


def program(inputs, lines, outputs, opset="ios18"):
    args = ", ".join(f"{ttype(dt, a.shape)} {n}" for n, dt, a in inputs)
    body = "".join("        " + l + "\n" for l in lines)
    return f"program(1.3)\n{{\n    func main<{opset}>({args}) {{\n{body}    }} -> ({', '.join(outputs)});\n}}\n"


def f16(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def add_case(name, inputs, lines, outputs, tol=1e-5, opset="ios18"):
    """inputs: [(name, mil dtype, array)]; outputs: [(name, array)]."""
    assert name not in CASES, name
    CASES[name] = {
        "program": program(inputs, lines, [n for n, _ in outputs], opset),
        "inputs": [n for n, _, _ in inputs],
        "outputs": [n for n, _ in outputs],
        "tol": tol,
    }
    for n, _, a in inputs:
        TENSORS[f"{name}/{n}"] = np.array(a, np.float32, order="C")  # keeps rank 0 (ascontiguousarray would not)
    for n, a in outputs:
        TENSORS[f"{name}/{n}"] = np.array(a, np.float32, order="C")


def rnd(*shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, size=shape).astype(np.float32)


def simple(name, optype, x, y, args=None, dt="fp32", tol=1e-5, extra_inputs=(), opset="ios18"):
    """One op on input x (plus extra inputs), output y."""
    a = {"x": "x"}
    a.update(args or {})
    ins = [("x", dt, x)] + list(extra_inputs)
    out_dt = dt if y.dtype != np.int32 and y.dtype != np.bool_ else ("int32" if y.dtype == np.int32 else "bool")
    add_case(name, ins, [op_line([("y", out_dt, y.shape)], optype, a)], [("y", y)], tol, opset)


# ---- element-wise -------------------------------------------------------------------------------

def erf(a):
    return np.vectorize(math.erf)(np.asarray(a, np.float64))


def sig(a):
    return 1.0 / (1.0 + np.exp(-np.asarray(a, np.float64)))


def unary_cases():
    x = rnd(2, 3, 4)
    u = rnd(2, 3, 4, lo=-0.95, hi=0.95)
    p = rnd(2, 3, 4, lo=0.1, hi=3.0)
    xd = x.astype(np.float64)
    table = [
        ("abs", x, np.abs(x)), ("acos", u, np.arccos(u)), ("asin", u, np.arcsin(u)), ("atan", x, np.arctan(x)),
        ("atanh", u, np.arctanh(u)), ("ceil", x * 3, np.ceil(x * 3)), ("cos", x, np.cos(x)), ("cosh", x, np.cosh(x)),
        ("erf", x, erf(x)), ("exp", x, np.exp(x)), ("exp2", x, np.exp2(x)), ("floor", x * 3, np.floor(x * 3)),
        ("round", np.float32([[0.5, 1.5, 2.5, -0.5, -1.5, 0.4, -2.6, 3.49]]), np.round(np.float32([[0.5, 1.5, 2.5, -0.5, -1.5, 0.4, -2.6, 3.49]]))),
        ("sign", np.float32([[-2, 0, 3, -0.0]]), np.sign(np.float32([[-2, 0, 3, -0.0]]))),
        ("sin", x, np.sin(x)), ("sinh", x, np.sinh(x)), ("sqrt", p, np.sqrt(p)), ("square", x, np.square(x)),
        ("tan", u, np.tan(u)), ("tanh", x, np.tanh(x)), ("relu", x, np.maximum(x, 0)),
        ("relu6", x * 4, np.minimum(np.maximum(x * 4, 0), 6)), ("sigmoid", x, sig(x)), ("silu", x, xd * sig(xd)),
        ("softsign", x, x / (1 + np.abs(x))), ("softplus", x * 20, np.log1p(np.exp(-np.abs(xd * 20))) + np.maximum(xd * 20, 0)),
    ]
    for name, inp, out in table:
        simple(name, name, np.float32(inp), np.float32(out), tol=1e-6)
    simple("logical_not", "logical_not", np.float32([[0, 1, 0, 1]]), np.bool_([[1, 0, 1, 0]]), dt="bool", tol=0)
    simple("inverse", "inverse", p, np.float32(1 / (p.astype(np.float64) + 1e-4)))
    simple("inverse_eps", "inverse", p, np.float32(1 / (p.astype(np.float64) + 0.5)), {"epsilon": f32(0.5)})
    simple("log", "log", p, np.float32(np.log(p.astype(np.float64))), tol=1e-6)
    simple("log_eps", "log", p, np.float32(np.log(p.astype(np.float64) + 0.25)), {"epsilon": f32(0.25)}, tol=1e-6)
    simple("rsqrt", "rsqrt", p, np.float32(1 / np.sqrt(p.astype(np.float64) + 1e-12)), tol=1e-6)
    simple("rsqrt_eps", "rsqrt", p, np.float32(1 / np.sqrt(p.astype(np.float64) + 0.5)), {"epsilon": f32(0.5)}, tol=1e-6)
    simple("threshold", "threshold", x, np.maximum(x, 0.25), {"alpha": f32(0.25)})
    simple("clip", "clip", x, np.minimum(np.maximum(x, -0.5), 1.25), {"alpha": f32(-0.5), "beta": f32(1.25)})
    simple("leaky_relu", "leaky_relu", x, np.where(x < 0, x * np.float32(0.1), x), {"alpha": f32(0.1)})
    simple("elu", "elu", x, np.float32(np.where(x < 0, 0.7 * (np.exp(xd) - 1), xd)), {"alpha": f32(0.7)}, tol=1e-6)
    simple("thresholded_relu", "thresholded_relu", x, np.where(x < 0.3, 0, x), {"alpha": f32(0.3)})
    simple("linear_activation", "linear_activation", x, np.float32(1.5 * xd - 0.25), {"alpha": f32(1.5), "beta": f32(-0.25)})
    simple("scaled_tanh", "scaled_tanh", x, np.float32(1.5 * np.tanh(xd * 0.75)), {"alpha": f32(1.5), "beta": f32(0.75)}, tol=1e-6)
    simple("sigmoid_hard", "sigmoid_hard", x, np.float32(np.minimum(np.maximum(0.2 * xd + 0.5, 0), 1)),
           {"alpha": f32(0.2), "beta": f32(0.5)})
    simple("clamped_relu", "clamped_relu", x * 3,
           np.float32(np.minimum(np.maximum(xd * 3, 0), 2.0) + np.minimum(np.minimum(xd * 3, 0) * 0.1, 2.0)),
           {"alpha": f32(0.1), "beta": f32(2.0)})
    alpha = np.float32([0.1, -0.5, 2.0])
    simple("prelu", "prelu", x, np.float32(np.where(x > 0, x, x * alpha[None, :, None])), {"alpha": lit(alpha, "fp32")})
    t = torch.from_numpy(xd * 2)
    simple("gelu_default", "gelu", x * 2, np.float32(torch.nn.functional.gelu(t).numpy()), tol=1e-6)
    simple("gelu_exact", "gelu", x * 2, np.float32(torch.nn.functional.gelu(t).numpy()), {"mode": string("EXACT")}, tol=1e-6)
    simple("gelu_tanh", "gelu", x * 2, np.float32(torch.nn.functional.gelu(t, approximate="tanh").numpy()),
           {"mode": string("TANH_APPROXIMATION")}, tol=1e-6)
    simple("gelu_sigmoid", "gelu", x * 2, np.float32(xd * 2 * sig(1.702 * xd * 2)), {"mode": string("SIGMOID_APPROXIMATION")}, tol=1e-6)
    simple("identity", "identity", x, x, tol=0)


def binary_cases():
    a = rnd(2, 1, 4)
    b = rnd(3, 1)
    pa = rnd(2, 3, 4, lo=0.2, hi=2.0)
    table = [
        ("add", a, b, a + b), ("sub", a, b, a - b), ("mul", a, b, a * b), ("real_div", a, b, a / b),
        ("pow", pa, np.float32([1.5, -0.5, 2.0, 0.25]), np.power(pa.astype(np.float64), np.float64([1.5, -0.5, 2.0, 0.25]))),
        ("maximum", a, b, np.maximum(a, b)), ("minimum", a, b, np.minimum(a, b)),
        ("floor_div", a * 4, b, np.floor_divide(a * 4, b)), ("mod", a * 4, b, np.mod(a * 4, b)),
    ]
    for name, x, y, out in table:
        add_case(name, [("x", "fp32", x), ("y", "fp32", y)],
                 [op_line([("z", "fp32", np.shape(out))], name, {"x": "x", "y": "y"})], [("z", np.float32(out))], 1e-6)
    xi = np.float32([[1, 2, 3, 4], [4, 3, 2, 1]])
    yi = np.float32([[2], [3]])
    for name, fn in [("equal", np.equal), ("not_equal", np.not_equal), ("less", np.less), ("less_equal", np.less_equal),
                     ("greater", np.greater), ("greater_equal", np.greater_equal)]:
        add_case(name, [("x", "fp32", xi), ("y", "fp32", yi)],
                 [op_line([("z", "bool", (2, 4))], name, {"x": "x", "y": "y"})], [("z", fn(xi, yi))], 0)
    bx = np.float32([[0, 0, 1, 1]])
    by = np.float32([[0], [1]])
    for name, fn in [("logical_and", np.logical_and), ("logical_or", np.logical_or), ("logical_xor", np.logical_xor)]:
        add_case(name, [("x", "bool", bx), ("y", "bool", by)],
                 [op_line([("z", "bool", (2, 4))], name, {"x": "x", "y": "y"})], [("z", fn(bx, by))], 0)
    # Scalar and int operands, and a constant operand.
    add_case("add_int", [("x", "int32", np.float32([[1, -2], [3, 4]]))],
             [op_line([("z", "int32", (2, 2))], "add", {"x": "x", "y": i32(7)})], [("z", np.float32([[8, 5], [10, 11]]))], 0)
    c = rnd(4)
    add_case("mul_const", [("x", "fp32", a)], [op_line([("z", "fp32", (2, 1, 4))], "mul", {"x": "x", "y": lit(c, "fp32")})],
             [("z", a * c)], 1e-6)
    cond = np.float32([[1, 0, 1], [0, 0, 1]])
    sa = rnd(2, 3)
    sb = rnd(3)
    add_case("select", [("cond", "bool", cond), ("a", "fp32", sa), ("b", "fp32", sb)],
             [op_line([("z", "fp32", (2, 3))], "select", {"cond": "cond", "a": "a", "b": "b"})],
             [("z", np.where(cond != 0, sa, sb))], 0)


def cast_cases():
    x = np.float32([[-2.7, -0.5, 0.0, 0.4, 1.9, 3.0]])
    add_case("cast_fp32_int32", [("x", "fp32", x)], [op_line([("y", "int32", x.shape)], "cast", {"x": "x", "dtype": string("int32")})],
             [("y", x.astype(np.int32))], 0)
    add_case("cast_fp32_bool", [("x", "fp32", x)], [op_line([("y", "bool", x.shape)], "cast", {"x": "x", "dtype": string("bool")})],
             [("y", x.astype(np.bool_))], 0)
    add_case("cast_int32_fp32", [("x", "int32", np.float32([[3, -4]]))],
             [op_line([("y", "fp32", (1, 2))], "cast", {"x": "x", "dtype": string("fp32")})], [("y", np.float32([[3, -4]]))], 0)
    v = np.float32([[1.0001, 3.14159265, -65519.0, 70000.0, 1e-6, 1e-8]])
    with np.errstate(over="ignore"):  # 70000 -> inf, as in fp16
        v16 = v.astype(np.float16).astype(np.float32)
    add_case("cast_fp32_fp16", [("x", "fp32", v)], [op_line([("y", "fp16", v.shape)], "cast", {"x": "x", "dtype": string("fp16")})],
             [("y", v16)], 0)


# ---- tensor ops ---------------------------------------------------------------------------------

def tensor_cases():
    x = rnd(2, 3, 4)
    simple("reshape", "reshape", x, x.reshape(4, 6), {"shape": i32s([4, -1])}, tol=0)
    simple("reshape_zero_ios16", "reshape", x, x.reshape(2, 6, 2), {"shape": i32s([0, -1, 2])}, tol=0, opset="ios16")
    # iOS17+: a 0 copies the x dimension at the same place counted from the right.
    simple("reshape_zero_ios18", "reshape", x, x.reshape(1, 2, 3, 4), {"shape": i32s([1, 0, -1, 0])}, tol=0)
    simple("transpose", "transpose", x, np.transpose(x, (2, 0, 1)), {"perm": i32s([-1, 0, 1])}, tol=0)
    y = rnd(2, 5, 1, 6)
    simple("transpose_unit", "transpose", y, np.transpose(y, (0, 2, 1, 3)), {"perm": i32s([0, 2, 1, 3])}, tol=0)
    simple("expand_dims", "expand_dims", x, x.reshape(2, 1, 3, 4, 1), {"axes": i32s([1, -1])}, tol=0)
    z = rnd(1, 3, 1, 4)
    simple("squeeze_all", "squeeze", z, z.reshape(3, 4), tol=0)
    simple("squeeze_axes", "squeeze", z, z.reshape(3, 1, 4), {"axes": i32s([0, 1])}, tol=0)  # non-unit axis 1 kept
    a, b, c = rnd(2, 1, 4), rnd(2, 3, 4), rnd(2, 2, 4)
    add_case("concat", [("a", "fp32", a), ("b", "fp32", b), ("c", "fp32", c)],
             [op_line([("y", "fp32", (2, 6, 4))], "concat", {"values": "(a, b, c)", "axis": i32(-2), "interleave": boolean(False)})],
             [("y", np.concatenate([a, b, c], axis=1))], 0)
    p, q = rnd(3, 2), rnd(3, 2)
    inter = np.stack([p, q], axis=1).reshape(6, 2)
    add_case("concat_interleave", [("p", "fp32", p), ("q", "fp32", q)],
             [op_line([("y", "fp32", (6, 2))], "concat", {"values": "(p, q)", "axis": i32(0), "interleave": boolean(True)})],
             [("y", inter)], 0)
    s = rnd(2, 7, 3)
    add_case("split_sizes", [("x", "fp32", s)],
             [op_line([("a", "fp32", (2, 2, 3)), ("b", "fp32", (2, 5, 3))], "split", {"x": "x", "axis": i32(1), "split_sizes": i32s([2, 5])})],
             [("a", s[:, :2]), ("b", s[:, 2:])], 0)
    add_case("split_num", [("x", "fp32", s)],
             [op_line([("a", "fp32", (2, 7, 1)), ("b", "fp32", (2, 7, 1)), ("c", "fp32", (2, 7, 1))], "split",
                      {"x": "x", "axis": i32(-1), "num_splits": i32(3)})],
             [("a", s[..., 0:1]), ("b", s[..., 1:2]), ("c", s[..., 2:3])], 0)
    add_case("stack", [("a", "fp32", p), ("b", "fp32", q)],
             [op_line([("y", "fp32", (3, 2, 2))], "stack", {"values": "(a, b)", "axis": i32(-1)})],
             [("y", np.stack([p, q], axis=-1))], 0)
    w = rnd(4, 5, 6)
    simple("slice_by_index", "slice_by_index", w, w[1:4:2, -4:, ::-2],
           {"begin": i32s([1, -4, 0]), "end": i32s([4, 0, 0]), "stride": i32s([2, 1, -2]),
            "begin_mask": bools([False, False, True]), "end_mask": bools([False, True, True])}, tol=0)
    simple("slice_by_index_squeeze", "slice_by_index", w, w[2, 1:3, -1],
           {"begin": i32s([2, 1, -1]), "end": i32s([3, 3, 0]), "squeeze_mask": bools([True, False, True])}, tol=0)
    simple("slice_by_index_clamp", "slice_by_index", w, w[:, 3:100, -100:2],
           {"begin": i32s([0, 3, -100]), "end": i32s([4, 100, 2])}, tol=0)
    simple("slice_by_index_neg_stride", "slice_by_index", w, w[3:0:-1, 4:-7:-2, 5:1:-3],
           {"begin": i32s([3, 4, 5]), "end": i32s([0, -7, 1]), "stride": i32s([-1, -2, -3])}, tol=0)
    simple("slice_by_size", "slice_by_size", w, w[1:3, -3:, 2:6], {"begin": i32s([1, -3, 2]), "size": i32s([2, -1, 4])}, tol=0)
    idx = np.float32([[0, 3], [-1, 2], [1, 1]])
    simple("gather", "gather", x, np.take(x, idx.astype(np.int64), axis=2), {"indices": "i", "axis": i32(2)},
           extra_inputs=[("i", "int32", idx)], tol=0)
    table = rnd(10, 3)
    ids = np.float32([[4, 0, 9, 4]])
    simple("gather_axis0", "gather", table, table[ids.astype(np.int64)], {"indices": "i"}, extra_inputs=[("i", "int32", ids)], tol=0)
    bidx = np.float32([[2, 0], [1, 1]])
    g = np.stack([np.take(x[k], bidx[k].astype(np.int64), axis=1) for k in range(2)])
    simple("gather_batch_dims", "gather", x, g, {"indices": "i", "axis": i32(2), "batch_dims": i32(1)},
           extra_inputs=[("i", "int32", bidx)], tol=0)
    nd = np.float32([[[1, 2], [0, 0]], [[1, 0], [0, -1]]])
    ref = np.stack([x[int(i), int(j)] for i, j in nd.reshape(-1, 2)]).reshape(2, 2, 4)
    simple("gather_nd", "gather_nd", x, ref, {"indices": "i"}, extra_inputs=[("i", "int32", nd)], tol=0)
    nb = np.float32([[[2], [0]], [[1], [1]]])
    refb = np.stack([np.stack([x[k, int(nb[k, j, 0])] for j in range(2)]) for k in range(2)])
    simple("gather_nd_batch", "gather_nd", x, refb, {"indices": "i", "batch_dims": i32(1)}, extra_inputs=[("i", "int32", nb)], tol=0)
    ga = RNG.integers(0, 3, size=(2, 2, 4)).astype(np.float32)
    simple("gather_along_axis", "gather_along_axis", x, np.take_along_axis(x, ga.astype(np.int64), axis=1),
           {"indices": "i", "axis": i32(1)}, extra_inputs=[("i", "int32", ga)], tol=0)
    simple("tile", "tile", p, np.tile(p, (2, 3)), {"reps": i32s([2, 3])}, tol=0)
    img = rnd(1, 2, 3, 4)
    simple("pad_constant", "pad", img, np.pad(img, ((0, 0), (0, 0), (1, 2), (0, 1)), constant_values=0.5),
           {"pad": i32s([1, 2, 0, 1]), "mode": string("constant"), "constant_val": f32(0.5)}, tol=0)
    simple("pad_reflect", "pad", img, np.pad(img, ((0, 0), (0, 0), (2, 1), (3, 1)), mode="reflect"),
           {"pad": i32s([2, 1, 3, 1]), "mode": string("reflect")}, tol=0)
    simple("pad_replicate", "pad", img, np.pad(img, ((0, 0), (1, 0), (0, 0), (2, 3)), mode="edge"),
           {"pad": i32s([1, 0, 0, 0, 2, 3]), "mode": string("replicate")}, tol=0)
    add_case("range_1d", [], [op_line([("y", "fp32", (6,))], "range_1d", {"start": f32(-1.0), "end": f32(2.0), "step": f32(0.5)})],
             [("y", np.arange(-1.0, 2.0, 0.5))], 0)
    add_case("range_1d_int", [], [op_line([("y", "int32", (3,))], "range_1d", {"start": i32(10), "end": i32(1), "step": i32(-3)})],
             [("y", np.arange(10, 1, -3))], 0)
    add_case("fill", [], [op_line([("y", "fp32", (2, 3))], "fill", {"shape": i32s([2, 3]), "value": f32(1.5)})],
             [("y", np.full((2, 3), 1.5))], 0)
    m = rnd(2, 4, 5)
    i_, j_ = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    simple("band_part", "band_part", m, m * (((i_ - j_) <= 1) & ((j_ - i_) <= 2)), {"lower": i32(1), "upper": i32(2)}, tol=0)
    simple("band_part_lower", "band_part", m, m * np.tril(np.ones((4, 5))), {"lower": i32(-1), "upper": i32(0)}, tol=0)
    simple("upsample_nearest_neighbor", "upsample_nearest_neighbor", img, img.repeat(2, axis=2).repeat(3, axis=3),
           {"scale_factor_height": f32(2.0), "scale_factor_width": i32(3)}, tol=0)
    add_case("shape", [("x", "fp32", x)], [op_line([("y", "int32", (3,))], "shape", {"x": "x"})], [("y", np.float32([2, 3, 4]))], 0)
    simple("reverse", "reverse", x, x[:, ::-1, ::-1], {"axes": i32s([1, -1])}, tol=0)
    simple("flatten2d", "flatten2d", x, x.reshape(6, 4), {"axis": i32(2)}, tol=0)


# ---- linear algebra -----------------------------------------------------------------------------

def conv_ref(x, w, b, stride, pad, dil, groups):
    """pad: (top, bottom, left, right) for 2-D; (left, right) for 1-D."""
    t = torch.from_numpy(x.astype(np.float64))
    if x.ndim == 4:
        t = torch.nn.functional.pad(t, (pad[2], pad[3], pad[0], pad[1]))
        y = torch.nn.functional.conv2d(t, torch.from_numpy(w.astype(np.float64)),
                                       None if b is None else torch.from_numpy(b.astype(np.float64)), stride, 0, dil, groups)
    else:
        t = torch.nn.functional.pad(t, (pad[0], pad[1]))
        y = torch.nn.functional.conv1d(t, torch.from_numpy(w.astype(np.float64)),
                                       None if b is None else torch.from_numpy(b.astype(np.float64)), stride, 0, dil, groups)
    return np.float32(y.numpy())


def linalg_cases():
    x = rnd(2, 4, 9, 8)
    w = rnd(6, 2, 3, 3, lo=-0.5, hi=0.5)
    b = rnd(6)
    y = conv_ref(x, w, b, (2, 1), (1, 2, 0, 1), (1, 2), 2)
    add_case("conv_custom", [("x", "fp32", x)],
             [op_line([("y", "fp32", y.shape)], "conv",
                      {"x": "x", "weight": lit(w, "fp32"), "bias": lit(b, "fp32"), "strides": i32s([2, 1]),
                       "pad_type": string("custom"), "pad": i32s([1, 2, 0, 1]), "dilations": i32s([1, 2]), "groups": i32(2)})],
             [("y", y)], 1e-5)
    w2 = rnd(5, 4, 3, 2, lo=-0.5, hi=0.5)
    # same: out = ceil(in / stride); total pad = max(0, s*ceil(i/s) - i + k - s), extra at the end.
    def same_pad(i, k, s):
        t = max(0, s * math.ceil(i / s) - i + k - s)
        return t // 2, t - t // 2
    ph, pw = same_pad(9, 3, 2), same_pad(8, 2, 3)
    y2 = conv_ref(x, w2, None, (2, 3), (ph[0], ph[1], pw[0], pw[1]), (1, 1), 1)
    add_case("conv_same", [("x", "fp32", x)],
             [op_line([("y", "fp32", y2.shape)], "conv",
                      {"x": "x", "weight": lit(w2, "fp32"), "strides": i32s([2, 3]), "pad_type": string("same")})],
             [("y", y2)], 1e-5)
    y2l = conv_ref(x, w2, None, (2, 3), (ph[1], ph[0], pw[1], pw[0]), (1, 1), 1)
    add_case("conv_same_lower", [("x", "fp32", x)],
             [op_line([("y", "fp32", y2l.shape)], "conv",
                      {"x": "x", "weight": lit(w2, "fp32"), "strides": i32s([2, 3]), "pad_type": string("same_lower")})],
             [("y", y2l)], 1e-5)
    w3 = rnd(7, 4, 1, 1)
    b3 = rnd(7)
    y3 = conv_ref(x, w3, b3, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    add_case("conv_pointwise", [("x", "fp32", x)],
             [op_line([("y", "fp32", y3.shape)], "conv",
                      {"x": "x", "weight": lit(w3, "fp32"), "bias": lit(b3, "fp32"), "pad_type": string("valid")})],
             [("y", y3)], 1e-5)
    x1 = rnd(2, 3, 10)
    w4 = rnd(4, 3, 3)
    y4 = conv_ref(x1, w4, None, (1,), (1, 1), (2,), 1)
    add_case("conv_1d", [("x", "fp32", x1)],
             [op_line([("y", "fp32", y4.shape)], "conv",
                      {"x": "x", "weight": lit(w4, "fp32"), "pad_type": string("custom"), "pad": i32s([1, 1]),
                       "dilations": i32s([2])})],
             [("y", y4)], 1e-5)
    wd = rnd(4, 1, 3, 3)
    yd = conv_ref(x, wd, None, (1, 1), (1, 1, 1, 1), (1, 1), 4)
    add_case("conv_depthwise", [("x", "fp32", x)],
             [op_line([("y", "fp32", yd.shape)], "conv",
                      {"x": "x", "weight": lit(wd, "fp32"), "pad_type": string("custom"), "pad": i32s([1, 1, 1, 1]), "groups": i32(4)})],
             [("y", yd)], 1e-5)

    a = rnd(2, 1, 3, 5)
    bb = rnd(4, 5, 6)
    add_case("matmul_broadcast", [("x", "fp32", a), ("y", "fp32", bb)],
             [op_line([("z", "fp32", (2, 4, 3, 6))], "matmul", {"x": "x", "y": "y"})], [("z", np.matmul(a, bb))], 1e-5)
    at = rnd(3, 5, 2)
    bt = rnd(3, 4, 5)
    add_case("matmul_transposed", [("x", "fp32", at), ("y", "fp32", bt)],
             [op_line([("z", "fp32", (3, 2, 4))], "matmul",
                      {"x": "x", "y": "y", "transpose_x": boolean(True), "transpose_y": boolean(True)})],
             [("z", np.matmul(np.swapaxes(at, -1, -2), np.swapaxes(bt, -1, -2)))], 1e-5)
    v = rnd(5)
    add_case("matmul_vector", [("x", "fp32", v), ("y", "fp32", bb)],
             [op_line([("z", "fp32", (4, 6))], "matmul", {"x": "x", "y": "y"})], [("z", np.matmul(v, bb))], 1e-5)
    sx, sy = rnd(3, 4, 5), rnd(5, 2)
    add_case("matmul_shared_y", [("x", "fp32", sx), ("y", "fp32", sy)],
             [op_line([("z", "fp32", (3, 4, 2))], "matmul", {"x": "x", "y": "y"})], [("z", np.matmul(sx, sy))], 1e-5)
    xl = rnd(2, 3, 8)
    wl = rnd(5, 8)
    bl = rnd(5)
    add_case("linear", [("x", "fp32", xl)],
             [op_line([("y", "fp32", (2, 3, 5))], "linear", {"x": "x", "weight": lit(wl, "fp32"), "bias": lit(bl, "fp32")})],
             [("y", xl @ wl.T + bl)], 1e-5)
    add_case("linear_nobias", [("x", "fp32", xl[0])],
             [op_line([("y", "fp32", (3, 5))], "linear", {"x": "x", "weight": lit(wl, "fp32")})], [("y", xl[0] @ wl.T)], 1e-5)
    # The equations of split_einsum attention, with the broadcasting MIL allows on B and H.
    q = rnd(2, 8, 1, 6)   # b c h q
    k = rnd(2, 5, 1, 8)   # b k h c
    add_case("einsum_bkhc_bchq", [("k", "fp32", k), ("q", "fp32", q)],
             [op_line([("y", "fp32", (2, 5, 1, 6))], "einsum", {"values": "(k, q)", "equation": string("bkhc,bchq->bkhq")})],
             [("y", np.einsum("bkhc,bchq->bkhq", k, q))], 1e-5)
    vv = rnd(2, 8, 3, 5)  # b c h k
    ww = rnd(1, 5, 3, 6)  # b k h q (b broadcast)
    add_case("einsum_bchk_bkhq", [("v", "fp32", vv), ("w", "fp32", ww)],
             [op_line([("y", "fp32", (2, 8, 3, 6))], "einsum", {"values": "(v, w)", "equation": string("bchk,bkhq->bchq")})],
             [("y", np.einsum("bchk,bkhq->bchq", vv, np.broadcast_to(ww, (2, 5, 3, 6))))], 1e-5)
    e1, e2 = rnd(3, 4), rnd(4, 5)
    add_case("einsum_transposed_out", [("a", "fp32", e1), ("b", "fp32", e2)],
             [op_line([("y", "fp32", (5, 3))], "einsum", {"values": "(a, b)", "equation": string("ij,jk->ki")})],
             [("y", np.einsum("ij,jk->ki", e1, e2))], 1e-5)
    e3 = rnd(3, 4, 2)
    add_case("einsum_sum_out", [("a", "fp32", e3), ("b", "fp32", e2)],
             [op_line([("y", "fp32", (3, 5))], "einsum", {"values": "(a, b)", "equation": string("ijz,jk->ik")})],
             [("y", np.einsum("ijz,jk->ik", e3, e2))], 1e-5)
    # scaled_dot_product_attention (iOS18).
    sq, sk, sv = rnd(2, 3, 4, 8), rnd(2, 3, 5, 8), rnd(2, 3, 5, 6)
    mask = rnd(4, 5)
    tq, tk, tv = (torch.from_numpy(a.astype(np.float64)) for a in (sq, sk, sv))
    ref = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(mask.astype(np.float64)))
    add_case("sdpa_float_mask", [("q", "fp32", sq), ("k", "fp32", sk), ("v", "fp32", sv), ("m", "fp32", mask)],
             [op_line([("y", "fp32", (2, 3, 4, 6))], "scaled_dot_product_attention",
                      {"query": "q", "key": "k", "value": "v", "attn_mask": "m"})],
             [("y", np.float32(ref.numpy()))], 1e-5)
    bm = np.tril(np.ones((4, 5), bool))
    refb = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(bm))
    add_case("sdpa_bool_mask", [("q", "fp32", sq), ("k", "fp32", sk), ("v", "fp32", sv), ("m", "bool", bm)],
             [op_line([("y", "fp32", (2, 3, 4, 6))], "scaled_dot_product_attention",
                      {"query": "q", "key": "k", "value": "v", "attn_mask": "m"})],
             [("y", np.float32(refb.numpy()))], 1e-5)


# ---- reductions and normalization ---------------------------------------------------------------

def reduce_cases():
    x = rnd(2, 3, 4, 5)
    xd = x.astype(np.float64)
    p = rnd(2, 3, 4, 5, lo=0.5, hi=1.5)
    ops = [
        ("reduce_sum", x, lambda a, ax, kd: np.sum(a, axis=ax, keepdims=kd)),
        ("reduce_mean", x, lambda a, ax, kd: np.mean(a, axis=ax, keepdims=kd)),
        ("reduce_prod", p, lambda a, ax, kd: np.prod(a, axis=ax, keepdims=kd)),
        ("reduce_max", x, lambda a, ax, kd: np.max(a, axis=ax, keepdims=kd)),
        ("reduce_min", x, lambda a, ax, kd: np.min(a, axis=ax, keepdims=kd)),
        ("reduce_l1_norm", x, lambda a, ax, kd: np.sum(np.abs(a), axis=ax, keepdims=kd)),
        ("reduce_l2_norm", x, lambda a, ax, kd: np.sqrt(np.sum(a * a, axis=ax, keepdims=kd))),
        ("reduce_log_sum", p, lambda a, ax, kd: np.log(np.sum(a, axis=ax, keepdims=kd))),
        ("reduce_log_sum_exp", x, lambda a, ax, kd: np.log(np.sum(np.exp(a), axis=ax, keepdims=kd))),
        ("reduce_sum_square", x, lambda a, ax, kd: np.sum(a * a, axis=ax, keepdims=kd)),
    ]
    for name, inp, fn in ops:
        d = inp.astype(np.float64)
        simple(name, name, inp, np.float32(fn(d, (1, 3), False)), {"axes": i32s([1, -1]), "keep_dims": boolean(False)}, tol=1e-6)
        simple(name + "_trailing_keep", name, inp, np.float32(fn(d, (2, 3), True)), {"axes": i32s([2, 3]), "keep_dims": boolean(True)}, tol=1e-6)
    simple("reduce_mean_middle", "reduce_mean", x, np.float32(np.mean(xd, axis=1, keepdims=True)),
           {"axes": i32s([1]), "keep_dims": boolean(True)}, tol=1e-6)
    simple("reduce_sum_all", "reduce_sum", x, np.float32(np.sum(xd)), tol=1e-6)
    xa = x.copy()
    xa[0, 1, 2, 1] = xa[0, 1, 2, 3] = 5.0  # ties: first index
    simple("reduce_argmax", "reduce_argmax", xa, np.argmax(xa, axis=-1).astype(np.int32), {"axis": i32(-1)}, tol=0)
    simple("reduce_argmin_keep", "reduce_argmin", x, np.argmin(x, axis=1, keepdims=True).astype(np.int32),
           {"axis": i32(1), "keep_dims": boolean(True)}, tol=0)
    def softmax(a, ax):
        e = np.exp(a - np.max(a, axis=ax, keepdims=True))
        return e / np.sum(e, axis=ax, keepdims=True)
    simple("softmax", "softmax", x * 3, np.float32(softmax(xd * 3, -1)), tol=1e-6)
    simple("softmax_axis1", "softmax", x * 3, np.float32(softmax(xd * 3, 1)), {"axis": i32(1)}, tol=1e-6)
    mean, var, gamma, beta = rnd(3), rnd(3, lo=0.1, hi=2.0), rnd(3), rnd(3)
    bn = (xd - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-3) * gamma[None, :, None, None] + beta[None, :, None, None]
    simple("batch_norm", "batch_norm", x, np.float32(bn),
           {"mean": lit(mean, "fp32"), "variance": lit(var, "fp32"), "gamma": lit(gamma, "fp32"), "beta": lit(beta, "fp32"),
            "epsilon": f32(1e-3)}, tol=1e-6)
    bn0 = (xd - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    simple("batch_norm_defaults", "batch_norm", x, np.float32(bn0), {"mean": lit(mean, "fp32"), "variance": lit(var, "fp32")}, tol=1e-6)
    g5, b5 = rnd(5), rnd(5)
    mu = xd.mean(-1, keepdims=True)
    ln = (xd - mu) / np.sqrt(((xd - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * g5 + b5
    simple("layer_norm", "layer_norm", x, np.float32(ln),
           {"axes": i32s([-1]), "gamma": lit(g5, "fp32"), "beta": lit(b5, "fp32"), "epsilon": f32(1e-5)}, tol=1e-5)
    g35 = rnd(3, 5)
    mu = xd.mean((1, 3), keepdims=True)
    ln2 = (xd - mu) / np.sqrt(((xd - mu) ** 2).mean((1, 3), keepdims=True) + 1e-2) * g35[None, :, None, :]
    simple("layer_norm_axes_1_3", "layer_norm", x, np.float32(ln2), {"axes": i32s([3, 1]), "gamma": lit(g35, "fp32"), "epsilon": f32(1e-2)},
           tol=1e-5)
    mu = xd.mean(keepdims=True)
    simple("layer_norm_all", "layer_norm", x, np.float32((xd - mu) / np.sqrt(((xd - mu) ** 2).mean() + 1e-5)), tol=1e-5)
    mu = xd.mean((2, 3), keepdims=True)
    inn = (xd - mu) / np.sqrt(((xd - mu) ** 2).mean((2, 3), keepdims=True) + 1e-4) * gamma[None, :, None, None] + beta[None, :, None, None]
    simple("instance_norm", "instance_norm", x, np.float32(inn),
           {"gamma": lit(gamma, "fp32"), "beta": lit(beta, "fp32"), "epsilon": f32(1e-4)}, tol=1e-5)


# ---- constexpr ops ------------------------------------------------------------------------------

def pack_lsb(values, nbits):
    """LSB-first bit packing (weight.bin and palettized indices)."""
    bits = []
    for v in values:
        bits.extend((int(v) >> b) & 1 for b in range(nbits))
    while len(bits) % 8:
        bits.append(0)
    return [sum(bits[i + b] << b for b in range(8)) for i in range(0, len(bits), 8)]


def constexpr_cases():
    x = rnd(2, 6)
    # iOS16 form: uint8 packed indices, one table, explicit shape.
    lut = rnd(8)
    ind = RNG.integers(0, 8, size=(6, 4))
    w = lut[ind]
    lines = [
        f"{ttype('fp32', (6, 4))} w = constexpr_lut_to_dense(indices = {lit(np.array(pack_lsb(ind.ravel(), 3)), 'uint8')}, "
        f"lut = {lit(lut, 'fp32')}, shape = tensor<uint32, [2]>([6, 4]))[name = string(\"w\")];",
        op_line([("y", "fp32", (2, 4))], "matmul", {"x": "x", "y": "w"}),
    ]
    add_case("lut_to_dense_ios16", [("x", "fp32", x)], lines, [("y", x @ w)], 1e-5, opset="ios16")
    # iOS18 form: uint2 indices, per-row-group tables of 2-vectors along axis 1.
    lut18 = rnd(2, 1, 4, 2)  # 2 groups along axis 0, 4 entries, vectors of 2
    ind18 = RNG.integers(0, 4, size=(6, 2))  # index shape: [6, 4 / 2]
    w18 = np.zeros((6, 4), np.float32)
    for i in range(6):
        for j in range(2):
            w18[i, 2 * j:2 * j + 2] = lut18[i // 3, 0, ind18[i, j]]
    lines = [
        f"{ttype('fp32', (6, 4))} w = constexpr_lut_to_dense(indices = {lit(ind18, 'uint2')}, lut = {lit(lut18, 'fp32')}, "
        f"vector_axis = int32(1))[name = string(\"w\")];",
        op_line([("y", "fp32", (2, 4))], "matmul", {"x": "x", "y": "w"}),
    ]
    add_case("lut_to_dense_ios18", [("x", "fp32", x)], lines, [("y", x @ w18)], 1e-5)
    q = RNG.integers(0, 256, size=(6, 4))
    zp = np.float32([128, 120, 130, 127])
    sc = np.float32([0.01, 0.02, 0.005, 0.03])
    wq = (q - zp) * sc
    lines = [
        f"{ttype('fp32', (6, 4))} w = constexpr_affine_dequantize(quantized_data = {lit(q, 'uint8')}, "
        f"zero_point = {lit(zp.astype(np.uint8), 'uint8')}, scale = {lit(sc, 'fp32')}, axis = int32(1))[name = string(\"w\")];",
        op_line([("y", "fp32", (2, 4))], "matmul", {"x": "x", "y": "w"}),
    ]
    add_case("affine_dequantize", [("x", "fp32", x)], lines, [("y", x @ np.float32(wq))], 1e-5, opset="ios16")
    d4 = RNG.integers(-8, 8, size=(6, 4))
    s4 = rnd(2, 2, lo=0.1, hi=1.0)
    o4 = RNG.integers(-2, 3, size=(2, 2))
    wb = (d4 - np.repeat(np.repeat(o4, 3, 0), 2, 1)) * np.repeat(np.repeat(s4, 3, 0), 2, 1)
    lines = [
        f"{ttype('fp32', (6, 4))} w = constexpr_blockwise_shift_scale(data = {lit(d4, 'int4')}, scale = {lit(s4, 'fp32')}, "
        f"offset = {lit(o4, 'int4')})[name = string(\"w\")];",
        op_line([("y", "fp32", (2, 4))], "matmul", {"x": "x", "y": "w"}),
    ]
    add_case("blockwise_shift_scale", [("x", "fp32", x)], lines, [("y", x @ np.float32(wb))], 1e-5)
    mask = RNG.integers(0, 2, size=(6, 4))
    nz = rnd(int(mask.sum()))
    ws = np.zeros((6, 4), np.float32)
    ws[mask != 0] = nz
    lines = [
        f"{ttype('fp32', (6, 4))} w = constexpr_sparse_to_dense(nonzero_data = {lit(nz, 'fp32')}, "
        f"mask = {lit(np.array(pack_lsb(mask.ravel(), 1)), 'uint8')}, shape = tensor<uint32, [2]>([6, 4]))[name = string(\"w\")];",
        op_line([("y", "fp32", (2, 4))], "matmul", {"x": "x", "y": "w"}),
    ]
    add_case("sparse_to_dense_ios16", [("x", "fp32", x)], lines, [("y", x @ ws)], 1e-5, opset="ios16")
    h = f16(rnd(6, 4))
    lines = [
        f"{ttype('fp32', (6, 4))} w = constexpr_cast(source_val = {lit(h, 'fp16')}, output_dtype = string(\"fp32\"))[name = string(\"w\")];",
        op_line([("y", "fp32", (2, 4))], "matmul", {"x": "x", "y": "w"}),
    ]
    add_case("constexpr_cast", [("x", "fp32", x)], lines, [("y", x @ h)], 1e-5, opset="ios16")


# ---- fp16 programs and an end-to-end block -------------------------------------------------------

def fp16_cases():
    a, b = rnd(3, 4), rnd(3, 4)
    add_case("fp16_add", [("x", "fp16", a), ("y", "fp16", b)],
             [op_line([("z", "fp16", (3, 4))], "add", {"x": "x", "y": "y"})], [("z", f16(f16(a) + f16(b)))], 0)
    # An op chain: every intermediate is rounded (the result differs from an fp32 chain).
    v = np.float32([[1.0, 1.0009765625, 2048.0, 0.1]])
    t1 = f16(f16(v) * np.float32(1.5))
    t2 = f16(t1 + np.float32(0.00048828125))  # absorbed where t1 >= 2 in fp16, not in an fp32 chain
    add_case("fp16_chain", [("x", "fp16", v)],
             [op_line([("t", "fp16", (1, 4))], "mul", {"x": "x", "y": "fp16(1.5)"}),
              op_line([("z", "fp16", (1, 4))], "add", {"x": "t", "y": "fp16(0.00048828125)"})],
             [("z", t2)], 0)


def block_case():
    """A small attention + MLP block written the way coremltools lowers a transformer layer (fp16
    storage, 'original' attention): layer_norm, q/k/v linear, reshape/transpose to heads, matmul,
    softmax, matmul, back, out-projection, residual, gelu MLP, cast to fp32."""
    S, C, H = 5, 8, 2
    D = C // H
    x = rnd(1, S, C)
    g, be = f16(rnd(C, lo=0.5, hi=1.5)), f16(rnd(C, lo=-0.2, hi=0.2))
    wq, wk, wv, wo = (f16(rnd(C, C, lo=-0.4, hi=0.4)) for _ in range(4))
    bq, bo = f16(rnd(C, lo=-0.1, hi=0.1)), f16(rnd(C, lo=-0.1, hi=0.1))
    w1, w2 = f16(rnd(2 * C, C, lo=-0.4, hi=0.4)), f16(rnd(C, 2 * C, lo=-0.4, hi=0.4))
    scale = np.float32(f16(1.0 / math.sqrt(D)))

    # Reference with fp16 rounding after each op (fp32 arithmetic in between; float64 sums).
    xd = f16(x)
    mu = xd.astype(np.float64).mean(-1, keepdims=True)
    var = ((xd - mu) ** 2).mean(-1, keepdims=True)
    h = f16(np.float32((xd - mu) / np.sqrt(var + 1e-5)) * g + be)
    q = f16(h @ wq.T + bq)
    k = f16(h @ wk.T)
    v = f16(h @ wv.T)
    qs = f16(q * scale)
    heads = lambda t: np.transpose(t.reshape(1, S, H, D), (0, 2, 1, 3))
    s = f16(np.matmul(heads(qs), np.swapaxes(heads(k), -1, -2)))
    e = np.exp(s.astype(np.float64) - s.max(-1, keepdims=True))
    p = f16(np.float32(e / e.sum(-1, keepdims=True)))
    o = f16(np.matmul(p, heads(v)))
    o = np.transpose(o, (0, 2, 1, 3)).reshape(1, S, C)
    a = f16(o @ wo.T + bo)
    r = f16(xd + a)
    m = f16(r @ w1.T)
    m = f16(np.float32(torch.nn.functional.gelu(torch.from_numpy(m.astype(np.float64))).numpy()))
    m = f16(m @ w2.T)
    out = f16(r + m)

    def c16(name, arr):
        return f"{ttype('fp16', arr.shape)} {name} = const()[name = string(\"{name}\"), val = {lit(arr, 'fp16')}];"

    L = [
        c16("g", g), c16("be", be), c16("wq", wq), c16("wk", wk), c16("wv", wv), c16("wo", wo), c16("bq", bq), c16("bo", bo),
        c16("w1", w1), c16("w2", w2),
        f"tensor<int32, [4]> hs = const()[name = string(\"hs\"), val = {i32s([1, S, H, D])}];",
        f"tensor<int32, [4]> perm = const()[name = string(\"perm\"), val = {i32s([0, 2, 1, 3])}];",
        op_line([("x16", "fp16", (1, S, C))], "cast", {"x": "x", "dtype": string("fp16")}),
        op_line([("h", "fp16", (1, S, C))], "layer_norm", {"x": "x16", "axes": i32s([-1]), "gamma": "g", "beta": "be", "epsilon": "fp16(1e-05)"}),
        op_line([("q", "fp16", (1, S, C))], "linear", {"x": "h", "weight": "wq", "bias": "bq"}),
        op_line([("k", "fp16", (1, S, C))], "linear", {"x": "h", "weight": "wk"}),
        op_line([("v", "fp16", (1, S, C))], "linear", {"x": "h", "weight": "wv"}),
        op_line([("qs", "fp16", (1, S, C))], "mul", {"x": "q", "y": f"fp16({num(scale)})"}),
        op_line([("qh", "fp16", (1, S, H, D))], "reshape", {"x": "qs", "shape": "hs"}),
        op_line([("kh", "fp16", (1, S, H, D))], "reshape", {"x": "k", "shape": "hs"}),
        op_line([("vh", "fp16", (1, S, H, D))], "reshape", {"x": "v", "shape": "hs"}),
        op_line([("qt", "fp16", (1, H, S, D))], "transpose", {"x": "qh", "perm": "perm"}),
        op_line([("kt", "fp16", (1, H, S, D))], "transpose", {"x": "kh", "perm": "perm"}),
        op_line([("vt", "fp16", (1, H, S, D))], "transpose", {"x": "vh", "perm": "perm"}),
        op_line([("s", "fp16", (1, H, S, S))], "matmul", {"x": "qt", "y": "kt", "transpose_x": boolean(False), "transpose_y": boolean(True)}),
        op_line([("p", "fp16", (1, H, S, S))], "softmax", {"x": "s", "axis": i32(-1)}),
        op_line([("o", "fp16", (1, H, S, D))], "matmul", {"x": "p", "y": "vt"}),
        op_line([("ot", "fp16", (1, S, H, D))], "transpose", {"x": "o", "perm": "perm"}),
        op_line([("oc", "fp16", (1, S, C))], "reshape", {"x": "ot", "shape": i32s([1, S, C])}),
        op_line([("a", "fp16", (1, S, C))], "linear", {"x": "oc", "weight": "wo", "bias": "bo"}),
        op_line([("r", "fp16", (1, S, C))], "add", {"x": "x16", "y": "a"}),
        op_line([("m1", "fp16", (1, S, 2 * C))], "linear", {"x": "r", "weight": "w1"}),
        op_line([("m2", "fp16", (1, S, 2 * C))], "gelu", {"x": "m1", "mode": string("EXACT")}),
        op_line([("m3", "fp16", (1, S, C))], "linear", {"x": "m2", "weight": "w2"}),
        op_line([("r2", "fp16", (1, S, C))], "add", {"x": "r", "y": "m3"}),
        op_line([("y", "fp32", (1, S, C))], "cast", {"x": "r2", "dtype": string("fp32")}),
    ]
    # fp16 results may land one fp16 step apart where fp32 sums differ in the last bit.
    add_case("block_fp16", [("x", "fp32", x)], L, [("y", out)], 4e-3)


def main():
    unary_cases()
    binary_cases()
    cast_cases()
    tensor_cases()
    linalg_cases()
    reduce_cases()
    constexpr_cases()
    fp16_cases()
    block_case()
    with open(os.path.join(HERE, "ops.json"), "w") as f:
        json.dump(CASES, f, indent=1, sort_keys=True)
        f.write("\n")
    save_file(TENSORS, os.path.join(HERE, "ops.safetensors"))
    print(f"{len(CASES)} cases, {len(TENSORS)} tensors")


if __name__ == "__main__":
    main()
