"""Build the IR graph from a Caffe net: inputs, one translator call per layer, outputs.

Caffe nets have static shapes, and several layers (Flatten, Reshape, Crop, Interp, Pooling's
ceil rounding, InnerProduct's weight shape) need them to be translated, so the importer tracks
the static shape of every blob as it goes, the way Caffe's own ``Reshape`` pass does.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from modelport.errors import InputSpecError, InvalidModelError, UnsupportedOpsError, join_names
from modelport.graph_ir import GraphBuilder, keep_open, lazy_tensor
from modelport.graph_ir.io import check_input_override
from modelport.graph_ir.metadata import io_key
from modelport.importers.caffe.proto import UnknownField, looks_like_text, read_net
from modelport.importers.caffe.table import caffe_layer
from modelport.importers.caffe.weights import WeightsFile
from modelport.importers.optable import load_translators
from modelport.importers.registry import LoadOptions

load_translators("modelport.importers.caffe.layers")

INPUT_TYPES = ("Input",)
_TRAINING_TYPES = {"Data", "ImageData", "HDF5Data", "WindowData", "MemoryData", "DummyData",
                   "AnnotatedData", "Accuracy", "HDF5Output"}
# Sub-messages whose unknown fields cannot change inference numbers.
_HARMLESS_SCOPES = {
    "param", "include", "exclude", "weight_filler", "bias_filler", "filler", "scale_filler",
    "transform_param", "data_param", "loss_param", "accuracy_param", "window_data_param",
    "image_data_param", "memory_data_param", "hdf5_data_param", "blobs",
}
# Unknown fields known to be training- or speed-only in the forks that add them.
_HARMLESS_FIELDS = {"engine", "blobs_lr", "weight_decay", "lr_mult", "decay_mult", "phase",
                    "propagate_down", "loss_weight", "debug_info", "force_backward",
                    "use_cudnn", "cudnn_off", "workspace_size", "moving_average_fraction"}
IO_KEY = io_key("caffe")
# No blob of a real net comes near this (2^34 float32 values are 64 GiB): a prototxt whose
# shapes claim more is refused before anything of that size is allocated.
MAX_ELEMENTS = 1 << 34


def _elements(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def resolve_files(path: str, options: LoadOptions) -> tuple[str, str | None]:
    """(prototxt, caffemodel or None) for a source path and ``--weights``."""
    p = Path(path)
    if not p.is_file():
        raise InvalidModelError("no such file", path=path)
    with open(p, "rb") as f:
        head = f.read(4096)
    if not looks_like_text(head) and options.weights is not None:
        # A binary net definition (NetParameter) with its weights given separately.
        if not os.path.isfile(options.weights):
            raise InvalidModelError("weights file not found", path=options.weights)
        return str(p), options.weights
    if not looks_like_text(head):  # a caffemodel given as the source
        weights = path
        proto = options.extra.get("prototxt")
        if proto is None:
            candidates = [p.with_suffix(".prototxt"), p.parent / "deploy.prototxt"]
            proto = next((str(c) for c in candidates if c.is_file()), None)
        if proto is None:
            raise InvalidModelError(
                "is a caffemodel (weights only); give the net definition as the source and this "
                f"file as weights: modelport convert deploy.prototxt --weights {p.name} ...",
                path=path,
            )
        return str(proto), weights
    weights = options.weights
    if weights is None:
        sibling = p.with_suffix(".caffemodel")
        if sibling.is_file():
            weights = str(sibling)
    elif not os.path.isfile(weights):
        raise InvalidModelError("weights file not found", path=weights)
    return str(p), weights


def load(path: str, options: LoadOptions | None = None) -> ir.Model:
    options = options or LoadOptions()
    prototxt, weights_path = resolve_files(path, options)
    net, unknown = read_net(prototxt)
    weights = WeightsFile(weights_path) if weights_path else None
    if weights is None:
        return build(net, unknown, weights, options, prototxt)
    try:
        model = build(net, unknown, weights, options, prototxt)
    except BaseException:
        weights.close()
        raise
    keep_open(model, [weights])  # lazy tensors read it; the pipeline closes it
    return model


def layer_active(layer, phase: int = 1, level: int = 0, stages: Sequence[str] = ()) -> bool:
    """Caffe's NetState filtering (TEST phase by default): include rules, then exclude rules."""

    def matches(rule) -> bool:
        if rule.HasField("phase") and rule.phase != phase:
            return False
        if rule.HasField("min_level") and level < rule.min_level:
            return False
        if rule.HasField("max_level") and level > rule.max_level:
            return False
        if any(s not in stages for s in rule.stage):
            return False
        return not any(s in stages for s in rule.not_stage)

    if layer.include:
        return any(matches(r) for r in layer.include)
    return not any(matches(r) for r in layer.exclude)


