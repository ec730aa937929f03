"""Spelled-out chains recognised as standard ONNX operators (default domain only, so that
TensorRT and every runtime take them; never ``com.microsoft`` ops). Each fires only where the
graph's opset, and the ``--opset`` it will be written at, both have the operator; below that
the chain is left as it is.

- LayerNormalization (opset >= 17), by onnxscript's own fusion rules
  (``onnxscript.rewriter.rules.fusion._layer_norm``)::

      d = x - ReduceMean(x, [-1]);  v = ReduceMean(d * d | Pow(d, 2), [-1])
      y = d / Sqrt(v + eps) * scale [+ bias]        ->  LayerNormalization(x, scale[, bias])
      y = d / Sqrt(v + eps) [+ bias]                ->  LayerNormalization(x, ones[, bias])

  onnxscript's rules match ReduceMean in its opset-18 form (axes as the input ``[-1]``). The
  pass first brings every single-axis ReduceMean over the last axis (of the main graph) into
  that form: an ``axes`` attribute (opset 17) or a positive last axis (``[rank - 1]``)
  becomes the input ``[-1]``; at opset 17 the ReduceMeans that no rule consumed are put back
  in the attribute form afterwards (as ``axes=[-1]``).

- RMSNormalization (opset >= 23), onnxscript's rule (``..fusion._rms_normalization``, which
  emits the standard operator) for ``x * Reciprocal(Sqrt(ReduceMean(Pow(x, 2)) + eps))``, and
  this module's variant of it for the other spellings::

      ms = ReduceMean(Pow(x, 2) | x * x, [-1]) + eps
      y = scale * (x * Reciprocal(Sqrt(ms)) | x / Sqrt(ms) | x * Pow(ms, -0.5))
                                                    ->  RMSNormalization(x, scale)

- GELU (opset >= 20 ``Gelu``; below that the chain is kept as it is). onnxscript's GELU
  rules emit the ``com.microsoft`` Gelu/FastGelu, so these rules are this project's::

      0.5 * x * (1 + Erf(x / sqrt(2)))                      ->  Gelu(x)
      0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))) ->  Gelu(x, approximate="tanh")

  with the multiplications in any order, ``x * (1/sqrt(2))`` for the division, and
  ``x * x * x`` for ``Pow(x, 3)``, ``Sum(1, ·)`` for ``Add`` (ONNX's own Gelu function body,
  in which a two-input Sum becomes an Add); float and float16 only (onnxruntime has no double Gelu).

- SiLU/Swish (opset 24), HardSwish (14) and Mish (18): :mod:`.activations`.
- Scaled dot-product attention blocks, opset 23 ``Attention``: :mod:`.attention`.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter.rules.fusion._layer_norm import LayerNormBiasFusion, LayerNormFusion
from onnxscript.rewriter.rules.fusion._rms_normalization import RmsNormFusion

from modelport.graph_ir.passes import activations, attention
from modelport.graph_ir.passes.counting import CountingPass
from modelport.graph_ir.passes.manager import TARGET_OPSET_KEY, register_pass

LAYER_NORM_OPSET = 17
RMS_NORM_OPSET = 23
GELU_OPSET = 20

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


def _gelu_type(context, x, **_):
    result = pattern.MatchResult()
    if not activations.runtime_type(x):  # onnxruntime has no double Gelu kernel
        return result.fail("not a float or float16 tensor", x)
    return result


def _rules():
    rules = []
    for flag in (True, False):
        for p in _gelu_patterns(_erf_part):
            rules.append(pattern.RewriteRule(_bind(p, divide=flag), _gelu, _gelu_type,
                                             name=f"GeluErf{'Div' if flag else 'Mul'}"))
        for p in _gelu_patterns(_tanh_part):
            rules.append(pattern.RewriteRule(_bind(p, cube=flag), _gelu_tanh, _gelu_type,
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


class _UnscaledLayerNorm(LayerNormFusion):
    """The chain without the scale (``d / Sqrt(v + eps)`` [+ bias], as a LayerNorm with
    ``scale=False`` is spelled): LayerNormalization with a scale of ones. onnxscript's
    pattern ends in the scale's Mul, so the pattern is restated here without it; its check
    is reused."""

    def __init__(self, name: str, divide: bool):
        super().__init__(name)
        self._divide = divide

    def pattern(self, op, x, epsilon):
        deviation = op.Sub(x, op.ReduceMean(x, [-1], keepdims=1))
        square = pattern.OrValue([op.Mul(deviation, deviation), op.Pow(deviation, 2)])
        std_dev = op.Sqrt(op.Add(op.ReduceMean(square, [-1], keepdims=1), epsilon))
        if self._divide:
            return op.Div(deviation, std_dev)
        return op.Mul(deviation, op.Reciprocal(std_dev))

    def check(self, context, x, epsilon, **kw):
        result = super().check(context, x=x, epsilon=epsilon, **kw)
        if result and (x.shape is None or not len(x.shape) or not isinstance(x.shape[-1], int)):
            return result.fail("the normalised axis' size is not known", x)
        return result

    def rewrite(self, op, x, epsilon, **_):
        ones = ir.tensor(np.ones(x.shape[-1], x.dtype.numpy()))
        return op.LayerNormalization(x, op.Constant(value=ones), axis=-1,
                                     epsilon=self._epsilon, stash_type=self._stash_type)


class _CheckedRmsNorm(RmsNormFusion):
    """onnxscript's rule, also checking the scale's shape (as for LayerNormalization)."""

    def check(self, op, x, scale, epsilon, compute_dtype, target_dtype, **kw):
        result = super().check(op, x=x, scale=scale, epsilon=epsilon,
                               compute_dtype=compute_dtype, target_dtype=target_dtype, **kw)
        if result and not _last_axis_only(scale, x):
            return result.fail("scale does not run along the last axis only")
        return result


class _RmsNormVariants(_CheckedRmsNorm):
    """The spellings onnxscript's pattern does not take: ``x * x`` for the square, and
    ``x / Sqrt(ms)`` or ``x * Pow(ms, -0.5)`` for ``x * Reciprocal(Sqrt(ms))``."""

    def pattern(self, op, x, scale, epsilon, compute_dtype, target_dtype):
        x = pattern.OrValue([op.Cast(x, to=compute_dtype), x])
        square = pattern.OrValue([op.Mul(x, x), op.Pow(x, 2.0)])
        mean_square = op.ReduceMean(square, [-1], keepdims=1, noop_with_empty_axes=0)
        ms = op.Add(mean_square, epsilon)
        normalized = pattern.OrValue([
            op.Div(x, op.Sqrt(ms)),
            op.Mul(x, op.Pow(ms, -0.5)),
            op.Mul(op.Pow(ms, -0.5), x),
            op.Mul(x, op.Reciprocal(op.Sqrt(ms))),
            op.Mul(op.Reciprocal(op.Sqrt(ms)), x),
        ])
        normalized = pattern.OrValue([op.Cast(normalized, to=target_dtype), normalized])
        if self._mul_order:
            return op.Mul(normalized, scale)
        return op.Mul(scale, normalized)


def _sum2(op, a, b):
    return op.Sum(a, b)


def _add(op, a, b):
    return op.Add(a, b)


# A two-input Sum is an Add (both broadcast alike); ONNX's own function bodies (Gelu's) write
# Sum, and the rules here look for Add.
SUM_RULES = pattern.RewriteRuleSet([pattern.RewriteRule(_sum2, _add, name="Sum2ToAdd")])
GELU_RULES = pattern.RewriteRuleSet(_rules(), commute=True)
LAYER_NORM_RULES = pattern.RewriteRuleSet(
    [_CheckedLayerNorm.rule(), _CheckedLayerNormBias.rule()], commute=True)
UNSCALED_LAYER_NORM_RULES = pattern.RewriteRuleSet([
    _UnscaledLayerNorm.rule("LayerNormNoScaleDiv", divide=True),
    _UnscaledLayerNorm.rule("LayerNormNoScaleReciprocal", divide=False),
])
RMS_NORM_RULES = pattern.RewriteRuleSet([
    _CheckedRmsNorm.rule("RmsNorm", mul_order=True),
    _CheckedRmsNorm.rule("RmsNormScaleFirst", mul_order=False),
    _RmsNormVariants.rule("RmsNormVariants", mul_order=True),
    _RmsNormVariants.rule("RmsNormVariantsScaleFirst", mul_order=False),
])  # no commute: onnxscript cannot commute these OrValue patterns; both orders are spelled


def _is_default(node: ir.Node) -> bool:
    return node.domain in ("", "ai.onnx")


def _last_axis_reduce_means(model: ir.Model, opset: int) -> tuple[list[ir.Node], ir.Value]:
    """Bring each single-axis ReduceMean over the last axis (of the main graph) into the form
    onnxscript's rules match: axes the input ``[-1]``, keepdims and noop_with_empty_axes
    spelled out. Returns the nodes changed from the attribute form (opset < 18), to be put
    back afterwards, and the ``[-1]`` initializer."""
    graph = model.graph
    name = "modelport_last_axis"
    while name in graph.initializers:
        name += "_"
    minus_one = ir.Value(name=name, shape=ir.Shape([1]), type=ir.TensorType(ir.DataType.INT64),
                         const_value=ir.tensor(np.array([-1], np.int64), name=name))
    changed = []
    for node in graph:
        if node.op_type != "ReduceMean" or not _is_default(node) or not node.inputs:
            continue
        node.attributes.setdefault("keepdims", ir.AttrInt64("keepdims", 1))
        x = node.inputs[0]
        rank = len(x.shape) if x is not None and x.shape is not None else None
        if opset < 18:
            axes = node.attributes.get("axes")
            axes = list(axes.as_ints()) if axes is not None else None
        else:
            node.attributes.setdefault("noop_with_empty_axes",
                                       ir.AttrInt64("noop_with_empty_axes", 0))
            a = node.inputs[1] if len(node.inputs) > 1 else None
            axes = (a.const_value.numpy().reshape(-1).tolist()
                    if a is not None and a.const_value is not None else None)
            if axes == [-1]:
                continue
        if axes is None or len(axes) != 1 or rank is None or axes[0] not in (-1, rank - 1):
            continue
        if minus_one.graph is None:
            graph.register_initializer(minus_one)
        if opset < 18:
            del node.attributes["axes"]
            node.attributes["noop_with_empty_axes"] = ir.AttrInt64("noop_with_empty_axes", 0)
            node.resize_inputs(2)
            changed.append(node)
        node.replace_input_with(1, minus_one)
    return changed, minus_one


def _restore_attribute_form(nodes: list[ir.Node], minus_one: ir.Value) -> None:
    for node in nodes:
        if node.graph is None:  # consumed by a rewrite
            continue
        node.replace_input_with(1, None)
        node.resize_inputs(1)
        node.attributes.pop("noop_with_empty_axes", None)
        node.attributes["axes"] = ir.AttrInt64s("axes", [-1])
    if minus_one.graph is not None and not minus_one.uses():
        minus_one.graph.initializers.pop(minus_one.name)


class StandardPatternsPass(CountingPass):
    """LayerNormalization (opset >= 17), Gelu (20), RMSNormalization and Attention (23),
    HardSwish (14), Mish (18) and Swish (24) from their spelled-out chains."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.rewrites = 0
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
        target = model.meta.get(TARGET_OPSET_KEY)
        if target is not None:  # the exporter converts to this opset afterwards
            opset = min(opset, target)
        ops = {n.op_type for n in model.graph.all_nodes() if _is_default(n)}
        if opset >= LAYER_NORM_OPSET and "ReduceMean" in ops and ("Sqrt" in ops or "Pow" in ops):
            attribute_form, minus_one = _last_axis_reduce_means(model, opset)
            try:
                self.rewrites += LAYER_NORM_RULES.apply_to_model(model)
                # after the scaled rules, which must keep their whole chains; then the
                # bias rule again, for the unscaled ones followed by a bias
                if UNSCALED_LAYER_NORM_RULES.apply_to_model(model):
                    self.rewrites += 1 + LAYER_NORM_RULES.apply_to_model(model)
                if opset >= RMS_NORM_OPSET:
                    self.rewrites += RMS_NORM_RULES.apply_to_model(model)
            finally:
                _restore_attribute_form(attribute_form, minus_one)
        if opset >= GELU_OPSET and ("Erf" in ops or "Tanh" in ops):
            if "Sum" in ops:
                self.rewrites += SUM_RULES.apply_to_model(model)
            self.rewrites += GELU_RULES.apply_to_model(model)
        self.rewrites += activations.apply(model, opset, ops)
        self.rewrites += attention.apply(model, opset, ops)
        return ir.passes.PassResult(model, self.rewrites > 0)


@register_pass(2, "standard-patterns")
def standard_patterns_pass() -> ir.passes.PassBase:
    return StandardPatternsPass()
