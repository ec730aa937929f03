"""Caffe format declaration: a prototxt recognised by its text, a caffemodel by its wire shape."""

from __future__ import annotations

import re

from modelport.importers.registry import FormatSpec
from modelport.protowire import decode_varint

_TEXT_MARKERS = re.compile(
    rb"^\s*(layers?\s*\{|input\s*:|input_dim\s*:|input_shape\s*\{|name\s*:\s*\")", re.M
)


def looks_like_caffemodel(head: bytes) -> bool:
    """A binary NetParameter: fields 1 name, 3 input, 4 input_dim, 8 input_shape, 2/100 layers.

    Writers emit the name and inputs first and the (large) layers after; a layer field whose
    payload starts with a string name or a blob is required before the head runs out, unless
    the head ends inside it.
    """
    pos = 0
    try:
        while pos < len(head):
            key, pos = decode_varint(head, pos)
            field, wire = key >> 3, key & 7
            if field in (1, 3) and wire == 2:
                length, pos = decode_varint(head, pos)
                pos += length
            elif field == 4 and wire == 0:
                _, pos = decode_varint(head, pos)
            elif field in (4, 8, 6) and wire == 2:
                length, pos = decode_varint(head, pos)
                pos += length
            elif field in (5, 7) and wire == 0:
                _, pos = decode_varint(head, pos)
            elif field in (2, 100) and wire == 2:
                _, start = decode_varint(head, pos)
                if start >= len(head):
                    return True
                inner_key, _ = decode_varint(head, start)
                inner_field, inner_wire = inner_key >> 3, inner_key & 7
                # current layers start with name (1) / type (2) / bottom (3) / top (4);
                # V1 layers with bottom (2) / top (3) / name (4) / V0 layer (1).
                return inner_wire == 2 and inner_field in (1, 2, 3, 4)
            else:
                return False
    except ValueError:
        return False
    return False


_TF_TEXT = re.compile(rb"^\s*(node|versions|library)\s*\{", re.M)


def detect(path: str, head: bytes) -> int:
    lower = path.lower()
    if head and b"\x00" not in head[:1024] and _TEXT_MARKERS.search(head):
        if _TF_TEXT.search(head):
            return 0  # a TensorFlow text GraphDef (its nodes also have `input:` lines)
        # Net-level entries: `layer {`/`layers {` or an `input:` at the start of a line.
        if re.search(rb"^\s*layers?\s*\{|^input\s*:", head, re.M):
            return 80 if lower.endswith((".prototxt", ".pbtxt", ".txt")) else 60
        return 40 if lower.endswith(".prototxt") else 0
    if looks_like_caffemodel(head):
        return 85 if lower.endswith(".caffemodel") else 30
    return 0


FORMAT = FormatSpec(
    name="caffe",
    description="Caffe model (deploy.prototxt + .caffemodel)",
    extensions=(".prototxt", ".caffemodel"),
    detection="prototxt text with layer/layers/input entries; caffemodel: NetParameter wire shape",
    detect=detect,
    load="modelport.importers.caffe.load:load",
    reference="modelport.convert.runners.caffe_opencv:reference",
    reference_name="OpenCV DNN 4.x (readNetFromCaffe)",
    reference_modules=(("cv2", "caffe"),),
    options=frozenset({"weights", "random_weights"}),
)
