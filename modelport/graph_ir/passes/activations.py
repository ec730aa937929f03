"""Element-wise activations spelled out as chains, recognised as standard ONNX operators
(default domain only), each where the target opset has the operator; below that opset the
chain is left as it is (the canonical spelling that runtimes' own fusions look for).

- SiLU / Swish, opset 24 ``Swish``. ONNX has no SiLU or Swish operator before opset 24, so
  below it ``x * Sigmoid(x)`` is kept: it *is* the canonical form there. Above 24 too:
  onnxruntime (1.32) registers its Swish kernel for opset 24 alone, and a model at opset 25
  or later that holds a Swish fails to load in it (measured; the ONNX backend suite's
  ``causal_conv_with_state_swish_alias_expanded``, at opset 27, found it)::

      x * Sigmoid(x)            ->  Swish(x)
      x * Sigmoid(beta * x)     ->  Swish(x, alpha=beta)      (beta a scalar constant)

- HardSwish, opset >= 14 ``HardSwish``: onnxscript's rules
  (``onnxscript.rewriter.rules.common._fuse_hardswish``: ``Clip(x + 3, 0, 6) * x / 6``,
  ``Clip(x + 3, 0, 6) / 6``, ``x * HardSigmoid(x)``), which do not look at the opset (so they
  run here, where it is checked), and this module's rules for the spellings they miss: the
  division written as a multiplication by 1/6 (Keras' and TensorFlow's
  ``x * relu6(x + 3) * (1/6)``) in any association order, and ReLU6 written as
  ``Min(Relu(y), 6)`` (``Min``/``Max`` pairs already become ``Clip`` at -O1)::

      Min(Relu(y), c)                               ->  Clip(y, 0, c)        (c >= 0, opset >= 13)
      Clip(x + 3, 0, 6) * (1/6) | / 6               ->  HardSigmoid(x, 1/6, 0.5)  (opset >= 13)
      Clip(y, 0, b) * (1/b) | / b                   ->  HardSigmoid(y, 1/b, 0)    (opset >= 13)
      x * Clip(x + 3, 0, 6) * (1/6) | / 6           ->  HardSwish(x)
      x * HardSigmoid(x, alpha=1/6, beta=0.5)       ->  HardSwish(x)

- Mish, opset >= 18 ``Mish``::

      x * Tanh(Softplus(x))                         ->  Mish(x)
      x * Tanh(Log(Exp(x) + 1))                     ->  Mish(x)

  (for x below about -17 the spelled-out ``Log(1 + Exp(x))`` rounds to 0 where Mish gives
  ``x * exp(x)``, under 1e-6: the difference is within float32 noise.)
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import _ir_utils, pattern
from onnxscript.rewriter.rules.common._fuse_hardswish import (
    HardSigmoidFusion,
    HardSwishFusion,
    HardSwishFusionFromHardSigmoid,
)

SWISH_OPSETS = range(24, 25)  # see the docstring: onnxruntime runs Swish at opset 24 only
HARDSWISH_OPSET = 14
# Clip's bounds became inputs at opset 11; onnxscript's rules emit opset-13 forms (see
# fusions.MIN_RULES_OPSET): nothing here below that
CLIP_INPUTS_OPSET = 13
MISH_OPSET = 18

_SIXTH = 1.0 / 6.0

# The spec allows double (and bfloat16) for these operators, but onnxruntime (1.32, CPU) has
# no double kernel for HardSigmoid, HardSwish or Gelu (measured): fuse float and float16 only,
# so that a model that runs keeps running.
RUNTIME_TYPES = frozenset([ir.DataType.FLOAT, ir.DataType.FLOAT16])


def runtime_type(x) -> bool:
    return x is not None and x.dtype in RUNTIME_TYPES


def _typed(rule_class):
    """``rule_class`` (an onnxscript rule on ``x``) that also checks x's type."""

    class Typed(rule_class):
        def check(self, context, x, **kw):
            result = super().check(context, x=x, **kw)
            if result and not runtime_type(x):
                return result.fail("not a float or float16 tensor", x)
            return result

    Typed.__name__ = Typed.__qualname__ = f"Typed{rule_class.__name__}"
    return Typed


