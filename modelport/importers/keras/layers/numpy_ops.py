"""Keras 3 structural operations recorded in functional graphs: ``ops.reshape``,
``ops.transpose``, ``ops.mean``/``sum``/``max``/``min``/``prod``, ``ops.expand_dims``,
``ops.squeeze``, ``ops.cast``, ``ops.matmul``, ``ops.stack``, ``ops.clip``, ``ops.where`` and
indexing (``x[:, 0]``, ``x[..., 1:3]``, ``x[:, None]``).

Some of these share a class name with a layer (``Reshape``); an operation's config has no
``trainable`` entry, and its translator is registered as ``op:<ClassName>`` (see
``load._lookup``). Everything here works in the Keras (logical) axis order.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.table import KT, Context, Layer, ints, keras_layer, reduce


def _axes(axis, rank: int) -> list[int]:
    if axis is None:
        return list(range(rank))
    return sorted({int(a) % rank for a in (axis if isinstance(axis, list) else [axis])})


@keras_layer("op:Reshape")
def reshape_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    shape = [int(d) for d in layer.config["newshape"]]
    if 0 in shape:
        raise UnsupportedFeatureError("ops.reshape to a shape with a zero dimension is not supported")
    out = [d if d != -1 else None for d in shape]
    known = [d for d in t.shape if isinstance(d, int)]
    if -1 in shape and len(known) == t.rank:
        rest = int(np.prod([d for d in shape if d != -1]))
        out[shape.index(-1)] = int(np.prod(known)) // rest
    return KT(ctx.op("Reshape", ctx.logical(t), ints(ctx, shape, "shape")), tuple(out), t.dtype)


@keras_layer("Transpose")
def transpose_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    axes = layer.config.get("axes")
    perm = list(range(t.rank))[::-1] if axes is None else [int(a) % t.rank for a in axes]
    return KT(ctx.op("Transpose", ctx.logical(t), perm=perm), tuple(t.shape[p] for p in perm),
              t.dtype)


_REDUCE = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin",
           "Prod": "ReduceProd", "Amax": "ReduceMax", "Amin": "ReduceMin"}


def _reduction(op_type: str):
    def fn(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
        t = inputs[0]
        c = layer.config
        axes = _axes(c.get("axis"), t.rank)
        keep = bool(c.get("keepdims", False))
        y = reduce(ctx, op_type, ctx.logical(t), axes, keep)
        shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape)
                      if keep or i not in axes)
        return KT(y, shape, t.dtype)

    return fn


for _name, _op in _REDUCE.items():
    keras_layer(_name)(_reduction(_op))


@keras_layer("ExpandDims")
def expand_dims_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    axis = layer.config["axis"]
    rank = t.rank + (len(axis) if isinstance(axis, list) else 1)
    axes = _axes(axis, rank)
    shape = list(t.shape)
    for a in axes:
        shape.insert(a, 1)
    return KT(ctx.op("Unsqueeze", ctx.logical(t), ints(ctx, axes, "axes")), tuple(shape),
              t.dtype)


@keras_layer("Squeeze")
def squeeze_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    axis = layer.config.get("axis")
    axes = [i for i, d in enumerate(t.shape) if d == 1] if axis is None else \
        _axes(axis, t.rank)
    if any(t.shape[a] not in (1, None) for a in axes):
        raise UnsupportedFeatureError(f"ops.squeeze of axes {axes} whose size is not 1")
    shape = tuple(d for i, d in enumerate(t.shape) if i not in axes)
    return KT(ctx.op("Squeeze", ctx.logical(t), ints(ctx, axes, "axes")), shape, t.dtype)


@keras_layer("Cast")
def cast_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    dtype = np.dtype(str(layer.config["dtype"]).replace("bfloat16", "float32"))
    if str(layer.config["dtype"]) == "bfloat16":
        raise UnsupportedFeatureError("ops.cast to bfloat16 is not supported")
    to = ir.DataType.from_numpy(dtype).value
    return t.like(ctx.op("Cast", t.value, to=to), dtype=dtype)


@keras_layer("Matmul")
def matmul_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    from modelport.importers.keras.layers.merge import _broadcast_shape

    a, b = inputs[0], inputs[1]
    if a.rank < 2 or b.rank < 2:
        raise UnsupportedFeatureError("ops.matmul of a vector is not supported")
    batch = _broadcast_shape([a.shape[:-2], b.shape[:-2]])
    shape = (*batch, a.shape[-2], b.shape[-1])
    return KT(ctx.op("MatMul", ctx.logical(a), ctx.logical(b)), shape, a.dtype)


@keras_layer("Stack")
def stack_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    ts = inputs[0] if isinstance(inputs[0], list) else inputs
    ts = [t for t in ts if isinstance(t, KT)]
    rank = ts[0].rank + 1
    axis = int(layer.config.get("axis", 0)) % rank
    parts = [ctx.op("Unsqueeze", ctx.logical(t), ints(ctx, [axis], "axes")) for t in ts]
    shape = list(ts[0].shape)
    shape.insert(axis, len(ts))
    return KT(ctx.op("Concat", *parts, axis=axis), tuple(shape), ts[0].dtype)


@keras_layer("Clip")
def clip_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    c = layer.config
    lo = ctx.const(np.array(c["x_min"], t.dtype), "min")
    hi = ctx.const(np.array(c["x_max"], t.dtype), "max")
    return t.like(ctx.op("Clip", t.value, lo, hi))


@keras_layer("Where")
def where_op(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    from modelport.importers.keras.layers.merge import _broadcast_shape

    if len(inputs) != 3:
        raise UnsupportedFeatureError("ops.where with one argument (the indices) is not supported")
    cond, x, y = inputs
    c = cond.value if cond.dtype == bool else ctx.op("Cast", cond.value, to=9)
    shape = _broadcast_shape([cond.shape, x.shape, y.shape])
    perm, values = ctx.common_layout([cond.like(c, dtype=bool), x, y])
    return KT(ctx.op("Where", *values), shape, x.dtype, perm)


# -- indexing ---------------------------------------------------------------------------------

def _keras2_spec(key):
    """A Keras 3 serialised index in the form tf.keras saves one (see tf_functions.index_tensor)."""
    items = key if isinstance(key, list) else [key]
    out = []
    for it in items:
        if isinstance(it, dict) and it.get("class_name") == "__slice__":
            out.append(dict(it["config"]))
        else:
            out.append(it)  # ints, None (a new axis), the ellipsis dict; others are refused
    return out


@keras_layer("GetItem")
def get_item(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    from modelport.importers.keras.layers.tf_functions import index_tensor

    key = getattr(ctx, "args", None)
    if key is None or len(key) < 2:
        raise UnsupportedFeatureError("GetItem without an index")
    return index_tensor(ctx, inputs[0], _keras2_spec(key[1]))


@keras_layer("ConvertToTensor")
def convert_to_tensor(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """ops.convert_to_tensor (Keras 3 records the masks attention layers hand on through it):
    the tensor itself, cast when a dtype is given."""
    t = inputs[0]
    dtype = layer.config.get("dtype")
    if not dtype or np.dtype(dtype) == t.dtype:
        return t.like(t.value)
    to = ir.DataType.from_numpy(np.dtype(dtype)).value
    return t.like(ctx.op("Cast", t.value, to=to), dtype=np.dtype(dtype))
