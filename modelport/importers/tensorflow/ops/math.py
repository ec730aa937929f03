"""Element-wise arithmetic, comparisons, logic, reductions, ArgMax/ArgMin, Cast, Select."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.importers.tensorflow import dtypes
from modelport.importers.tensorflow.ops._util import int64
from modelport.importers.tensorflow.ops.conv import fold_affine
from modelport.importers.tensorflow.table import tf_op

_BINARY = {
    "Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
    "Maximum": "Max", "Minimum": "Min", "Pow": "Pow", "Equal": "Equal", "Less": "Less",
    "LessEqual": "LessOrEqual", "Greater": "Greater", "GreaterEqual": "GreaterOrEqual",
    "LogicalAnd": "And", "LogicalOr": "Or", "BitwiseAnd": "BitwiseAnd",
    "BitwiseOr": "BitwiseOr", "BitwiseXor": "BitwiseXor",
}
_UNARY = {
    "Sqrt": "Sqrt", "Exp": "Exp", "Log": "Log", "Neg": "Neg", "Abs": "Abs", "Floor": "Floor",
    "Ceil": "Ceil", "Round": "Round", "Sign": "Sign", "Reciprocal": "Reciprocal",
    "Inv": "Reciprocal", "Sin": "Sin", "Cos": "Cos", "Tan": "Tan", "Asin": "Asin",
    "Acos": "Acos", "Atan": "Atan", "Sinh": "Sinh", "Cosh": "Cosh", "Asinh": "Asinh",
    "Acosh": "Acosh", "Atanh": "Atanh", "LogicalNot": "Not", "IsNan": "IsNaN",
    "Rint": "Round",
}


def _binary(onnx_op):
    def translate(ctx, node, inputs):
        a, b = inputs
        if onnx_op in ("Mul", "Add"):  # a per-channel scale or shift after a convolution
            folded = fold_affine(ctx, node, inputs, onnx_op)
            if folded is not None:
                return folded
        return ctx.op(onnx_op, a, b)

    return translate


def _unary(onnx_op):
    def translate(ctx, node, inputs):
        return ctx.op(onnx_op, inputs[0])

    return translate


for _tf, _onnx in _BINARY.items():
    tf_op(_tf)(_binary(_onnx))
for _tf, _onnx in _UNARY.items():
    tf_op(_tf)(_unary(_onnx))


def _is_int(ctx, v) -> bool:
    dt = ctx.dtype(v)
    return dt is not None and dt.is_integer()


@tf_op("Div")
def div(ctx, node, inputs):
    a, b = inputs
    if _is_int(ctx, a):
        return _floor_div(ctx, a, b)
    return ctx.op("Div", a, b)


def _floor_div(ctx, a, b):
    if not _is_int(ctx, a):
        return ctx.op("Floor", ctx.op("Div", a, b))
    # Integer division rounding toward -inf: truncate, then subtract 1 where signs differ
    # and there is a remainder.
    q = ctx.op("Div", a, b)
    r = ctx.op("Mod", a, b, fmod=1)
    zero = ctx.scalar(0, a, "zero")
    fix = ctx.op("And", ctx.op("Not", ctx.op("Equal", r, zero)),
                 ctx.op("Xor", ctx.op("Less", a, zero), ctx.op("Less", b, zero)))
    return ctx.op("Sub", q, ctx.cast(fix, ctx.dtype(a)))


@tf_op("FloorDiv")
def floor_div(ctx, node, inputs):
    return _floor_div(ctx, *inputs)


@tf_op("FloorMod")
def floor_mod(ctx, node, inputs):
    a, b = inputs
    if _is_int(ctx, a):
        return ctx.op("Mod", a, b, fmod=0)
    return ctx.op("Sub", a, ctx.op("Mul", ctx.op("Floor", ctx.op("Div", a, b)), b))


@tf_op("TruncateDiv")
def truncate_div(ctx, node, inputs):
    a, b = inputs
    if _is_int(ctx, a):
        return ctx.op("Div", a, b)
    q = ctx.op("Div", a, b)
    return ctx.op("Mul", ctx.op("Sign", q), ctx.op("Floor", ctx.op("Abs", q)))


@tf_op("DivNoNan")
def div_no_nan(ctx, node, inputs):
    a, b = inputs
    zero = ctx.scalar(0, b, "zero")
    return ctx.op("Where", ctx.op("Equal", b, zero), zero, ctx.op("Div", a, b))


@tf_op("NotEqual")
def not_equal(ctx, node, inputs):
    return ctx.op("Not", ctx.op("Equal", *inputs))


@tf_op("SquaredDifference")
def squared_difference(ctx, node, inputs):
    d = ctx.op("Sub", *inputs)
    return ctx.op("Mul", d, d)


@tf_op("Square")
def square(ctx, node, inputs):
    return ctx.op("Mul", inputs[0], inputs[0])


@tf_op("Rsqrt")
def rsqrt(ctx, node, inputs):
    return ctx.op("Reciprocal", ctx.op("Sqrt", inputs[0]))


@tf_op("Log1p")
def log1p(ctx, node, inputs):
    (x,) = inputs
    return ctx.op("Log", ctx.op("Add", x, ctx.scalar(1.0, x, "one")))


@tf_op("Expm1")
def expm1(ctx, node, inputs):
    (x,) = inputs
    return ctx.op("Sub", ctx.op("Exp", x), ctx.scalar(1.0, x, "one"))


@tf_op("AddN")
def add_n(ctx, node, inputs):
    return inputs[0] if len(inputs) == 1 else ctx.op("Sum", *inputs)


@tf_op("ClipByValue")
def clip_by_value(ctx, node, inputs):
    x, lo, hi = inputs
    return ctx.op("Min", ctx.op("Max", x, lo), hi)


@tf_op("LogicalXor")
def logical_xor(ctx, node, inputs):
    return ctx.op("Xor", *inputs)


@tf_op("Cast")
def cast(ctx, node, inputs):
    (x,) = inputs
    to = dtypes.to_ir(node.type("DstT"))
    src = ctx.dtype(x)
    if to == ir.DataType.BOOL and src is not None and src != ir.DataType.BOOL:
        return ctx.op("Not", ctx.op("Equal", x, ctx.scalar(0, x, "zero")))
    return ctx.cast(x, to)


@tf_op("Select", "SelectV2")
def select(ctx, node, inputs):
    cond, a, b = inputs
    if node.op == "Select":
        cr, ar = ctx.rank(cond), ctx.rank(a)
        if cr == 1 and ar > 1:  # a vector condition selects whole rows
            cond = ctx.op("Reshape", cond, ctx.ints([-1] + [1] * (ar - 1)))
    return ctx.op("Where", cond, a, b)


_REDUCE = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin",
           "Prod": "ReduceProd", "All": "ReduceMin", "Any": "ReduceMax",
           "EuclideanNorm": "ReduceL2"}


def _reduce(onnx_op):
    def translate(ctx, node, inputs):
        x, axes = inputs
        keep = int(node.b("keep_dims"))
        ax = [int(a) for a in np.asarray(ctx.need_const(axes, "reduction axes")).reshape(-1)]
        shape = ctx.shape(x)
        if shape is not None and any(not -len(shape) <= a < len(shape) for a in ax):
            raise ctx.fail(f"reduction axes {ax} are out of range for rank {len(shape)}")
        is_bool = ctx.dtype(x) == ir.DataType.BOOL
        if is_bool:
            x = ctx.cast(x, ir.DataType.INT32)
        if not ax:
            y = ctx.op("Identity", x)
        else:
            extra, attrs = ctx.b.reduce_axes(onnx_op, ax)
            y = ctx.op(onnx_op, x, *extra, keepdims=keep, **attrs)
        return ctx.cast(y, ir.DataType.BOOL) if is_bool else y

    return translate


for _tf, _onnx in _REDUCE.items():
    tf_op(_tf)(_reduce(_onnx))


def _arg(onnx_op):
    def translate(ctx, node, inputs):
        x, axis = inputs
        ax = int(np.asarray(ctx.need_const(axis, "dimension")).reshape(-1)[0])
        y = ctx.op(onnx_op, x, axis=ax, keepdims=0)
        out = dtypes.to_ir(node.type("output_type", dtypes.INT64))
        return ctx.cast(y, out)

    return translate


tf_op("ArgMax")(_arg("ArgMax"))
tf_op("ArgMin")(_arg("ArgMin"))


@tf_op("Cumsum")
def cumsum(ctx, node, inputs):
    x, axis = inputs
    return ctx.op("CumSum", x, int64(ctx, axis), exclusive=int(node.b("exclusive")),
                  reverse=int(node.b("reverse")))
