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
