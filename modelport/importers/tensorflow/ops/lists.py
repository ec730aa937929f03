"""TensorLists (TF 2's lists of tensors, how Keras RNNs feed their loops and collect their
outputs): TensorListFromTensor, TensorListReserve, TensorListGetItem, TensorListSetItem,
TensorListStack, TensorListLength, TensorListElementShape.

A list is not an ONNX value: it is a :class:`TList` while translating. A list made from a tensor
is that tensor (GetItem is a Gather on axis 0). A list written inside a loop body, one element
per iteration at the iteration's index, becomes a scan output of the ONNX Loop (see
:mod:`..control`), i.e. the stacked tensor again; inside the body the list is a
:class:`BodyList` that records the one write.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from modelport.importers.tensorflow import dtypes
from modelport.importers.tensorflow.ops._util import INT64_MAX, int64
from modelport.importers.tensorflow.table import tf_op


@dataclasses.dataclass
class TList:
    tensor: ir.Value | None  # the elements stacked on axis 0, when they are known
    length: ir.Value | None = None  # the reserved length (TensorListReserve), if no tensor
    element_shape: list[int] | None = None  # -1 for unknown dims, None for an unknown rank
    dtype: int = dtypes.FLOAT


@dataclasses.dataclass
class BodyList:
    """A loop-carried list inside a While body: the outer list and the element written to it."""

    slot: int
    outer: TList
    index: ir.Value | None = None
    item: ir.Value | None = None


def _element_shape(ctx, value) -> list[int] | None:
    arr = ctx.const_array(value)
    if arr is None:
        return None
    arr = np.asarray(arr).reshape(-1) if np.ndim(arr) else np.asarray(arr)
    if arr.ndim == 0:
        return None  # -1: unknown rank
    return [int(v) for v in arr]


def _list(ctx, value, what: str = "list") -> TList | BodyList:
    if not isinstance(value, (TList, BodyList)):
        raise ctx.fail(f"its {what} input is not a TensorList made by a supported op")
    return value


@tf_op("TensorListFromTensor")
def from_tensor(ctx, node, inputs):
    tensor, element_shape = inputs
    return TList(tensor, element_shape=_element_shape(ctx, element_shape),
                 dtype=node.type("element_dtype"))


@tf_op("TensorListReserve")
def reserve(ctx, node, inputs):
    element_shape, num_elements = inputs
    return TList(None, length=num_elements, element_shape=_element_shape(ctx, element_shape),
                 dtype=node.type("element_dtype"))


@tf_op("TensorListGetItem")
def get_item(ctx, node, inputs):
    lst, index = _list(ctx, inputs[0]), inputs[1]
    if isinstance(lst, BodyList):
        raise ctx.fail("reads a TensorList that the loop also writes (not supported: only "
                       "lists read whole-loop-long or written once per iteration are)")
    tensor = _stacked(ctx, lst)
    source = index.producer()
    while source is not None and source.op_type == "Identity":
        source = source.inputs[0].producer()
    if source is not None and source.op_type == "Cast" and \
            ctx.dtype(source.inputs[0]) == ir.DataType.INT64:
        index = source.inputs[0]  # the loop's own int64 iteration number, not a round trip
    return ctx.op("Gather", tensor, int64(ctx, index), axis=0)


@tf_op("TensorListSetItem")
def set_item(ctx, node, inputs):
    lst, index, item = _list(ctx, inputs[0]), inputs[1], inputs[2]
    if not isinstance(lst, BodyList):
        raise ctx.fail("writes a TensorList outside a loop body (not supported)")
    if lst.item is not None:
        raise ctx.fail("writes the same TensorList twice in one iteration (not supported)")
    return BodyList(lst.slot, lst.outer, index, item)


def _stacked(ctx, lst: TList) -> ir.Value:
    if lst.tensor is not None:
        return lst.tensor
    shape = lst.element_shape
    length = ctx.const_array(lst.length) if lst.length is not None else None
    if shape is not None and all(d >= 0 for d in shape) and length is not None:
        # A reserved list never written: TensorFlow stacks it as zeros.
        return ctx.const(np.zeros([int(length), *shape], dtypes.to_numpy(lst.dtype)), "zeros")
    raise ctx.fail("reads a TensorList whose elements are never written and whose element "
                   "shape is not static")


@tf_op("TensorListStack")
def stack(ctx, node, inputs):
    lst = _list(ctx, inputs[0])
    if isinstance(lst, BodyList):
        raise ctx.fail("stacks a TensorList inside the loop that writes it (not supported)")
    return _stacked(ctx, lst)


@tf_op("TensorListLength")
def length(ctx, node, inputs):
    lst = _list(ctx, inputs[0])
    if isinstance(lst, BodyList):
        lst = lst.outer
    if lst.tensor is None:
        return ctx.cast(lst.length, ir.DataType.INT32)
    n = ctx.op("Shape", lst.tensor, start=0, end=1)
    return ctx.cast(ctx.op("Reshape", n, ctx.ints([], "scalar")), ir.DataType.INT32)


@tf_op("TensorListElementShape")
def element_shape(ctx, node, inputs):
    lst = _list(ctx, inputs[0])
    if isinstance(lst, BodyList):
        lst = lst.outer
    out = dtypes.to_ir(node.type("shape_type", dtypes.INT32))
    if lst.tensor is None:
        if lst.element_shape is None:
            return ctx.const(np.asarray(-1, out.numpy()), "shape")
        return ctx.const(np.asarray(lst.element_shape, out.numpy()), "shape")
    return ctx.cast(ctx.op("Shape", lst.tensor, start=1), out)


def last_element_list(ctx, scan: ir.Value) -> ir.Value:
    """The last row of a scan output, kept as a 1-element list (axis 0 of length 1)."""
    return ctx.op("Slice", scan, ctx.ints([-1], "start"), ctx.ints([INT64_MAX], "end"),
                  ctx.ints([0], "axes"))


# ---- TensorArrays (TF 1): the flow tensor carries the list, the handle only names it -----------

class TAHandle:
    """A TensorArrayV3 handle: the elements travel with its flow tensor (a :class:`TList`)."""


def _is_arange(ctx, indices: ir.Value) -> bool:
    arr = ctx.const_array(indices)
    if arr is not None:
        arr = np.asarray(arr).reshape(-1)
        return bool((arr == np.arange(arr.size)).all())
    node = indices.producer()
    if node is not None and node.op_type == "Cast":
        return _is_arange(ctx, node.inputs[0])
    if node is None or node.op_type != "Range":
        return False
    start, delta = (ctx.const_array(node.inputs[i]) for i in (0, 2))
    return start is not None and delta is not None and int(start) == 0 and int(delta) == 1


@tf_op("TensorArrayV3")
def tensor_array(ctx, node, inputs):
    from modelport.importers.tensorflow.tensors import shape_of

    shape = shape_of(node.attr("element_shape").shape) if node.has("element_shape") else None
    if node.b("dynamic_size"):
        raise ctx.fail("is a TensorArray of dynamic size (not supported)")
    return [TAHandle(), TList(None, length=inputs[0], element_shape=shape,
                              dtype=node.type("dtype"))]


@tf_op("TensorArrayScatterV3")
def tensor_array_scatter(ctx, node, inputs):
    _, indices, value, _ = inputs
    if not _is_arange(ctx, indices):
        raise ctx.fail("scatters at indices other than 0, 1, 2, ... (not supported)")
    return TList(value, dtype=node.type("T"))


@tf_op("TensorArrayReadV3")
def tensor_array_read(ctx, node, inputs):
    _, index, flow = inputs
    return get_item(ctx, node, [flow, index])


@tf_op("TensorArrayWriteV3")
def tensor_array_write(ctx, node, inputs):
    _, index, value, flow = inputs
    return set_item(ctx, node, [flow, index, value])


@tf_op("TensorArrayGatherV3")
def tensor_array_gather(ctx, node, inputs):
    _, indices, flow = inputs
    lst = _list(ctx, flow)
    if isinstance(lst, BodyList):
        raise ctx.fail("gathers from a TensorArray inside the loop that writes it (not "
                       "supported)")
    tensor = _stacked(ctx, lst)
    if _is_arange(ctx, indices):
        return tensor
    return ctx.op("Gather", tensor, int64(ctx, indices), axis=0)


@tf_op("TensorArraySizeV3")
def tensor_array_size(ctx, node, inputs):
    return length(ctx, node, [inputs[1]])
