"""ONNX format declaration (detected by the ModelProto wire shape)."""

from __future__ import annotations

from modelport.importers.registry import FormatSpec
from modelport.protowire import decode_varint

# ModelProto field numbers (onnx.proto): 1 ir_version (varint), 2 producer_name, 3
# producer_version, 4 domain, 5 model_version (varint), 6 doc_string, 7 graph, 8 opset_import,
# 14 metadata_props, 20 training_info, 25 functions, 26 configuration.
_VARINT_FIELDS = {1, 5}
_LEN_FIELDS = {2, 3, 4, 6, 7, 8, 14, 20, 25, 26}


def looks_like_model_proto(head: bytes) -> bool:
    """True if ``head`` starts like a serialized ModelProto (ir_version first, as writers do)."""
    if len(head) < 4:
        return False
    pos = 0
    fields = 0
    try:
        while pos < len(head) and fields < 6:
            key, pos = decode_varint(head, pos)
            field, wire = key >> 3, key & 7
            if fields == 0 and field != 1:
                return False
            if wire == 0 and field in _VARINT_FIELDS:
                value, pos = decode_varint(head, pos)
                if field == 1 and not 1 <= value <= 20:
                    return False
            elif wire == 2 and field in _LEN_FIELDS:
                length, pos = decode_varint(head, pos)
                if field == 7:
                    return True
                pos += length
            else:
                return False
            fields += 1
    except ValueError:
        return False
    return fields >= 2 or pos >= len(head)


def detect(path: str, head: bytes) -> int:
    if looks_like_model_proto(head):
        return 90 if path.lower().endswith(".onnx") else 60
    return 0


FORMAT = FormatSpec(
    name="onnx",
    description="ONNX model",
    extensions=(".onnx",),
    detection="protobuf ModelProto: ir_version field first, then graph/opset fields",
    detect=detect,
    load="modelport.importers.onnx.load:load",
    reference="modelport.convert.runners.onnxruntime:reference_for_onnx",
    reference_name="onnxruntime on the original model",
    reference_modules=(("onnxruntime", "cpu"),),
    options=frozenset(),  # --input can set symbolic dims; dtypes and weights are the file's
)
