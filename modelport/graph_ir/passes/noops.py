"""No-op elementwise and padding nodes with constant operands of any shape.

onnxscript's no-op rules (``x + 0``, ``x * 1``, ``x - 0``, ``x / 1``) take scalar constants
only. Models built with zero-initialised biases (a freshly configured Hugging Face model, a
converted layer with ``use_bias`` folded to zeros) carry whole zero vectors instead::

    Add(x, zeros[C]) | Add(zeros[C], x) | Sub(x, zeros[C])    ->  x
    Mul(x, ones[C])  | Mul(ones[C], x)  | Div(x, ones[C])     ->  x
    Pad(x, pads=all 0) (constant mode)                        ->  x

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
        if arr is None or not np.issubdtype(arr.dtype, np.number):
            return result.fail("not a numeric constant")
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


@register_pass(2, "no-op-elimination")
def noop_pass() -> ir.passes.PassBase:
    return OpFilteredRewritePass(NOOP_RULES, "no-op-elimination")