def _is(value, expected: float, rtol: float = 1e-4) -> bool:
    v = _ir_utils.get_singleton_value(value)
    return isinstance(v, (int, float)) and abs(v - expected) <= rtol * abs(expected)


# -- SiLU / Swish ------------------------------------------------------------------------------

def _silu(op, x):
    return op.Mul(x, op.Sigmoid(x))


def _swish(op, x):
    return op.Swish(x)


def _silu_beta(op, x, beta):
    return op.Mul(x, op.Sigmoid(op.Mul(x, beta)))


def _no_broadcast(x, *constants) -> bool:
    """None of ``constants`` has more dims than ``x`` (so the op keeps x's shape)."""
    return x.shape is not None and all(
        c.shape is not None and len(c.shape) <= len(x.shape) for c in constants)


def _beta_is_scalar(context, x, beta):
    result = pattern.MatchResult()
    if not isinstance(_ir_utils.get_singleton_value(beta), float):
        return result.fail("beta is not a constant float scalar", beta)
    if not _no_broadcast(x, beta):
        return result.fail("beta broadcasts x up", beta)
    return result


def _swish_beta(op, x, beta):
    return op.Swish(x, alpha=float(_ir_utils.get_singleton_value(beta)))


SWISH_RULES = pattern.RewriteRuleSet([
    pattern.RewriteRule(_silu, _swish, name="SiLU"),
    pattern.RewriteRule(_silu_beta, _swish_beta, _beta_is_scalar, name="SwishBeta"),
], commute=True)


# -- HardSwish ---------------------------------------------------------------------------------

def _relu_min(op, y, c):
    return op.Min(op.Relu(y), c)


def _relu_min_check(context, y, c):
    result = pattern.MatchResult()
    v = _ir_utils.get_singleton_value(c)
    if not isinstance(v, float) or v < 0:
        return result.fail("the Min bound is not a non-negative float scalar", c)
    if not _no_broadcast(y, c):  # Clip's bounds are scalars; Min could broadcast y up
        return result.fail("the Min bound broadcasts y up", c)
    return result


def _relu_min_clip(op, y, c):
    v = float(_ir_utils.get_singleton_value(c))
    dtype = y.dtype
    zero = op.Constant(value=_scalar(0.0, dtype))
    return op.Clip(y, zero, op.Constant(value=_scalar(v, dtype)))


def _scalar(v: float, dtype):
    np_dtype = dtype.numpy() if dtype is not None else np.float32
    return ir.tensor(np.array(v, dtype=np_dtype))


def _hard_sigmoid_mul(op, x, bias, lo, hi, sixth):
    return op.Mul(op.Clip(op.Add(x, bias), lo, hi), sixth)


def _relu6_constants(context, x, bias, lo, hi, sixth, **_):
    result = pattern.MatchResult()
    if not runtime_type(x):
        return result.fail("not a float or float16 tensor", x)
    for value, want, what in ((bias, 3.0, "bias"), (lo, 0.0, "Clip min"), (hi, 6.0, "Clip max"),
                              (sixth, _SIXTH, "scale")):
        if want == 0.0:
            ok = _ir_utils.get_singleton_value(value) == 0.0
        else:
            ok = _is(value, want)
        if not ok:
            return result.fail(f"{what} is not {want}", value)
    if not _no_broadcast(x, bias, lo, hi, sixth):
        return result.fail("a constant broadcasts x up")
    return result


def _hard_sigmoid(op, x, **_):
    return op.HardSigmoid(x, alpha=_SIXTH, beta=0.5)


def _clip_scaled(op, y, lo, hi, scale):
    return op.Mul(op.Clip(y, lo, hi), scale)


def _clip_divided(op, y, lo, hi, scale):
    return op.Div(op.Clip(y, lo, hi), scale)


def _unit_clip(divide: bool):
    """Clip(y, 0, b) * (1/b) (or / b): HardSigmoid(y, alpha=1/b, beta=0), which is
    max(0, min(1, y / b)). Seen where a bias ``+ 3`` was folded into the Conv before it (the
    squeeze-excite gate of MobileNetV3)."""

    def check(context, y, lo, hi, scale, **_):
        result = pattern.MatchResult()
        if not runtime_type(y):
            return result.fail("not a float or float16 tensor", y)
        b = _ir_utils.get_singleton_value(hi)
        k = _ir_utils.get_singleton_value(scale)
        if _ir_utils.get_singleton_value(lo) != 0.0 or not isinstance(b, float) or b <= 0:
            return result.fail("not a Clip from 0 to a positive bound")
        if not isinstance(k, float) or abs((k if divide else 1 / k) - b) > 1e-5 * b:
            return result.fail("the scale does not map the bound to 1", scale)
        if not _no_broadcast(y, scale):
            return result.fail("the scale broadcasts y up", scale)
        return result

    return check


