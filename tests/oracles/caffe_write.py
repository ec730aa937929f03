"""Writing caffemodels: seeded random weights for a net definition, streamed to disk in Caffe's
wire format one blob at a time. For tests, benchmarks and the demo; not part of the product
package (a user converts an untrained net with --random-weights)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from modelport.importers.caffe.load import build
from modelport.importers.caffe.proto import read_net
from modelport.importers.registry import LoadOptions
from modelport.protowire import encode_field, encode_key, encode_varint

_len_field = encode_field


def _blob_header(shape: tuple[int, ...], nbytes: int) -> bytes:
    dims = b"".join(encode_varint(int(d)) for d in shape)
    shape_msg = _len_field(1, dims) if dims else b""
    return _len_field(7, shape_msg) + encode_key(5, 2) + encode_varint(nbytes)


def write_caffemodel(
    path: str | os.PathLike,
    layers: Iterable[tuple[str, str, list[np.ndarray | Callable[[], np.ndarray]]]],
    name: str = "",
) -> int:
    """Write (layer name, type, blobs) as a binary NetParameter; returns the bytes written."""
    total = 0
    with open(path, "wb") as f:
        # Always a name first: an empty file would not be recognisable as a caffemodel.
        total += f.write(_len_field(1, (name or "net").encode()))
        for layer_name, layer_type, blobs in layers:
            arrays = [np.ascontiguousarray(b() if callable(b) else b, dtype="<f4") for b in blobs]
            head = _len_field(1, layer_name.encode()) + _len_field(2, layer_type.encode())
            blob_parts = []
            size = len(head)
            for a in arrays:
                bh = _blob_header(a.shape, a.nbytes)
                blob_len = len(bh) + a.nbytes
                outer = encode_key(7, 2) + encode_varint(blob_len)
                blob_parts.append((outer + bh, a))
                size += len(outer) + blob_len
            total += f.write(encode_key(100, 2) + encode_varint(size) + head)
            for header, a in blob_parts:
                total += f.write(header)
                total += f.write(memoryview(a).cast("B"))
    return total


def random_caffemodel(
    prototxt: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    input_shapes: dict[str, list[int]] | None = None,
    outputs: list[str] | None = None,
) -> int:
    """Write a caffemodel with seeded random weights of the right shapes for ``prototxt``.

    BatchNorm variances and scale factors are positive, weights are scaled by their fan-in so
    deep nets keep sensible activations. With ``outputs``, only the layers those blobs
    depend on get weights. Returns the number of bytes written.
    """
    prototxt = os.fspath(prototxt)
    net, _ = read_net(prototxt)
    options = LoadOptions(input_shapes=dict(input_shapes or {}), random_weights=True,
                          outputs=outputs, extra={"seed": seed, "ignore_unknown_fields": True})
    record: list = []
    build(net, [], None, options, prototxt, record=record)
    layers = [(name, type_, [r for _, r in blobs]) for name, type_, blobs in record]
    return write_caffemodel(out, layers, name=net.name)
