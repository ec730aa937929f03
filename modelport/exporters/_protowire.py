"""Streaming ONNX writer: writes a ModelProto whose weights never sit in memory all at once.

``onnx.save`` first builds the whole ModelProto (a copy of every weight) and then its serialized
bytes (a second copy). Here the model is serialized without its initializers, and each
initializer is appended to the graph message straight from the tensor's bytes, one at a time.
This relies on two facts of the protobuf wire format: fields may appear in any order, and the
elements of a repeated field are simply concatenated. ModelProto.graph is field 7,
GraphProto.initializer field 5, TensorProto.raw_data field 9 (onnx.proto).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

import numpy as np
import onnx
import onnx_ir as ir

from modelport.protowire import encode_key, encode_varint

SKELETON_TENSOR_BYTES = 4096
MODEL_GRAPH = 7
GRAPH_INITIALIZER = 5
TENSOR_RAW_DATA = 9


varint = encode_varint
tag = encode_key


def _streamable(tensor: ir.TensorProtocol) -> bool:
    """Tensors whose raw bytes have a size known without reading them.

    External tensors of the *source* (an ONNX file with external data) are streamed too: the
    output must be self-contained rather than point at the source's data file.
    """
    if isinstance(tensor, ir.StringTensor):
        return False
    if tensor.dtype == ir.DataType.STRING or tensor.dtype.bitwidth < 8:
        return False
    return True


def _in_memory(tensor: ir.TensorProtocol) -> ir.TensorProtocol:
    """``tensor`` with its bytes in the message: a tensor in the *source's* external data file
    would otherwise be written as a reference to that file, which neither the checker (it
    resolves locations against the working folder) nor a self-contained output can follow."""
    if isinstance(tensor, ir.ExternalTensor):
        return ir.Tensor(tensor.numpy(), name=tensor.name, doc_string=tensor.doc_string)
    return tensor


def _raw_view(tensor: ir.TensorProtocol) -> memoryview | bytes:
    """The tensor's little-endian bytes, without the copy ``tobytes()`` makes where possible."""
    if sys.byteorder == "little" and tensor.dtype.bitwidth >= 8:
        try:
            array = tensor.numpy()
        except Exception:
            array = None
        if isinstance(array, np.ndarray) and array.dtype.itemsize * 8 == tensor.dtype.bitwidth:
            array = np.ascontiguousarray(array)
            if array.dtype.byteorder not in (">",):
                return memoryview(array.reshape(-1).view(np.uint8))
    return tensor.tobytes()


# Below this many bytes of streamed weights, a second thread is not worth starting.
_AHEAD_MIN_BYTES = 1 << 22


def _views_ahead(tensors: Sequence[ir.TensorProtocol]) -> Iterator[memoryview | bytes]:
    """:func:`_raw_view` of each tensor, in order; with two or more CPUs the next tensor is
    read (a lazy weight: file read, re-layout, folding) in a second thread while the caller
    writes the current one. At most two tensors are in memory at a time. Only that one
    thread reads tensors while the caller writes, so the reads never run concurrently with
    each other (importers' readers share file handles)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if len(tensors) < 2 or (cpus or 1) < 2 or \
            sum(t.nbytes for t in tensors) < _AHEAD_MIN_BYTES:
        for tensor in tensors:
            yield _raw_view(tensor)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="modelport-read") as pool:
        pending = pool.submit(_raw_view, tensors[0])
        for following in tensors[1:]:
            data = pending.result()
            pending = pool.submit(_raw_view, following)
            yield data
            del data
        yield pending.result()


def write_model(
    model: ir.Model,
    f: BinaryIO,
    on_tensor: Callable[[str, int], None] | None = None,
) -> onnx.ModelProto:
    """Serialize ``model`` into ``f``.

    Deterministic: the same model always gives the same bytes. ``on_tensor(name, nbytes)`` is
    called after each initializer is written (progress reporting). Returns a skeleton of the
    model for checking it without holding the weights in memory: the ModelProto with small
    initializers in full and large ones declared as typed graph inputs.
    """
    graph = model.graph
    initializers = list(graph.initializers.values())
    for value in initializers:
        graph.initializers.pop(value.name)
    try:
        proto = ir.serde.serialize_model(model)
    finally:
        for value in initializers:
            graph.register_initializer(value)
    graph_proto = proto.graph
    proto.ClearField("graph")
    head = proto.SerializeToString(deterministic=True)
    graph_head = graph_proto.SerializeToString(deterministic=True)

    # Per initializer: (serialized header or the whole message, streamed raw size or None)
    parts: list[tuple[ir.TensorProtocol, bytes, int | None]] = []
    graph_len = len(graph_head)
    for value in initializers:
        tensor = value.const_value
        if tensor is None:
            continue
        tensor.name = value.name
        if _streamable(tensor):
            header = onnx.TensorProto(
                name=value.name, data_type=tensor.dtype.value, dims=list(tensor.shape.numpy())
            )
            if tensor.doc_string:
                header.doc_string = tensor.doc_string
            for k, v in sorted(tensor.metadata_props.items()):
                header.metadata_props.add(key=k, value=v)
            header_bytes = header.SerializeToString(deterministic=True)
            nbytes = tensor.nbytes
            msg_len = len(header_bytes) + len(tag(TENSOR_RAW_DATA)) + len(varint(nbytes)) + nbytes
        else:
            tensor_proto = ir.serde.serialize_tensor(_in_memory(tensor))
            header_bytes = tensor_proto.SerializeToString(deterministic=True)
            nbytes = None
            msg_len = len(header_bytes)
        parts.append((tensor, header_bytes, nbytes))
        graph_len += len(tag(GRAPH_INITIALIZER)) + len(varint(msg_len)) + msg_len

    def put(data: bytes | memoryview) -> None:
        f.write(data)

    put(head)
    put(tag(MODEL_GRAPH) + varint(graph_len))
    put(graph_head)
    views = _views_ahead([tensor for tensor, _, nbytes in parts if nbytes is not None])
    try:
        for tensor, header_bytes, nbytes in parts:
            if nbytes is None:
                put(tag(GRAPH_INITIALIZER) + varint(len(header_bytes)) + header_bytes)
                continue
            msg_len = len(header_bytes) + len(tag(TENSOR_RAW_DATA)) + len(varint(nbytes)) + \
                nbytes
            put(tag(GRAPH_INITIALIZER) + varint(msg_len) + header_bytes)
            put(tag(TENSOR_RAW_DATA) + varint(nbytes))
            data = next(views)
            if len(data) != nbytes:
                raise ValueError(
                    f"tensor {tensor.name!r} produced {len(data)} bytes, expected {nbytes}"
                )
            put(data)
            del data
            if on_tensor:
                on_tensor(tensor.name or "", nbytes)
    finally:
        views.close()  # waits for a read still under way in the second thread
    # The skeleton for checking: small initializers (shape vectors, scalars: what shape
    # inference propagates) in full, large ones declared as typed graph inputs.
    # Initializers that are also graph inputs (IR < 4 models) are declared already.
    proto.graph.CopyFrom(graph_proto)
    declared = {i.name for i in graph_proto.input}
    for value in initializers:
        tensor = value.const_value
        if tensor is None:
            continue
        if tensor.nbytes <= SKELETON_TENSOR_BYTES:
            proto.graph.initializer.append(ir.serde.serialize_tensor(_in_memory(tensor)))
        elif value.name not in declared:
            proto.graph.input.append(ir.serde.serialize_value(value))
    return proto