def _unit_hard_sigmoid(op, y, scale, **_):
    k = float(_ir_utils.get_singleton_value(scale))
    return op.HardSigmoid(y, alpha=k, beta=0.0)


def _unit_hard_sigmoid_div(op, y, scale, **_):
    return op.HardSigmoid(y, alpha=1.0 / float(_ir_utils.get_singleton_value(scale)), beta=0.0)


def _hard_swish_mul_outer(op, x, bias, lo, hi, sixth):
    return op.Mul(op.Mul(x, op.Clip(op.Add(x, bias), lo, hi)), sixth)


def _hard_swish_sixth_x(op, x, bias, lo, hi, sixth):
    return op.Mul(op.Mul(x, sixth), op.Clip(op.Add(x, bias), lo, hi))


def _hard_swish(op, x, **_):
    return op.HardSwish(x)


RELU6_RULES = pattern.RewriteRuleSet([
    pattern.RewriteRule(_relu_min, _relu_min_clip, _relu_min_check, name="ReluMinToClip"),
    pattern.RewriteRule(_hard_sigmoid_mul, _hard_sigmoid, _relu6_constants,
                        name="HardSigmoidMul"),
    _typed(HardSigmoidFusion)().rule(),
    # after the two above, which take the Add of x + 3 along
    pattern.RewriteRule(_clip_scaled, _unit_hard_sigmoid, _unit_clip(False),
                        name="UnitClipMul"),
    pattern.RewriteRule(_clip_divided, _unit_hard_sigmoid_div, _unit_clip(True),
                        name="UnitClipDiv"),
], commute=True)

HARDSWISH_RULES = pattern.RewriteRuleSet([
    pattern.RewriteRule(_hard_swish_mul_outer, _hard_swish, _relu6_constants,
                        name="HardSwishMulSixth"),
    pattern.RewriteRule(_hard_swish_sixth_x, _hard_swish, _relu6_constants,
                        name="HardSwishSixthX"),
    _typed(HardSwishFusion)().rule(),
    _typed(HardSwishFusionFromHardSigmoid)().rule(),
], commute=True)


# -- Mish --------------------------------------------------------------------------------------

def _mish_softplus(op, x):
    return op.Mul(x, op.Tanh(op.Softplus(x)))


def _mish_log_exp(op, x, one):
    return op.Mul(x, op.Tanh(op.Log(op.Add(op.Exp(x), one))))


def _one_is_one(context, x, one):
    result = pattern.MatchResult()
    if _ir_utils.get_singleton_value(one) != 1.0:
        return result.fail("not 1", one)
    if not _no_broadcast(x, one):
        return result.fail("the constant broadcasts x up")
    return result


def _mish(op, x, **_):
    return op.Mish(x)


MISH_RULES = pattern.RewriteRuleSet([
    pattern.RewriteRule(_mish_softplus, _mish, name="MishSoftplus"),
    pattern.RewriteRule(_mish_log_exp, _mish, _one_is_one, name="MishLogExp"),
], commute=True)


def apply(model, opset: int, ops: set[str]) -> int:
    """Apply the rules the opset allows and the graph's operators can match; rewrites done."""
    count = 0
    if opset < CLIP_INPUTS_OPSET:
        return 0
    if {"Min", "Relu"} <= ops or "Clip" in ops:
        count += RELU6_RULES.apply_to_model(model)
        ops = ops | {"Clip", "HardSigmoid"}
    if opset >= HARDSWISH_OPSET and ("Clip" in ops or "HardSigmoid" in ops):
        count += HARDSWISH_RULES.apply_to_model(model)
    if opset >= MISH_OPSET and "Tanh" in ops:
        count += MISH_RULES.apply_to_model(model)
    if opset in SWISH_OPSETS and "Sigmoid" in ops:
        count += SWISH_RULES.apply_to_model(model)
    return count
