"""Arithmetic: elemwise and broadcast binary ops and comparisons (MXNet returns comparisons
in the input dtype), the ``_plus_scalar`` family, unary math, add_n, dot, batch_dot, clip,
reductions (sum, mean, max, min, prod, norm), argmax/argmin, where, take, pick, topk, Cast,
identities (Dropout, BlockGrad, _copy, identity) and zeros_like/ones_like."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.importers.mxnet.ops._util import axes_param, norm_axis
from modelport.importers.mxnet.table import mxnet_op

_BINARY = {"add": "Add", "plus": "Add", "sub": "Sub", "minus": "Sub", "mul": "Mul",
           "div": "Div", "power": "Pow", "maximum": "Max", "minimum": "Min"}
_COMPARE = {"equal": "Equal", "greater": "Greater", "greater_equal": "GreaterOrEqual",
            "lesser": "Less", "lesser_equal": "LessOrEqual", "not_equal": "not_equal"}
_LOGICAL = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}


def _binary(ctx, kind: str, x, y):
    if kind in _BINARY:
        return ctx.op(_BINARY[kind], x, y)
    if kind == "mod":  # floor modulo (the sign of the divisor), as MXNet's mod
        q = ctx.op("Floor", ctx.op("Div", x, y))
        return ctx.op("Sub", x, ctx.op("Mul", q, y))
    if kind == "hypot":
        return ctx.op("Sqrt", ctx.op("Add", ctx.op("Mul", x, x), ctx.op("Mul", y, y)))
    dtype = ctx.dtype(x)
    if kind in _COMPARE:
        if kind == "not_equal":
            mask = ctx.op("Not", ctx.op("Equal", x, y))
        else:
            mask = ctx.op(_COMPARE[kind], x, y)
        return ctx.op("Cast", mask, to=dtype)
    if kind in _LOGICAL:
        zero = ctx.scalar(0, x, "zero")
        xb = ctx.op("Not", ctx.op("Equal", x, zero))
        yb = ctx.op("Not", ctx.op("Equal", y, zero))
        return ctx.op("Cast", ctx.op(_LOGICAL[kind], xb, yb), to=dtype)
    raise ValueError(f"unknown binary kind {kind}")


_ELEMWISE_NAMES = {
    "elemwise_add": "add", "_add": "add", "_plus": "add", "_Plus": "add", "_grad_add": "add",
    "elemwise_sub": "sub", "_sub": "sub", "_minus": "sub", "_Minus": "sub",
    "elemwise_mul": "mul", "_mul": "mul", "_Mul": "mul",
    "elemwise_div": "div", "_div": "div", "_Div": "div",
    "_mod": "mod", "_Mod": "mod", "_power": "power", "_Power": "power",
    "_maximum": "maximum", "_Maximum": "maximum", "_minimum": "minimum", "_Minimum": "minimum",
    "_hypot": "hypot", "_Hypot": "hypot",
    "_equal": "equal", "_not_equal": "not_equal", "_greater": "greater",
    "_greater_equal": "greater_equal", "_lesser": "lesser", "_lesser_equal": "lesser_equal",
    "_logical_and": "logical_and", "_logical_or": "logical_or", "_logical_xor": "logical_xor",
}
_BROADCAST_NAMES = {f"broadcast_{k}": k for k in
                    list(_BINARY) + ["mod", "hypot"] + list(_COMPARE) + list(_LOGICAL)}


@mxnet_op(*_ELEMWISE_NAMES, *_BROADCAST_NAMES)
def binary(ctx, node, inputs):
    x, y = ctx.data(inputs[0]), ctx.data(inputs[1])
    kind = _ELEMWISE_NAMES.get(node.op) or _BROADCAST_NAMES[node.op]
    return [_binary(ctx, kind, x, y)]


_SCALAR = {f"_{k}_scalar": k for k in
           ["plus", "minus", "mul", "div", "mod", "power", "maximum", "minimum", "hypot",
            "equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal",
            "logical_and", "logical_or", "logical_xor"]}
_SCALAR.update({"_PlusScalar": "plus", "_MinusScalar": "minus", "_MulScalar": "mul",
                "_DivScalar": "div", "_PowerScalar": "power", "_MaximumScalar": "maximum",
                "_MinimumScalar": "minimum"})
_RSCALAR = {"_rminus_scalar": "minus", "_RMinusScalar": "minus", "_rdiv_scalar": "div",
            "_RDivScalar": "div", "_rmod_scalar": "mod", "_rpower_scalar": "power",
            "_RPowerScalar": "power"}


@mxnet_op(*_SCALAR, *_RSCALAR)
def scalar_op(ctx, node, inputs):
    x = ctx.data(inputs[0])
    value = node.attrs.float("scalar", 0.0)
    s = ctx.scalar(value, x, "scalar")
    if node.op in _RSCALAR:
        return [_binary(ctx, _RSCALAR[node.op], s, x)]
    return [_binary(ctx, _SCALAR[node.op], x, s)]


_UNARY = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "negative": "Neg",
          "reciprocal": "Reciprocal", "sign": "Sign", "floor": "Floor", "ceil": "Ceil",
          "rint": "Round", "sin": "Sin", "cos": "Cos", "tan": "Tan", "arcsin": "Asin",
          "arccos": "Acos", "arctan": "Atan", "sinh": "Sinh", "cosh": "Cosh", "erf": "Erf",
          "arcsinh": "Asinh", "arccosh": "Acosh", "arctanh": "Atanh"}


@mxnet_op(*_UNARY)
def unary(ctx, node, inputs):
    return [ctx.op(_UNARY[node.op], ctx.data(inputs[0]))]


@mxnet_op("square", "rsqrt", "log1p", "expm1", "log2", "log10", "round", "fix", "trunc",
          "cbrt", "rcbrt", "relu6", "hard_sigmoid")
def unary_composite(ctx, node, inputs):
    x = ctx.data(inputs[0])
    op = node.op
    if op == "square":
        return [ctx.op("Mul", x, x)]
    if op == "rsqrt":
        return [ctx.op("Reciprocal", ctx.op("Sqrt", x))]
    if op == "log1p":
        return [ctx.op("Log", ctx.op("Add", x, ctx.scalar(1.0, x)))]
    if op == "expm1":
        return [ctx.op("Sub", ctx.op("Exp", x), ctx.scalar(1.0, x))]
    if op in ("log2", "log10"):
        base = 2.0 if op == "log2" else 10.0
        return [ctx.op("Div", ctx.op("Log", x), ctx.scalar(np.log(base), x))]
    if op == "round":  # half away from zero
        r = ctx.op("Floor", ctx.op("Add", ctx.op("Abs", x), ctx.scalar(0.5, x)))
        return [ctx.op("Mul", ctx.op("Sign", x), r)]
    if op in ("fix", "trunc"):
        return [ctx.op("Mul", ctx.op("Sign", x), ctx.op("Floor", ctx.op("Abs", x)))]
    if op in ("cbrt", "rcbrt"):
        c = ctx.op("Mul", ctx.op("Sign", x),
                   ctx.op("Pow", ctx.op("Abs", x), ctx.scalar(1 / 3, x)))
        return [c if op == "cbrt" else ctx.op("Reciprocal", c)]
    if op == "relu6":
        return [ctx.op("Clip", x, ctx.scalar(0.0, x), ctx.scalar(6.0, x))]
    alpha, beta = node.attrs.float("alpha", 0.2), node.attrs.float("beta", 0.5)
    return [ctx.op("HardSigmoid", x, alpha=alpha, beta=beta)]


@mxnet_op("Dropout", "BlockGrad", "stop_gradient", "_copy", "identity", "MakeLoss",
          "make_loss", "_identity_with_attr_like_rhs", "amp_multicast")
def passthrough(ctx, node, inputs):
    return [ctx.op("Identity", ctx.data(inputs[0]))]


@mxnet_op("zeros_like", "ones_like")
def fill_like(ctx, node, inputs):
    x = ctx.data(inputs[0])
    value = 0.0 if node.op == "zeros_like" else 1.0
    fill = ir.tensor(np.asarray([value], dtype=ctx.dtype(x).numpy()))
    return [ctx.op("ConstantOfShape", ctx.ints(ctx.shape(x)), value=fill)]


@mxnet_op("clip")
def clip(ctx, node, inputs):
    x = ctx.data(inputs[0])
    return [ctx.op("Clip", x, ctx.scalar(node.attrs.float("a_min"), x, "min"),
                   ctx.scalar(node.attrs.float("a_max"), x, "max"))]


@mxnet_op("add_n", "ElementWiseSum", "_sum")
def add_n(ctx, node, inputs):
    values = [ctx.data(v) for v in inputs]
    return [ctx.op("Sum", *values) if len(values) > 1 else ctx.op("Identity", values[0])]


@mxnet_op("dot")
def dot(ctx, node, inputs):
    a_, b_ = ctx.data(inputs[0]), ctx.data(inputs[1])
    ta, tb = node.attrs.bool("transpose_a", False), node.attrs.bool("transpose_b", False)
    sa, sb = ctx.shape(a_), ctx.shape(b_)
    if ta:
        a_ = ctx.op("Transpose", a_, perm=list(range(len(sa)))[::-1])
        sa = sa[::-1]
    if tb:
        b_ = ctx.op("Transpose", b_, perm=list(range(len(sb)))[::-1])
        sb = sb[::-1]
    # dot contracts a's last axis with b's first, like a 2-D matrix product on reshaped views.
    m = int(np.prod(sa[:-1], dtype=np.int64))
    n = int(np.prod(sb[1:], dtype=np.int64))
    a2 = a_ if len(sa) == 2 else ctx.op("Reshape", a_, ctx.ints([m, sa[-1]], "a2"))
    b2 = b_ if len(sb) == 2 else ctx.op("Reshape", b_, ctx.ints([sb[0], n], "b2"))
    y = ctx.op("MatMul", a2, b2)
    final = list(sa[:-1]) + list(sb[1:])
    if final != [m, n]:
        y = ctx.op("Reshape", y, ctx.ints(final or [1], "out"))
    return [y]


@mxnet_op("batch_dot")
def batch_dot(ctx, node, inputs):
    a_, b_ = ctx.data(inputs[0]), ctx.data(inputs[1])
    if node.attrs.bool("transpose_a", False):
        r = ctx.rank(a_)
        a_ = ctx.op("Transpose", a_, perm=list(range(r - 2)) + [r - 1, r - 2])
    if node.attrs.bool("transpose_b", False):
        r = ctx.rank(b_)
        b_ = ctx.op("Transpose", b_, perm=list(range(r - 2)) + [r - 1, r - 2])
    return [ctx.op("MatMul", a_, b_)]


def _reduce_all_shape(ctx, y, axes, keepdims):
    # MXNet 1.x has no 0-d arrays: a full reduction without keepdims has shape (1,).
    if not keepdims and ctx.rank(y) == 0:
        return ctx.op("Reshape", y, ctx.ints([1], "one"))
    return y


_REDUCE = {"sum": "ReduceSum", "sum_axis": "ReduceSum", "mean": "ReduceMean",
           "max": "ReduceMax", "max_axis": "ReduceMax", "min": "ReduceMin",
           "min_axis": "ReduceMin", "prod": "ReduceProd", "nansum": "ReduceSum"}


@mxnet_op(*_REDUCE)
def reduce(ctx, node, inputs):
    x = ctx.data(inputs[0])
    rank = ctx.rank(x)
    axes = axes_param(node, rank)
    keep = int(node.attrs.bool("keepdims", False))
    if axes == []:
        return [ctx.op("Identity", x)]
    if node.op == "nansum":
        x = ctx.op("Where", ctx.op("IsNaN", x), ctx.scalar(0.0, x), x)
    y = ctx.reduce(_REDUCE[node.op], x, axes, keepdims=keep)
    return [_reduce_all_shape(ctx, y, axes, keep)]


@mxnet_op("norm")
def norm(ctx, node, inputs):
    x = ctx.data(inputs[0])
    rank = ctx.rank(x)
    axes = axes_param(node, rank)
    keep = int(node.attrs.bool("keepdims", False))
    order = node.attrs.int("ord", 2)
    if order == 1:
        y = ctx.reduce("ReduceL1", x, axes, keepdims=keep)
    elif order == 2:
        y = ctx.reduce("ReduceL2", x, axes, keepdims=keep)
    else:
        raise ctx.fail(f"ord={order} is not supported")
    return [_reduce_all_shape(ctx, y, axes, keep)]


@mxnet_op("argmax", "argmin")
def argmax(ctx, node, inputs):
    x = ctx.data(inputs[0])
    keep = int(node.attrs.bool("keepdims", False))
    op = "ArgMax" if node.op == "argmax" else "ArgMin"
    if "axis" not in node.attrs:
        flat = ctx.op("Reshape", x, ctx.ints([-1]))
        y = ctx.op(op, flat, axis=0, keepdims=1)  # MXNet 1.x: shape (1,), not a scalar
    else:
        y = ctx.op(op, x, axis=norm_axis(node.attrs.int("axis"), ctx.rank(x)), keepdims=keep)
    return [ctx.op("Cast", y, to=ctx.dtype(x))]  # MXNet returns indices as floats


@mxnet_op("argmax_channel")
def argmax_channel(ctx, node, inputs):
    x = ctx.data(inputs[0])
    return [ctx.op("Cast", ctx.op("ArgMax", x, axis=1, keepdims=0), to=ctx.dtype(x))]


_DTYPES = {"float32": ir.DataType.FLOAT, "float64": ir.DataType.DOUBLE,
           "float16": ir.DataType.FLOAT16, "uint8": ir.DataType.UINT8,
           "int8": ir.DataType.INT8, "int32": ir.DataType.INT32, "int64": ir.DataType.INT64,
           "bool": ir.DataType.BOOL}


@mxnet_op("Cast", "cast", "amp_cast")
def cast(ctx, node, inputs):
    x = ctx.data(inputs[0])
    name = node.attrs.str("dtype", "float32")
    if name not in _DTYPES:
        raise ctx.fail(f"dtype {name!r} is not supported")
    return [ctx.op("Cast", x, to=_DTYPES[name])]


@mxnet_op("where")
def where(ctx, node, inputs):
    cond, x, y = (ctx.data(v) for v in inputs)
    mask = ctx.op("Not", ctx.op("Equal", cond, ctx.scalar(0, cond, "zero")))
    cs, xs = ctx.shape(cond), ctx.shape(x)
    if len(cs) == 1 and len(xs) > 1:  # a 1-D condition selects whole rows
        mask = ctx.op("Reshape", mask, ctx.ints([cs[0]] + [1] * (len(xs) - 1)))
    return [ctx.op("Where", mask, x, y)]


def _indices(ctx, idx, size: int, mode: str):
    idx = ctx.op("Cast", idx, to=ir.DataType.INT64)
    if mode == "wrap":
        n = ctx.const(np.asarray(size, np.int64), "n")
        return ctx.op("Mod", idx, n)  # integer Mod takes the sign of the divisor
    return ctx.op("Clip", idx, ctx.const(np.asarray(0, np.int64), "lo"),
                  ctx.const(np.asarray(size - 1, np.int64), "hi"))


@mxnet_op("take")
def take(ctx, node, inputs):
    x, idx = ctx.data(inputs[0]), ctx.data(inputs[1])
    axis = norm_axis(node.attrs.int("axis", 0), ctx.rank(x))
    mode = node.attrs.str("mode", "clip")
    return [ctx.op("Gather", x, _indices(ctx, idx, ctx.shape(x)[axis], mode), axis=axis)]


@mxnet_op("pick")
def pick(ctx, node, inputs):
    x, idx = ctx.data(inputs[0]), ctx.data(inputs[1])
    shape = ctx.shape(x)
    axis = norm_axis(node.attrs.int("axis", -1), len(shape))
    keep = node.attrs.bool("keepdims", False)
    i = _indices(ctx, idx, shape[axis], node.attrs.str("mode", "clip"))
    i = ctx.op("Unsqueeze", i, ctx.ints([axis], "axes"))
    y = ctx.op("GatherElements", x, i, axis=axis)
    return [y if keep else ctx.op("Squeeze", y, ctx.ints([axis], "axes"))]


@mxnet_op("topk")
def topk(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    axis = norm_axis(a.int("axis", -1), ctx.rank(x))
    k = a.int("k", 1)
    kind = a.str("ret_typ", "indices")
    values, indices = ctx.op("TopK", x, ctx.ints([k], "k"), axis=axis,
                             largest=0 if a.bool("is_ascend", False) else 1, sorted=1,
                             outputs=2)
    dtype = _DTYPES.get(a.str("dtype", "float32"), ir.DataType.FLOAT)
    idx = ctx.op("Cast", indices, to=dtype)
    if kind == "value":
        return [ctx.op("Identity", values)]
    if kind == "indices":
        return [idx]
    if kind == "both":
        return [ctx.op("Identity", values), idx]
    raise ctx.fail(f"ret_typ {kind!r} is not supported")
