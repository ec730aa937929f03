"""No-op elementwise and padding nodes with constant operands of any shape.

onnxscript's no-op rules (``x + 0``, ``x * 1``, ``x - 0``, ``x / 1``) take scalar constants
only. Models built with zero-initialised biases (a freshly configured Hugging Face model, a
converted layer with ``use_bias`` folded to zeros) carry whole zero vectors instead::

    Add(x, zeros[C]) | Add(zeros[C], x) | Sub(x, zeros[C])    ->  x
    Mul(x, ones[C])  | Mul(ones[C], x)  | Div(x, ones[C])     ->  x
    And(x, all True) | Or(x, all False) (either order)        ->  x
    Pad(x, pads=all 0) (constant mode)                        ->  x
    Reduce{Mean,Sum,Max,Min,Prod}(x, axes, keepdims=1)        ->  x   (x's dims on axes all 1)

A rule fires only when broadcasting the constant leaves ``x``'s shape and type unchanged: the
constant's rank is at most ``x``'s and each of its dims is 1 or equal to ``x``'s dim there.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from modelport.graph_ir.passes.fusions import OpFilteredRewritePass
from modelport.graph_ir.passes.manager import register_pass

_MAX = 1 << 20


def _const(value: ir.Value) -> np.ndarray | None:
    t = value.const_value
    if t is None or t.size > _MAX:
        return None
    return t.numpy()


def _keeps_shape(x: ir.Value, c: np.ndarray, out: ir.Value) -> bool:
    if x.shape is None or x.dtype != out.dtype or c.ndim > len(x.shape):
        return False
    dims = list(x.shape)[len(x.shape) - c.ndim:]
    return all(k == 1 or (isinstance(d, int) and d == k) for k, d in zip(c.shape, dims))


def _neutral(fill: float, swap: bool = False):
    def check(context, x, c, **_) -> pattern.MatchResult:
        result = pattern.MatchResult()
        arr = _const(c)
        if arr is None or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            return result.fail("not a numeric or boolean constant")
        if not np.all(arr == fill):
            return result.fail(f"constant is not all {fill}")
        if not _keeps_shape(x, arr, context.output_values[0]):
            return result.fail("broadcasting the constant changes the shape")
        return result

    return check


def _identity(op, x, c, **_):
    return op.Identity(x)


def _rule(target, fill, name):
    return pattern.RewriteRule(target, _identity, _neutral(fill), name=name)


NOOP_RULES = [
    _rule(lambda op, x, c: op.Add(x, c), 0, "AddZeros"),
    _rule(lambda op, x, c: op.Add(c, x), 0, "ZerosAdd"),
    _rule(lambda op, x, c: op.Sub(x, c), 0, "SubZeros"),
    _rule(lambda op, x, c: op.Mul(x, c), 1, "MulOnes"),
    _rule(lambda op, x, c: op.Mul(c, x), 1, "OnesMul"),
    _rule(lambda op, x, c: op.Div(x, c), 1, "DivOnes"),
    _rule(lambda op, x, c: op.And(x, c), True, "AndTrue"),
    _rule(lambda op, x, c: op.And(c, x), True, "TrueAnd"),
    _rule(lambda op, x, c: op.Or(x, c), False, "OrFalse"),
    _rule(lambda op, x, c: op.Or(c, x), False, "FalseOr"),
]


def _pad_check(context, x, pads, **_) -> pattern.MatchResult:
    result = pattern.MatchResult()
    node = context.root
    if node.attributes.get_string("mode", "constant") != "constant":
        return result.fail("not constant mode")
    arr = _const(pads)
    if arr is None or np.any(arr != 0):
        return result.fail("pads are not all zero")
    return result


def _pad_noop(op, x, pads):
    return op.Pad(x, pads, _allow_other_inputs=True, _allow_other_attributes=True)


def _pad_identity(op, x, pads, **_):
    return op.Identity(x)


NOOP_RULES.append(pattern.RewriteRule(_pad_noop, _pad_identity, _pad_check, name="PadZero"))


_REDUCE_OPS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd")


def _reduce_check(context, x, **_) -> pattern.MatchResult:
    result = pattern.MatchResult()
    node = context.root
    if node.attributes.get_int("keepdims", 1) != 1 or x.shape is None:
        return result.fail("keepdims=0 or unknown rank")
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = _const(node.inputs[1])
        axes = None if arr is None else [int(a) for a in arr.reshape(-1)]
    elif "axes" in node.attributes:
        axes = list(node.attributes["axes"].as_ints())
    else:
        axes = None
    if not axes:  # missing or empty: all axes, or a no-op only with noop_with_empty_axes
        return result.fail("axes not given as constants")
    rank = len(x.shape)
    if any(not -rank <= a < rank or x.shape[a] != 1 for a in axes):
        return result.fail("a reduced dim is not 1")
    if x.dtype != context.output_values[0].dtype:
        return result.fail("type changes")
    return result


def _reduce_rule(op_type):
    def target(op, x):
        return getattr(op, op_type)(x, _allow_other_inputs=True, _allow_other_attributes=True)

    return pattern.RewriteRule(target, lambda op, x, **_: op.Identity(x), _reduce_check,
                               name=f"{op_type}OverOnes")


NOOP_RULES.extend(_reduce_rule(op) for op in _REDUCE_OPS)


@register_pass(2, "no-op-elimination")
def noop_pass() -> ir.passes.PassBase:
    return OpFilteredRewritePass(NOOP_RULES, "no-op-elimination")
