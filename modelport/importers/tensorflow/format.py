"""TensorFlow format declarations: frozen GraphDefs (binary and text) and SavedModels,
recognised by their protobuf wire shape or text, not only by suffix."""

from __future__ import annotations

import os
import re

from modelport.importers.registry import FormatSpec
from modelport.protowire import decode_varint

_OP_NAME = re.compile(rb"^[A-Za-z0-9_>]+$")
_TEXT_NODE = re.compile(rb"^\s*node\s*\{\s*name\s*:\s*\"[^\"]*\"\s*op\s*:", re.M)
_TEXT_SAVED = re.compile(rb"^\s*(saved_model_schema_version\s*:|meta_graphs\s*\{)", re.M)


def _field(buf: bytes, pos: int) -> tuple[int, int, int]:
    key, pos = decode_varint(buf, pos)
    return key >> 3, key & 7, pos


def looks_like_graphdef(head: bytes) -> bool:
    """A binary GraphDef starts with its first NodeDef: name (field 1) then op (field 2)."""
    try:
        field, wire, pos = _field(head, 0)
        if (field, wire) != (1, 2):
            return False
        _, pos = decode_varint(head, pos)  # node length
        field, wire, pos = _field(head, pos)
        if (field, wire) != (1, 2):
            return False
        n, pos = decode_varint(head, pos)
        name = head[pos: pos + n]
        if len(name) != n or not n or any(c < 32 or c > 126 for c in name):
            return False
        pos += n
        field, wire, pos = _field(head, pos)
        if (field, wire) != (2, 2):
            return False
        n, pos = decode_varint(head, pos)
        op = head[pos: pos + n]
        return len(op) == n and bool(_OP_NAME.match(op))
    except ValueError:
        return False


def looks_like_saved_model(head: bytes) -> bool:
    """A binary SavedModel: schema version (field 1, small varint), then a MetaGraphDef (field 2)
    whose first field is its MetaInfoDef (1) or GraphDef (2)."""
    try:
        pos = 0
        field, wire, pos = _field(head, pos)
        if (field, wire) == (1, 0):
            version, pos = decode_varint(head, pos)
            if version > 10:
                return False
            field, wire, pos = _field(head, pos)
        if (field, wire) != (2, 2):
            return False
        _, pos = decode_varint(head, pos)
        field, wire, pos = _field(head, pos)
        if (field, wire) not in ((1, 2), (2, 2)):
            return False
        # MetaInfoDef starts with meta_graph_version (1, string) or stripped_op_list (2)
        _, start = decode_varint(head, pos)
        if start >= len(head):
            return True
        inner, inner_wire, _ = _field(head, start)
        return inner_wire == 2 and inner in (1, 2, 4)
    except ValueError:
        return False


def detect(path: str, head: bytes) -> int:
    lower = path.lower()
    if os.path.isdir(path):
        for name in ("saved_model.pb", "saved_model.pbtxt"):
            if os.path.isfile(os.path.join(path, name)):
                return 95
        return 0
    if lower.endswith(".onnx") or not head:
        return 0
    if b"\x00" not in head[:1024] and head[:1].isascii():
        if _TEXT_SAVED.search(head):
            return 90
        if _TEXT_NODE.search(head):
            return 85 if lower.endswith((".pbtxt", ".pb", ".txt", ".prototxt")) else 70
    if looks_like_saved_model(head):
        return 95 if lower.endswith(".pb") else 75
    if looks_like_graphdef(head):
        return 88 if lower.endswith((".pb", ".graphdef")) else 70
    return 0


FORMAT = FormatSpec(
    name="tensorflow",
    description="TensorFlow frozen GraphDef (.pb/.pbtxt) or SavedModel",
    extensions=(".pb", ".pbtxt"),
    detection="GraphDef wire shape (first NodeDef's name and op) or text `node {`; SavedModel: "
              "directory with saved_model.pb, or its schema-version + MetaGraphDef wire shape",
    detect=detect,
    load="modelport.importers.tensorflow.load:load",
    reference="modelport.convert.runners.tensorflow:reference",
    reference_name="TensorFlow (the GraphDef / SavedModel signature run as saved)",
    reference_modules=(("tensorflow", "tensorflow"),),
    code_check="modelport.importers.tensorflow.safety:check",
    options=frozenset({"nchw_inputs", "input_dtypes", "trust_code"}),
)
