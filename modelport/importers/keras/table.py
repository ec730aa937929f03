"""The Keras layer table, the tensor handle translators pass around, and their helpers.

A translator is ``fn(ctx, layer, inputs) -> KT | list[KT]``: ``layer`` is a :class:`Layer`
(class name, name, config, weights), ``inputs`` are :class:`KT` handles for the tensors the
call received, and ``ctx`` is the :class:`Context` (graph builder plus layout helpers).

Layout. Keras tensors are channels-last; ONNX convolutions are channels-first. A :class:`KT`
records the *logical* (Keras) shape and the *physical* axis order of its ONNX value
(``perm``: physical axis i holds logical axis ``perm[i]``; ``None`` = same as Keras).
Convolutions, pooling and normalisation ask for channels-first and leave their output that way;
element-wise layers keep whatever they get; layout-sensitive layers (Reshape, Flatten, ...) ask
for the logical order. So a CNN has one Transpose where the image enters, and none at all with
``--nchw-inputs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from modelport.graph_ir.builder import GraphBuilder
from modelport.graph_ir.layout import invert
from modelport.graph_ir.tensors import lazy_tensor
from modelport.importers.optable import OpTable

keras_layer = OpTable("Keras layer")


@dataclasses.dataclass
class KT:
    """A Keras tensor in the graph under construction.

    ``value`` is the ``ir.Value``; ``shape`` the logical (Keras) shape, None for unknown dims;
    ``dtype`` a numpy dtype; ``perm`` the physical axis order of ``value`` (None: the logical
    order; channels-first values carry ``(0, rank-1, 1, ...)``). Translators that only need
    Keras order call ``ctx.logical(t)``; element-wise ones keep the layout with :meth:`like`.
    """

    value: ir.Value
    shape: tuple  # logical (Keras) shape; None for unknown dims (the batch)
    dtype: np.dtype = np.dtype(np.float32)
    perm: tuple[int, ...] | None = None  # physical axis order, None = logical order
    # Flatten of a channels-first tensor: logical feature j sits at physical position fperm[j].
    fperm: np.ndarray | None = None
    const: np.ndarray | None = None  # a constant operand (scalars in op calls)
    # Keras mask (padding) of the time axis: a bool (N, T) value in logical order, None, or
    # masks.UNKNOWN when Keras would carry a mask that modelport cannot follow.
    mask: Any = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    def like(self, value: ir.Value, shape: Sequence | None = None, dtype: Any = None) -> KT:
        """A new tensor in the same layout as this one (element-wise results)."""
        return KT(value, tuple(self.shape if shape is None else shape),
                  np.dtype(dtype) if dtype is not None else self.dtype, self.perm, self.fperm)

    def phys_shape(self) -> tuple:
        return self.shape if self.perm is None else tuple(self.shape[p] for p in self.perm)

    def phys_axis(self, axis: int) -> int:
        axis = axis % self.rank
        return axis if self.perm is None else list(self.perm).index(axis)


def _attr(name: str, v: Any) -> Any:
    """Typed attributes built directly (onnx_ir's type inference is slow on hot paths)."""
    if isinstance(v, (bool, int, np.integer)):
        return ir.AttrInt64(name, int(v))
    if isinstance(v, (float, np.floating)):
        return ir.AttrFloat32(name, float(v))
    if isinstance(v, str):
        return ir.AttrString(name, v)
    if isinstance(v, (list, tuple)) and v:
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
            return ir.AttrInt64s(name, [int(x) for x in v])
        if all(isinstance(x, (float, int, np.floating)) for x in v):
            return ir.AttrFloat32s(name, [float(x) for x in v])
        if all(isinstance(x, str) for x in v):
            return ir.AttrStrings(name, list(v))
    if isinstance(v, np.ndarray):
        return ir.AttrTensor(name, ir.Tensor(v))
    return v


def cf_perm(rank: int) -> tuple[int, ...]:
    """Physical order of a channels-first value whose logical layout is channels-last."""
    return (0, rank - 1, *range(1, rank - 1))


def onnx_dims(shape: Sequence) -> list:
    return [d if isinstance(d, int) and d >= 0 else None for d in shape]


@dataclasses.dataclass
class Layer:
    """A Keras layer as a translator sees it: ``class_name``, ``name`` (nested models:
    ``"outer/inner"``), ``config`` (the layer's Keras config dict), ``weights()`` (its weight
    datasets in Keras order, read lazily), the registering ``module`` and ``keras_version``."""

    class_name: str
    name: str  # the full source name (nested models: "outer/inner")
    config: dict
    weights: Callable[[], list]  # -> list of array-likes (h5py datasets), in Keras order
    module: str | None = None
    keras_version: str = "3"

    @property
    def keras2(self) -> bool:
        return self.keras_version.startswith(("1", "2"))


class Context:
    """What a Keras translator gets as ``ctx``: the graph builder (``ctx.b``, a
    :class:`~modelport.graph_ir.GraphBuilder`), the load options and the file's path, with
    helpers for weights, constants, nodes and layouts."""

    def __init__(self, builder: GraphBuilder, options: Any, path: str) -> None:
        self.b = builder
        self.options = options
        self.path = path
        self._cache: dict[tuple[int, Any], ir.Value] = {}
        self.layouts: dict[str, str] = {}  # value name -> layout note for verification
        self.flat_notes: dict[int, str] = {}  # id(fperm) -> note
        self.bn_fold: dict[str, Layer] = {}  # conv layer name -> the BatchNorm folded into it
        self.bn_folded: set[str] = set()  # BatchNorm layers folded away

    def record_layout(self, t: KT) -> None:
        """Remember how ``t``'s value differs from the Keras tensor (per-layer verification)."""
        if t.fperm is not None and id(t.fperm) in self.flat_notes:
            self.layouts[t.value.name] = self.flat_notes[id(t.fperm)]
        elif t.perm is not None and t.fperm is None:
            self.layouts[t.value.name] = ",".join(map(str, t.perm))

    # -- weights ------------------------------------------------------------------------------
    def weight(self, layer: Layer, index: int, name: str,
               transform: Callable[[np.ndarray], np.ndarray] | None = None,
               shape: Sequence[int] | None = None, dtype: Any = None) -> ir.Value:
        """An initializer reading weight ``index`` of ``layer`` lazily (``transform`` applied
        inside the read, never as graph nodes). ``shape`` is the shape after ``transform``."""
        ds = layer.weights()[index]
        src_shape = tuple(ds.shape)
        out_dtype = np.dtype(dtype or (ds.dtype if ds.dtype.kind == "f" else np.float32))
        if shape is None:
            shape = src_shape if transform is None else transform(
                np.zeros(src_shape, dtype=np.float32)).shape

        def read() -> np.ndarray:
            arr = np.asarray(ds[()])
            return transform(arr) if transform is not None else arr

        return self.b.initializer(f"{layer.name}/{name}", lazy_tensor(read, out_dtype, shape))

    def weight_array(self, layer: Layer, index: int) -> np.ndarray:
        """Read a (small) weight now, e.g. to fold it into another constant."""
        return np.asarray(layer.weights()[index][()])

    def const(self, array: Any, name: str = "const", dtype: Any = None) -> ir.Value:
        """A small constant (float64 arrays become float32 unless ``dtype`` says otherwise)."""
        return self.b.const(array, name, dtype)

    def op(self, op_type: str, *inputs: ir.Value | None, **kw: Any) -> Any:
        """Add an ONNX node (default domain, the model's opset) stamped with the current
        layer; keyword arguments are its attributes (None ones left out), trailing None
        inputs are dropped. Returns the output value (a tuple with ``outputs=n``)."""
        inputs_l = list(inputs)
        while inputs_l and inputs_l[-1] is None:  # optional trailing inputs left out
            inputs_l.pop()
        attrs = {k: _attr(k, v) if k not in ("outputs", "domain", "name") else v
                 for k, v in kw.items() if v is not None}
        return self.b.op(op_type, *inputs_l, **attrs)

    # -- layout -------------------------------------------------------------------------------
    def to_perm(self, t: KT, perm: tuple[int, ...] | None) -> ir.Value:
        """``t``'s value with physical axis order ``perm`` (None = logical order)."""
        t = self.unflatten(t)
        src = t.perm or tuple(range(t.rank))
        dst = perm or tuple(range(t.rank))
        if tuple(src) == tuple(dst):
            return t.value
        key = (id(t.value), tuple(dst))
        if key in self._cache:
            return self._cache[key]
        inv = invert(list(src))
        q = [inv[a] for a in dst]
        phys = [t.shape[a] for a in src]
        moved = [i for i in q if not (isinstance(phys[i], int) and phys[i] == 1)]
        unknown = [d for d in (t.shape[a] for a in dst) if not isinstance(d, int)]
        if moved == sorted(moved) and len(unknown) <= 1:
            # Only size-1 axes move: the bytes are already in order, a Reshape suffices.
            target = [d if isinstance(d, int) else -1 for d in (t.shape[a] for a in dst)]
            out = self.op("Reshape", t.value, self.const(np.array(target, np.int64), "shape"))
        else:
            out = self.op("Transpose", t.value, perm=q)
        self._cache[key] = out
        return out

    def logical(self, t: KT) -> ir.Value:
        """``t``'s value in Keras axis order (a Transpose added when needed, then reused)."""
        return self.to_perm(t, None)

    def as_logical(self, t: KT) -> KT:
        """``t`` as a KT in Keras axis order."""
        return KT(self.logical(t), t.shape, t.dtype)

    def channels_first(self, t: KT) -> ir.Value:
        """``t``'s value in channels-first order (what ONNX Conv and pooling take)."""
        return self.to_perm(t, cf_perm(t.rank))

    def unflatten(self, t: KT) -> KT:
        """Resolve a pending feature permutation (Flatten of a channels-first tensor)."""
        if t.fperm is None:
            return t
        key = (id(t.value), "fperm")
        if key not in self._cache:
            idx = self.const(t.fperm.astype(np.int64), "flatten_order")
            self._cache[key] = self.op("Gather", t.value, idx, axis=1)
        return KT(self._cache[key], t.shape, t.dtype)

    def common_layout(self, ts: Sequence[KT]) -> tuple[tuple[int, ...] | None, list[ir.Value]]:
        """Bring tensors to one physical layout for an element-wise op.

        The layout of the first full-rank tensor with a non-logical order wins; scalars and
        all-ones constants broadcast in any layout; anything else of lower rank forces the
        logical order for all.
        """
        ts = [self.unflatten(t) for t in ts]
        rank = max(t.rank for t in ts)

        def trivial(t: KT) -> bool:
            return t.rank == 0 or all(d == 1 for d in t.shape)

        perm = None
        if all(t.rank == rank or trivial(t) for t in ts):
            for t in ts:
                if t.rank == rank and t.perm is not None:
                    perm = t.perm
                    break
        out = []
        for t in ts:
            if t.rank == rank:
                out.append(self.to_perm(t, perm))
            elif t.rank == 0 or (perm is None and t.perm is None):
                out.append(t.value)
            elif trivial(t):
                out.append(t.value if t.rank <= 1 else self.op(
                    "Reshape", t.value, self.const(np.array([1] * t.rank, np.int64), "shape")))
            else:
                out.append(self.logical(t))
        return perm, out

def reduce(ctx: Context, op_type: str, x: ir.Value, axes: Sequence[int], keepdims: bool
           ) -> ir.Value:
    """Reduce over ``axes`` with the axes as an attribute or input, as opset 17 wants."""
    extra, attrs = ctx.b.reduce_axes(op_type, axes)
    return ctx.op(op_type, x, *extra, keepdims=int(keepdims), **attrs)


def scalar(ctx: Context, v: float, dtype: Any = np.float32) -> ir.Value:
    return ctx.const(np.array(v, dtype), "c")


def ints(ctx: Context, values: Sequence[int], name: str = "ints") -> ir.Value:
    return ctx.const(np.array(list(values), np.int64), name)


def as_tuple(v: Any, n: int) -> tuple:
    if isinstance(v, (list, tuple)):
        return tuple(v) if len(v) == n else tuple(v) * n if len(v) == 1 else tuple(v)
    return (v,) * n
