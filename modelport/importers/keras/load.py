"""Build the IR graph of a Keras model from its config and weights (no Keras, no TensorFlow)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx_ir as ir

from modelport.errors import (
    InvalidModelError,
    UnsafeModelError,
    UnsupportedFeatureError,
    UnsupportedOpsError,
)
from modelport.graph_ir.builder import GraphBuilder
from modelport.graph_ir.io import check_input_override
from modelport.graph_ir.metadata import (
    KERAS_BACKEND_KEY,
    KERAS_VERSION_KEY,
    SOURCE_PERM_KEY,
    VALUE_LAYOUTS_KEY,
)
from modelport.graph_ir.tensors import keep_open
from modelport.importers import optable
from modelport.importers.keras import keras1, masks, theano
from modelport.importers.keras.layers import tf_functions
from modelport.importers.keras.layers.activations import activation_name
from modelport.importers.keras.model import (
    MODEL_CLASSES,
    ArchiveWeights,
    LayerSpec,
    ModelSpec,
    Ref,
    open_keras,
    parse_model,
)
from modelport.importers.keras.table import KT, Context, Layer, cf_perm, keras_layer, onnx_dims
from modelport.importers.registry import LoadOptions


def load_translators() -> None:
    """Register the Keras layer translators (on first use: `formats` and ONNX conversions
    never pay for importing them)."""
    optable.load_translators("modelport.importers.keras.layers")


def load(path: str, options: LoadOptions | None = None) -> ir.Model:
    options = options or LoadOptions()
    load_translators()
    kf = open_keras(path, options.weights)
    try:
        model = _load(kf, path, options)
    except UnsupportedFeatureError as exc:
        for h in kf.handles:
            h.close()
        if exc.path is None:  # raised by a translator: name the file
            raise UnsupportedFeatureError(exc.problem, path=path) from None
        raise
    except BaseException:
        for h in kf.handles:
            h.close()
        raise
    keep_open(model, kf.handles)  # lazy tensors read them; the pipeline closes them
    return model


def _load(kf, path: str, options: LoadOptions) -> ir.Model:
    config = kf.config
    if "class_name" not in config and "config" not in config:
        raise InvalidModelError("the model config is not a Keras model", path=path)
    weights = kf.weights
    if keras1.is_keras1(kf.keras_version, config):
        config = keras1.normalize_config(config, path)
        if weights is not None and not isinstance(weights, tuple):
            weights = keras1.Keras1Weights(weights, kf.keras_version)
    spec = parse_model(config)
    if isinstance(weights, tuple):  # weights-only file in the Keras 3 layout
        weights = ArchiveWeights(weights[1], options.weights or path)
        weights.assign(spec)
    if weights is None and not options.random_weights:
        raise InvalidModelError("has no weights; pass the weights file with --weights FILE",
                                path=path)
    check_layers(spec, options, path)
    b = GraphBuilder(spec.name or "keras")
    ctx = Context(b, options, path)
    ctx.keras_version = kf.keras_version
    ctx.keras_backend, how = file_backend(kf, options, path)
    walker = Walker(ctx, weights, kf.keras_version, options)
    outputs = walker.run(spec, (), None)
    names = output_names(spec)
    for t, name in zip(outputs, names):
        if options.nchw_inputs and t.perm is not None and t.fperm is None and t.rank >= 3:
            value = ctx.to_perm(t, cf_perm(t.rank))
            out = b.output(value, name)
            out.metadata_props[SOURCE_PERM_KEY] = ",".join(
                map(str, [0, *range(2, t.rank), 1]))
        else:
            out = b.output(ctx.logical(t), name)
        dims = onnx_dims(t.shape if out.metadata_props.get(SOURCE_PERM_KEY) is None
                         else [t.shape[p] for p in cf_perm(t.rank)])
        # Unknown dims stay unnamed: naming the first one "N" would claim it equals the
        # input batch, which an output such as x[1:] does not (the optimiser would then
        # drop the slice). Shape inference at export names what it can prove.
        out.shape = ir.Shape(dims)
        out.type = ir.TensorType(ir.DataType.from_numpy(t.dtype))
    meta = {KERAS_VERSION_KEY: kf.keras_version,
            KERAS_BACKEND_KEY: f"{ctx.keras_backend} ({how})"}
    if ctx.layouts:
        meta[VALUE_LAYOUTS_KEY] = json.dumps(ctx.layouts, separators=(",", ":"))
    return b.build(metadata=meta)


def file_backend(kf, options: LoadOptions, path: str) -> tuple[str, str]:
    """The Keras backend the file was saved with (Theano changes what kernels mean) and how
    that was decided; ``LoadOptions.extra["keras_backend"]`` (``--keras-backend``) wins."""
    override = options.extra.get("keras_backend")
    if override and override not in theano.BACKENDS:
        raise InvalidModelError(f"unknown Keras backend {override!r} (expected one of "
                                f"{', '.join(theano.BACKENDS)})", path=path)
    return theano.backend_of(kf.backend, kf.keras_version, kf.config, override)


def output_names(spec: ModelSpec) -> list[str]:
    """Graph output names: the Keras output layer names, numbered when a layer gives several."""
    names: list[str] = []
    for ref in spec.outputs:
        name = ref.layer
        n = 1
        while name in names:
            name = f"{ref.layer}_{n}"
            n += 1
        names.append(name)
    return names


def input_names(spec: ModelSpec) -> list[str]:
    return [r.layer for r in spec.inputs]


def _lookup(spec: LayerSpec):
    if spec.class_name == "Lambda":
        return keras_layer.get(f"Lambda:{spec.name}")
    if "trainable" not in (spec.config or {}) and spec.class_name != "InputLayer":
        # A Keras 3 operation (``ops.reshape``...), not a layer of the same class name.
        fn = keras_layer.get(f"op:{spec.class_name}")
        if fn is not None:
            return fn
    fn = keras_layer.get(spec.class_name)
    reg = spec.raw.get("registered_name") if spec.raw else None
    if fn is None and reg:
        fn = keras_layer.get(reg)
    return fn


def check_layers(spec: ModelSpec, options: LoadOptions, path: str, prefix: str = "") -> None:
    """Raise once for every layer that cannot be translated (Lambda, custom, unknown)."""
    missing: dict[str, list[str]] = {}
    lambdas: list[str] = []

    def visit(model: ModelSpec, prefix: str) -> None:
        for layer in model.layers:
            full = prefix + layer.name
            if layer.class_name in MODEL_CLASSES:
                visit(parse_model(layer.raw), full + "/")
                continue
            for inner in _wrapped(layer):
                if _lookup(inner) is None:
                    missing.setdefault(_label(inner), []).append(full)
            if layer.class_name == "TFOpLambda" and _lookup(layer) is not None:
                fn = str(layer.config.get("function"))
                if not tf_functions.supported(fn):
                    missing.setdefault(f"TFOpLambda {fn!r}" + tf_functions.why_not(fn),
                                       []).append(full)
            if layer.class_name == "Lambda" and _lookup(layer) is None:
                lambdas.append(full)
            elif layer.class_name != "InputLayer" and _lookup(layer) is None:
                missing.setdefault(_label(layer), []).append(full)

    visit(spec, prefix)
    if lambdas and not options.trust_code:
        shown = ", ".join(repr(n) for n in lambdas)
        raise UnsafeModelError(
            f"Lambda layer{'s' if len(lambdas) > 1 else ''} {shown} hold{'' if len(lambdas) > 1 else 's'} "
            "Python code, which modelport never runs; re-save the model without Lambda layers, "
            "or register a translation with @keras_layer('Lambda:<layer name>')"
            + (f" (other untranslatable layers: {', '.join(missing)})" if missing else ""),
            path=path)
    if lambdas:
        missing.setdefault("Lambda", []).extend(lambdas)
    if missing:
        functions = [k for k in missing if k.startswith("TFOpLambda ")]
        hints = []
        if len(functions) < len(missing):
            hints.append("custom layers are never executed; register a translation with "
                         "@keras_layer('ClassName') from modelport.importers.keras (see "
                         "docs/extending.md)")
        if "Lambda" in missing:
            hints.append("Lambda code is not translated even with --trust-code")
        if functions:
            hints.append("these TensorFlow functions have no translation yet (see the "
                         "TFOpLambda functions in docs/formats/keras.md)")
        raise UnsupportedOpsError(missing, path=path, kind="Keras layer", hint="; ".join(hints))


def _label(spec: LayerSpec) -> str:
    reg = spec.raw.get("registered_name") if spec.raw else None
    module = spec.module or ""
    if reg and reg != spec.class_name:
        return f"{spec.class_name} [{reg}]"
    if module and not module.startswith("keras"):
        return f"{spec.class_name} [{module}]"
    return spec.class_name


def _wrapped(spec: LayerSpec) -> list[LayerSpec]:
    out = []
    for key in ("layer", "backward_layer"):
        inner = spec.config.get(key)
        if isinstance(inner, dict) and "class_name" in inner and \
                spec.class_name in ("TimeDistributed", "Bidirectional"):
            ic = inner.get("config") or {}
            out.append(LayerSpec(inner["class_name"], ic.get("name", key), ic, inner.get("module"),
                                 [], inner))
    return out


def _input_dtype(cfg: dict) -> np.dtype:
    d = cfg.get("dtype") or "float32"
    if isinstance(d, dict):
        d = (d.get("config") or {}).get("name", "float32")
    if d in ("mixed_float16", "mixed_bfloat16"):
        d = "float32"
    try:
        return np.dtype(d)
    except TypeError:
        return np.dtype(np.float32)


class LayerWeights(list):
    """A layer's weight arrays; asking for one the file does not hold is the file's fault (a
    translator indexes the list its layer type always has), reported as such."""

    def __init__(self, layer: str, arrays, path: str | None = None) -> None:
        super().__init__(arrays)
        self.layer = layer
        self.path = path

    def __getitem__(self, index):
        try:
            return super().__getitem__(index)
        except IndexError:
            raise InvalidModelError(f"layer {self.layer!r} has {len(self)} weight arrays in the "
                                    "file, fewer than its type needs", path=self.path) from None


class Walker:
    def __init__(self, ctx: Context, weights: Any, version: str, options: LoadOptions) -> None:
        self.ctx = ctx
        self.weights = weights
        self.version = version
        self.options = options
        self.keras2 = version.startswith(("1", "2"))

    def make_layer(self, spec: LayerSpec, path: tuple[str, ...]) -> Layer:
        def get_weights() -> list:
            if self.weights is None:
                raise InvalidModelError("random weights are not supported for Keras models")
            cache = getattr(get_weights, "cache", None)
            if cache is None:
                cache = LayerWeights("/".join(path), self.weights.for_layer(path, spec),
                                     self.ctx.path)
                get_weights.cache = cache
            return cache

        return Layer(spec.class_name, "/".join(path), spec.config, get_weights, spec.module,
                     self.version)

    def run(self, spec: ModelSpec, prefix: tuple[str, ...], inputs: list[KT] | None) -> list[KT]:
        b = self.ctx.b
        produced: dict[tuple[str, int, int], KT] = {}
        by_name = {layer.name: layer for layer in spec.layers}
        # Inputs.
        for i, ref in enumerate(spec.inputs):
            layer = by_name.get(ref.layer)
            if layer is None:
                raise InvalidModelError(f"the model's input {ref.layer!r} is not one of its layers")
            if inputs is not None:
                produced[(ref.layer, 0, 0)] = inputs[i]
                continue
            cfg = layer.config
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if shape is None:
                raise InvalidModelError(f"input {ref.layer!r} has no shape in the config")
            shape = tuple(d if d is None else int(d) for d in shape)
            override = self.options.input_shapes.get(ref.layer)
            dtype = _input_dtype(cfg)
            if self.options.input_dtypes.get(ref.layer):
                dtype = np.dtype(self.options.input_dtypes[ref.layer])
            rank = len(shape)
            if self.options.nchw_inputs and rank >= 3 and dtype.kind == "f":
                perm = cf_perm(rank)
                phys = [shape[p] for p in perm]
                if override:
                    check_input_override(ref.layer, phys, override)
                    phys = list(override)
                    shape = tuple(phys[perm.index(a)] if isinstance(phys[perm.index(a)], int)
                                  else None for a in range(rank))
                v = b.input(ref.layer, dtype, [d if d is not None else ("N" if j == 0 else f"d{j}")
                                               for j, d in enumerate(phys)])
                v.metadata_props[SOURCE_PERM_KEY] = ",".join(
                    map(str, [0, *range(2, rank), 1]))
                produced[(ref.layer, 0, 0)] = KT(v, shape, dtype, perm)
            else:
                if override:
                    check_input_override(ref.layer, shape, override)
                    shape = tuple(d if isinstance(d, int) else None for d in override)
                v = b.input(ref.layer, dtype, [d if d is not None else ("N" if j == 0 else f"d{j}")
                                               for j, d in enumerate(shape)])
                produced[(ref.layer, 0, 0)] = KT(v, shape, dtype)
        plan_bn_folds(self, spec, prefix)
        # Calls, in dependency order.
        pending = [(layer, ci) for layer in spec.layers if layer.class_name != "InputLayer"
                   for ci in range(len(layer.calls))]
        layers_cache: dict[str, Layer] = {}
        while pending:
            progress = False
            rest = []
            for layer, ci in pending:
                call = layer.calls[ci]
                refs = [a for a in call.args if isinstance(a, Ref)] + \
                       [r for v in call.kwargs.values() for r in _refs_in(v)]
                if not all((r.layer, r.node, r.index) in produced for r in refs):
                    rest.append((layer, ci))
                    continue
                progress = True

                def resolve(a: Any) -> Any:
                    if isinstance(a, Ref):
                        return produced[(a.layer, a.node, a.index)]
                    if isinstance(a, list):
                        return [resolve(x) for x in a]
                    return a

                args = [resolve(a) for a in call.args]
                kwargs = {k: resolve(v) for k, v in call.kwargs.items()}
                path = (*prefix, layer.name)
                if layer.class_name in MODEL_CLASSES:
                    outs = self.run(parse_model(layer.raw), path,
                                    [a for a in args if isinstance(a, KT)])
                else:
                    if layer.name not in layers_cache:
                        layers_cache[layer.name] = self.make_layer(layer, path)
                    self.ctx.args = [resolve(a) for a in call.nested] \
                        if call.nested is not None else args
                    outs = self.translate(layers_cache[layer.name], layer, args, kwargs)
                if self.options.extra.get("keras_layout") == "per_layer":
                    # Every layer hands on its results in Keras' own (channels-last) order:
                    # a Transpose pair around each layout-sensitive layer, as TensorFlow-style
                    # importers emit, left to the layout pass (graph_ir/passes/layout.py).
                    outs = [self.ctx.as_logical(t) if t.perm is not None or t.fperm is not None
                            else t for t in outs]
                self._record_returns("/".join(path), outs)
                # Keras 2 counts a nested model's own construction as its node 0.
                node = ci + 1 if layer.class_name in MODEL_CLASSES and self.keras2 else ci
                for j, t in enumerate(outs):
                    produced[(layer.name, node, j)] = t
                    self.ctx.record_layout(t)
            if not progress:
                names = sorted({layer.name for layer, _ in rest})
                raise InvalidModelError(
                    f"layers {', '.join(names[:5])} use tensors no layer produces "
                    "(the model config is inconsistent)")
            pending = rest
        result = []
        for ref in spec.outputs:
            key = (ref.layer, ref.node, ref.index)
            if key not in produced:
                raise InvalidModelError(f"the model output {ref.layer!r} is never computed")
            result.append(produced[key])
        return result

    def _record_returns(self, name: str, outs: list[KT]) -> None:
        """What the layer returns, for per-layer verification (its last call counts, as in
        the reference); a convolution with a BatchNormalization folded in has no value."""
        bn = self.ctx.bn_fold.get(name)
        if bn is not None:
            self.ctx.b.layer_has_no_value(
                name, f"the BatchNormalization {bn.name!r} after it is folded into it at "
                "import; their combined value is compared as that layer")
        else:
            self.ctx.b.layer_returns(name, [t.value for t in outs])

    def translate(self, layer: Layer, spec: LayerSpec, args: list, kwargs: dict) -> list[KT]:
        fn = _lookup(spec)
        assert fn is not None
        ctx = self.ctx
        inputs = []
        for a in args:
            if isinstance(a, KT):
                inputs.append(a)
            elif _numeric(a):
                inputs.append(const_kt(ctx, a))
        ctx.kwargs = kwargs
        ctx.spec = spec
        with ctx.b.layer(layer.name):
            try:
                ctx.mask = masks.mask_for(ctx, layer, inputs, kwargs, self.keras2)
                out = fn(ctx, layer, inputs)
                outs = list(out) if isinstance(out, (list, tuple)) else [out]
                masks.after(ctx, layer, inputs, outs, self.keras2)
            # Only the project's own errors (a translator or check found the layer malformed
            # or unsupported) are the input's fault; anything else escaping a translator is
            # a bug of ours and reaches the CLI as an internal error (exit 3).
            except UnsupportedFeatureError as exc:
                if exc.path is not None:
                    raise
                raise UnsupportedFeatureError(
                    f"layer {layer.name!r} ({layer.class_name}) cannot be translated: "
                    f"{exc.problem}", path=ctx.path) from None
            finally:
                ctx.mask = None
        return outs


_FOLD_INTO = {"Conv1D": 3, "Conv2D": 4, "Conv3D": 5, "DepthwiseConv1D": 3, "DepthwiseConv2D": 4,
              "SeparableConv1D": 3, "SeparableConv2D": 4}


def plan_bn_folds(walker: Walker, spec: ModelSpec, prefix: tuple[str, ...]) -> None:
    """Find convolutions whose only consumer is a BatchNormalization over their channels (the
    Conv-BN idiom of Keras CNNs): the BatchNorm is folded into the convolution's weights as
    they are read, so no BatchNormalization node is built and later fused."""
    if walker.options.extra.get("keras_fold_batchnorm") is False:
        return
    consumers: dict[str, list[LayerSpec]] = {}
    for layer in spec.layers:
        for call in layer.calls:
            refs = [a for a in call.args if isinstance(a, Ref)] + \
                   [r for v in call.kwargs.values() for r in _refs_in(v)]
            for r in refs:
                consumers.setdefault(r.layer, []).append(layer)
    outputs = {r.layer for r in spec.outputs}
    for layer in spec.layers:
        rank = _FOLD_INTO.get(layer.class_name)
        c = layer.config
        if rank is None or len(layer.calls) != 1 or layer.name in outputs:
            continue
        if activation_name(c.get("activation")) != "linear":
            continue
        users = consumers.get(layer.name, [])
        if len(users) != 1 or users[0].class_name != "BatchNormalization" or \
                len(users[0].calls) != 1:
            continue
        bn = users[0]
        axis = bn.config.get("axis", -1)
        axis = axis if isinstance(axis, list) else [axis]
        if len(axis) != 1:
            continue
        want = 1 if c.get("data_format") == "channels_first" else rank - 1
        if axis[0] % rank != want:
            continue
        bn_layer = walker.make_layer(bn, (*prefix, bn.name))
        walker.ctx.bn_fold["/".join((*prefix, layer.name))] = bn_layer
        walker.ctx.bn_folded.add(bn_layer.name)


def _numeric(v: Any) -> bool:
    if isinstance(v, (bool, int, float, np.number, np.ndarray)):
        return True
    return isinstance(v, list) and bool(v) and all(_numeric(x) for x in v)


def _refs_in(v: Any) -> list[Ref]:
    if isinstance(v, Ref):
        return [v]
    if isinstance(v, list):
        return [r for x in v for r in _refs_in(x)]
    return []


def const_kt(ctx: Context, value: Any) -> KT:
    arr = np.asarray(value)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype == np.int64 and arr.ndim == 0:
        arr = arr.astype(np.float32)  # Python scalars in ops: promoted against float tensors
    v = ctx.const(arr, "scalar")
    return KT(v, arr.shape, arr.dtype, const=arr)