def needed_layers(layers: Sequence, outputs: Sequence[str]) -> list[bool]:
    """Which layers the blobs ``outputs`` depend on (walking back; in-place layers included)."""
    needed = set(outputs)
    keep = [False] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer.type in INPUT_TYPES or any(t in needed for t in layer.top):
            keep[i] = True
            needed.difference_update(t for t in layer.top if t not in layer.bottom)
            needed.update(layer.bottom)
    return keep


def opencv_layer_names(names: Sequence[str]) -> list[str]:
    """Unique layer names the way OpenCV's Caffe reader makes them (``relu``, ``relu_1``...)."""
    counts: dict[str, int] = {}
    out = []
    for name in names:
        n = counts.get(name, 0)
        counts[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


class Context:
    """What a translator sees: the builder, static shapes and the current layer's weights."""

    def __init__(self, builder: GraphBuilder, weights: WeightsFile | None, options: LoadOptions,
                 path: str) -> None:
        self.b = builder
        self.weights = weights
        self.options = options
        self.path = path
        self.random = options.random_weights
        self.seed = int(options.extra.get("seed", 0))
        self.layer: Any = None
        self.name = ""  # unique layer name
        self.record: list[tuple[str, str, list[tuple[tuple[int, ...], Callable]]]] | None = None
        self._blobs = None
        self._recorded: list | None = None

    # -- shapes and nodes ----------------------------------------------------------------------
    @staticmethod
    def shape(value: ir.Value) -> tuple[int, ...]:
        """The static shape of ``value`` (Caffe nets have static shapes throughout)."""
        return tuple(int(d) for d in value.shape.dims)

    def op(self, op_type: str, *inputs, shape: Sequence[int], dtype=ir.DataType.FLOAT,
           **attrs) -> ir.Value:
        """Add an ONNX node for the current layer; ``shape`` (and ``dtype``) of its output
        must be given, since the next layers' translators read it."""
        value = self.b.op(op_type, *inputs, **attrs)
        value.shape = ir.Shape([d if isinstance(d, str) else int(d) for d in shape])
        value.type = ir.TensorType(dtype)
        return value

    def const(self, array, name: str = "const", dtype=None) -> ir.Value:
        """A small constant, named after the current layer."""
        return self.b.const(array, name=f"{self.name}.{name}", dtype=dtype)

    def ints(self, values: Sequence[int], name: str = "shape") -> ir.Value:
        """An int64 vector constant (shapes, axes)."""
        return self.b.const(np.asarray(list(values), dtype=np.int64), name=f"{self.name}.{name}")

    def reduce(self, op_type: str, x: ir.Value, axes: Sequence[int], *, keepdims: int,
               shape: Sequence[int]) -> ir.Value:
        """A Reduce* node, its axes as the opset wants them (GraphBuilder.reduce_axes)."""
        extra, attrs = self.b.reduce_axes(op_type, axes, f"{self.name}.axes")
        return self.op(op_type, x, *extra, keepdims=keepdims, shape=shape, **attrs)

    def fail(self, message: str) -> InvalidModelError:
        """An error naming the layer and the file: ``raise ctx.fail("...")`` (exit 2)."""
        return InvalidModelError(f"layer {self.name!r} ({self.layer.type}): {message}",
                                 path=self.path)

    # -- weights -------------------------------------------------------------------------------
    def begin(self, layer, name: str) -> None:
        self.layer = layer
        self.name = name
        self._blobs = None
        if len(layer.blobs):
            self._blobs = ("inline", list(layer.blobs))
        elif self.weights is not None:
            found = self.weights.find(layer.name)
            if found is not None:
                self._blobs = ("file", found.blobs)
        self._recorded = [] if self.record is not None else None

    def end(self) -> None:
        if self._recorded:
            self.record.append((self.layer.name, self.layer.type, self._recorded))

    def blob_count(self) -> int | None:
        """How many blobs the weights hold for this layer (None: no weights, random mode)."""
        if self._blobs is None:
            return None if self.random else 0
        return len(self._blobs[1])

    def reader(self, index: int, shape: Sequence[int], kind: str = "weight"
               ) -> Callable[[], np.ndarray]:
        """A function returning blob ``index`` of this layer as a float32 array of ``shape``."""
        shape = tuple(int(d) for d in shape)
        count = _elements(shape)  # Python ints: np.prod would wrap around on huge dims
        if count > MAX_ELEMENTS or any(d < 0 for d in shape):
            raise self.fail(f"needs a weight of shape {list(shape)}, which is not a sane size "
                            "(the prototxt's shapes are corrupt?)")
        if self._blobs is None:
            if not self.random:
                if self.weights is None:
                    raise InvalidModelError(
                        "no weights: pass the .caffemodel with --weights (or, for a structure "
                        "check only, --random-weights)", path=self.path)
                raise self.fail("the caffemodel has no weights for this layer")
            read = _random_reader(self.seed, self.layer.name, index, shape, kind)
        else:
            where, blobs = self._blobs
            if index >= len(blobs):
                raise self.fail(f"needs weight blob {index} but the weights have {len(blobs)}")
            blob = blobs[index]
            if where == "inline":
                data = np.asarray(blob.data if len(blob.data) else blob.double_data,
                                  dtype=np.float32)
                if data.size != count:
                    raise self.fail(f"blob {index} has {data.size} values, expected shape "
                                    f"{list(shape)}")
                read = (lambda d: lambda: d.reshape(shape))(data)
            else:
                if blob.count != count:
                    raise self.fail(f"weight blob {index} has shape {list(blob.shape)}, but the "
                                    f"net needs {list(shape)} ({count} values)")
                raw = self.weights.reader(blob)
                read = (lambda r: lambda: np.asarray(r(), dtype=np.float32).reshape(shape))(raw)
        if self._recorded is not None:
            while len(self._recorded) <= index:
                self._recorded.append(None)
            self._recorded[index] = (shape, read)
        return read

    def blob(self, index: int, shape: Sequence[int], kind: str = "weight",
             suffix: str | None = None, transform: Callable[[np.ndarray], np.ndarray] | None = None,
             out_shape: Sequence[int] | None = None) -> ir.Value:
        """Blob ``index`` as a lazy initializer (optionally transformed when read)."""
        read = self.reader(index, shape, kind)
        final_shape = tuple(out_shape) if out_shape is not None else tuple(shape)
        if transform is not None:
            read = (lambda r, t: lambda: t(r()))(read, transform)
        name = f"{self.name}.{suffix or kind}"
        return self.b.initializer(name, lazy_tensor(read, np.float32, final_shape))


def _random_reader(seed: int, layer: str, index: int, shape: tuple[int, ...], kind: str):
    key = zlib.crc32(f"{seed}:{layer}:{index}".encode())

    def read() -> np.ndarray:
        rng = np.random.default_rng(key)
        if kind == "weight":
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            arr = rng.standard_normal(shape) * np.sqrt(1.0 / max(fan_in, 1))
        elif kind in ("var", "gamma"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif kind == "factor":
            arr = rng.uniform(0.5, 2.0, shape)
        elif kind == "slope":
            arr = rng.uniform(0.05, 0.3, shape)
        else:  # bias, mean, ...
            arr = rng.standard_normal(shape) * 0.1
        return arr.astype(np.float32)

    return read


def build(net, unknown: list[UnknownField], weights: WeightsFile | None, options: LoadOptions,
          path: str, record: list | None = None) -> ir.Model:
    b = GraphBuilder(net.name or Path(path).stem)
    ctx = Context(b, weights, options, path)
    ctx.record = record

    active = [(i, layer) for i, layer in enumerate(net.layer) if layer_active(layer)]
    names = opencv_layer_names([layer.name or f"{layer.type}_{i}" for i, layer in active])
    known_blobs = {t for _, layer in active for t in layer.top} | set(net.input)
    if options.outputs and all(o in known_blobs for o in options.outputs):
        # Translate only what the requested blobs depend on (e.g. an SSD net up to its heads,
        # without the PriorBox/DetectionOutput layers after them).
        keep = needed_layers([layer for _, layer in active], options.outputs)
        active = [a for a, k in zip(active, keep) if k]
        names = [n for n, k in zip(names, keep) if k]

    missing = [(layer.type, name) for (_, layer), name in zip(active, names)
               if layer.type not in INPUT_TYPES and layer.type not in caffe_layer]
    if missing:
        hint = "register a translation with `from modelport.importers.caffe import caffe_layer`"
        if any(t in _TRAINING_TYPES or t.endswith("Loss") for t, _ in missing):
            hint = ("data, loss and accuracy layers belong to training nets: convert the deploy "
                    "prototxt; for other layers " + hint)
        caffe_layer.check(missing, path=path, hint=hint)
    _check_unknown_fields(unknown, active, names, path, options)

    blobs: dict[str, ir.Value] = {}
    io_names: dict[str, Any] = {"inputs": {}, "outputs": {}}

    def add_input(name: str, dims: Sequence[int]) -> None:
        given = options.input_shapes.get(name)
        if given is not None:  # Caffe reshapes nets: any fixed size, but the same rank
            if dims and len(given) != len(dims):
                check_input_override(name, dims, given)
            if not all(isinstance(d, int) for d in given):
                raise InputSpecError(f"--input {name}: a Caffe net has fixed dims, got "
                                     f"{','.join(map(str, given))}")
        dims = list(given if given is not None else dims)
        if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
            raise InvalidModelError(
                f"input {name!r} has no fixed shape; give one with --input {name}:1,3,224,224",
                path=path)
        if _elements(dims) > MAX_ELEMENTS:
            raise InvalidModelError(
                f"input {name!r} claims shape {dims} ({_elements(dims)} elements), which is "
                "not a sane size", path=path)
        value = b.input(name, np.float32, dims)
        blobs[name] = value
        io_names["inputs"][value.name] = name

    # Inputs declared at net level: input + input_shape / input_dim.
    for i, name in enumerate(net.input):
        if i < len(net.input_shape):
            dims = list(net.input_shape[i].dim)
        elif len(net.input_dim) >= 4 * (i + 1):
            dims = list(net.input_dim[4 * i: 4 * i + 4])
        else:
            dims = []
        add_input(name, dims)

    produced_order: list[str] = []
    consumed_after: dict[str, int] = {}
    for step, ((_, layer), name) in enumerate(zip(active, names)):
        if layer.type in INPUT_TYPES:
            shapes = list(layer.input_param.shape)
            for t, top in enumerate(layer.top):
                shape = shapes[t] if t < len(shapes) else (shapes[0] if shapes else None)
                add_input(top, list(shape.dim) if shape is not None else [])
                produced_order.append(top)
            continue
        inputs = []
        for bottom in layer.bottom:
            if bottom not in blobs:
                elsewhere = [f"{other.name!r} ({other.type})" for other in net.layer
                             if bottom in other.top and not layer_active(other)]
                why = (f"; only {', '.join(elsewhere)} of another phase does: this looks like a "
                       "training net, convert the deploy prototxt") if elsewhere else ""
                raise InvalidModelError(
                    f"layer {name!r} reads blob {bottom!r}, which no earlier layer or input "
                    f"produces{why}", path=path)
            inputs.append(blobs[bottom])
            if layer.type != "Silence":  # Silence only keeps Caffe quiet about outputs
                consumed_after[bottom] = step
        fn = caffe_layer.get(layer.type)
        ctx.begin(layer, name)
        with b.layer(name):
            outputs = fn(ctx, layer, inputs)
        ctx.end()
        outputs = list(outputs or [])
        if len(outputs) != len(layer.top):
            raise ctx.fail(f"translator returned {len(outputs)} values for {len(layer.top)} tops")
        for top, value in zip(layer.top, outputs):
            blobs[top] = value
            produced_order.append(top)
            consumed_after.pop(top, None)

    # Net outputs: blobs produced and not consumed afterwards (Caffe's "available" blobs). A
    # blob read last by a Silence layer (deploy nets silence their heads to keep Caffe quiet)
    # is an output too, as OpenCV takes it.
    seen = set()
    for top in produced_order:
        if top in seen or top in consumed_after or top in io_names["inputs"].values():
            continue
        seen.add(top)
        value = b.output(blobs[top], top)
        io_names["outputs"][value.name] = top
    if not b.graph.outputs:
        for top in options.outputs or ():
            if top in blobs:  # e.g. an input: --output names what to keep
                io_names["outputs"][b.output(blobs[top], top).name] = top
    if not b.graph.outputs:
        raise InvalidModelError(no_outputs_message(active, blobs), path=path)
    model = b.build(doc=f"converted from Caffe net {net.name!r}")
    model.metadata_props[IO_KEY] = json.dumps(io_names, separators=(",", ":"))
    return model


def _check_unknown_fields(unknown: list[UnknownField], active, names, path: str,
                          options: LoadOptions) -> None:
    if options.extra.get("ignore_unknown_fields"):
        return
    by_index = {i: (layer, name) for (i, layer), name in zip(active, names)}
    problems: dict[str, list[str]] = {}
    for field in unknown:
        top = field.top
        if top is None:  # net-level field
            if field.name in _HARMLESS_FIELDS:
                continue
            problems.setdefault(f"net.{field.name}", []).append(f"line {field.line}")
            continue
        if top[0] not in ("layer", "layers") or top[1] not in by_index:
            continue  # inactive layers (other phases) do not matter
        scopes = {p for p, _ in field.path[1:]}
        if scopes & _HARMLESS_SCOPES or field.name in _HARMLESS_FIELDS:
            continue
        layer, name = by_index[top[1]]
        problems.setdefault(field.dotted(), []).append(name)
    if problems:
        raise UnsupportedOpsError(
            problems, path=path, kind="Caffe field",
            hint="these fields come from a Caffe fork and may change the numbers, and modelport "
                 "does not know them; if they do not change what the net computes, delete them "
                 "from the prototxt and convert again")



def no_outputs_message(active, blobs) -> str:
    """Why a net has no outputs, naming the blobs that could be its outputs and ``--output``."""
    candidates: list[str] = []
    for _, layer in reversed(active):  # what the last layers without tops read
        if not layer.top:
            candidates.extend(b for b in layer.bottom if b in blobs and b not in candidates)
    if not candidates:
        candidates = list(dict.fromkeys(t for _, layer in reversed(active) for t in layer.top))
    return ("the net has no outputs (every blob it computes is consumed); name the blobs to "
            f"keep with --output NAME (candidates: {join_names(candidates) or 'none'})")
