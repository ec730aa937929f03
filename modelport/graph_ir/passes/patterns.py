"""Spelled-out chains recognised as standard ONNX operators (default domain only, so that
TensorRT and every runtime take them; never ``com.microsoft`` ops).

- LayerNormalization (graphs at opset >= 18, where ReduceMean takes its axes as an input),
  by onnxscript's own fusion rules
  (``onnxscript.rewriter.rules.fusion._layer_norm``)::

      d = x - ReduceMean(x, [-1]);  v = ReduceMean(d * d | Pow(d, 2), [-1])
      y = d / Sqrt(v + eps) * scale [+ bias]        ->  LayerNormalization(x, scale[, bias])

- GELU (opset >= 20 ``Gelu``; below that the chain is kept as it is). onnxscript's GELU
  rules emit the ``com.microsoft`` Gelu/FastGelu, so these rules are this project's::

      0.5 * x * (1 + Erf(x / sqrt(2)))                      ->  Gelu(x)
      0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))) ->  Gelu(x, approximate="tanh")

  with the multiplications in any order, ``x * (1/sqrt(2))`` for the division, and
  ``x * x * x`` for ``Pow(x, 3)``.
"""

from __future__ import annotations

import math

import onnx_ir as ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter.rules.fusion._layer_norm import LayerNormBiasFusion, LayerNormFusion

from modelport.graph_ir.passes.manager import TARGET_OPSET_KEY, register_pass

_SQRT2 = math.sqrt(2.0)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def _erf_part(op, x, divide: bool):
    scaled = op.Div(x, _SQRT2) if divide else op.Mul(x, 1.0 / _SQRT2)
    return op.Add(op.Erf(scaled), 1.0)


def _tanh_part(op, x, cube: bool):
    x3 = op.Pow(x, 3.0) if cube else op.Mul(op.Mul(x, x), x)
    inner = op.Mul(op.Add(x, op.Mul(x3, 0.044715)), _SQRT_2_PI)
    return op.Add(op.Tanh(inner), 1.0)


def _gelu_patterns(part):
    """Three association orders of 0.5 * x * part(x)."""

    def half_outer(op, x, **kw):
        return op.Mul(op.Mul(x, part(op, x, **kw)), 0.5)

    def half_inner(op, x, **kw):
        return op.Mul(x, op.Mul(part(op, x, **kw), 0.5))

    def half_x(op, x, **kw):
        return op.Mul(op.Mul(x, 0.5), part(op, x, **kw))

    return half_outer, half_inner, half_x


def _bind(p, **kw):
    def target(op, x):
        return p(op, x, **kw)

    return target


def _gelu(op, x):
    return op.Gelu(x)


def _gelu_tanh(op, x):
    return op.Gelu(x, approximate="tanh")


def _rules():
    rules = []
    for flag in (True, False):
        for p in _gelu_patterns(_erf_part):
            rules.append(pattern.RewriteRule(_bind(p, divide=flag), _gelu,
                                             name=f"GeluErf{'Div' if flag else 'Mul'}"))
        for p in _gelu_patterns(_tanh_part):
            rules.append(pattern.RewriteRule(_bind(p, cube=flag), _gelu_tanh,
                                             name=f"GeluTanh{'Pow' if flag else 'Mul'}"))
    return rules


def _last_axis_only(v, x) -> bool:
    """``v`` (scale or bias) has as many elements as x's last dim, all along its last axis:
    what LayerNormalization takes, and what the chain's broadcast then equals."""
    if v is None or v.shape is None or x.shape is None or not len(x.shape):
        return False
    d = x.shape[-1]
    dims = list(v.shape)
    return (isinstance(d, int) and len(dims) >= 1 and dims[-1] == d
            and all(k == 1 for k in dims[:-1]) and len(dims) <= len(x.shape))


class _CheckedLayerNorm(LayerNormFusion):
    """onnxscript's rule, also checking that the scale runs along the normalised axis only
    (its own check does not look at the scale's shape)."""

    def check(self, context, x, scale, epsilon, **kw):
        result = super().check(context, x=x, scale=scale, epsilon=epsilon, **kw)
        if result and not _last_axis_only(scale, x):
            return result.fail("scale does not run along the last axis only")
        return result


class _CheckedLayerNormBias(LayerNormBiasFusion):
    def check(self, context, x, scale, bias, **_):
        result = pattern.MatchResult()
        if not _last_axis_only(bias, x):
            return result.fail("bias does not run along the last axis only")
        return result


GELU_RULES = pattern.RewriteRuleSet(_rules(), commute=True)
LAYER_NORM_RULES = pattern.RewriteRuleSet(
    [_CheckedLayerNorm.rule(), _CheckedLayerNormBias.rule()], commute=True)


class StandardPatternsPass(ir.passes.InPlacePass):
    """LayerNormalization (opset >= 17) and Gelu (opset >= 20) from their spelled-out chains."""

    def __init__(self) -> None:
        super().__init__()
        self.rewrites = 0

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.rewrites = 0
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
        target = model.meta.get(TARGET_OPSET_KEY)
        if target is not None:  # the exporter converts to this opset afterwards
            opset = min(opset, target)
        ops = {n.op_type for n in model.graph.all_nodes() if n.domain in ("", "ai.onnx")}
        if opset >= 18 and {"ReduceMean", "Sqrt"} <= ops:
            # the rules match ReduceMean with axes as an input (opset 18) and an explicit
            # keepdims; spell out the default where it is implicit
            for node in model.graph.all_nodes():
                if node.op_type == "ReduceMean" and node.domain in ("", "ai.onnx") and (
                        "keepdims" not in node.attributes):
                    node.attributes["keepdims"] = ir.AttrInt64("keepdims", 1)
            self.rewrites += LAYER_NORM_RULES.apply_to_model(model)
        if opset >= 20 and ("Erf" in ops or "Tanh" in ops):
            self.rewrites += GELU_RULES.apply_to_model(model)
        return ir.passes.PassResult(model, self.rewrites > 0)


@register_pass(2, "standard-patterns")
def standard_patterns_pass() -> ir.passes.PassBase:
    return StandardPatternsPass()
