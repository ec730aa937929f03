"""Read an ONNX file into onnx_ir, checking it first so corrupt files fail with a clear error."""

from __future__ import annotations

import os

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from modelport.errors import InvalidModelError, first_line
from modelport.graph_ir.metadata import FULL_CHECK_KEY, SOURCE_KEY
from modelport.importers.registry import LoadOptions


def load(path: str, options: LoadOptions | None = None) -> ir.Model:
    try:
        proto = onnx.load(path, load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidModelError(
            f"cannot parse as ONNX (truncated or corrupt?): {first_line(exc)}", path=path
        ) from exc
    except OSError as exc:
        raise InvalidModelError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    if not proto.HasField("graph") or not proto.opset_import:
        raise InvalidModelError("is not a complete ONNX model (no graph or opset)", path=path)
    # With external data the checker needs the file's location to resolve it.
    checked = path if _check_external_data(proto, path) else proto
    try:
        onnx.checker.check_model(checked)
    except Exception as exc:
        raise InvalidModelError(f"is not a valid ONNX model: {first_line(exc)}", path=path) from exc
    try:
        onnx.checker.check_model(checked, full_check=True)
        full_check = True
    except Exception:
        # Valid, but onnx's own shape inference rejects it (this happens to a few models
        # onnx itself ships). The converted file is then held to the same, basic check.
        full_check = False
    model = ir.serde.deserialize_model(proto)
    _check_names(model, path)
    model.meta[FULL_CHECK_KEY] = full_check
    ir.external_data.set_base_dir(model.graph, os.path.dirname(os.path.abspath(path)))
    for i, node in enumerate(model.graph):
        if SOURCE_KEY not in node.metadata_props:
            node.metadata_props[SOURCE_KEY] = node.name or f"{node.op_type}_{i}"
    return model


def _check_names(model: ir.Model, path: str) -> None:
    """ONNX strings are UTF-8; protobuf hands invalid ones over as bytes. Refuse them here
    rather than fail later on a name that is not text."""
    def bad(name: object) -> bool:
        return name is not None and not isinstance(name, str)

    for node in model.graph.all_nodes():
        if bad(node.name) or bad(node.op_type) or bad(node.domain):
            raise InvalidModelError(f"a node's name or type is not valid UTF-8 "
                                    f"({node.name!r}, {node.op_type!r})", path=path)
        for value in (*node.inputs, *node.outputs):
            if value is not None and bad(value.name):
                raise InvalidModelError(f"value name {value.name!r} is not valid UTF-8",
                                        path=path)
    for value in (*model.graph.inputs, *model.graph.outputs,
                  *model.graph.initializers.values()):
        if bad(value.name):
            raise InvalidModelError(f"value name {value.name!r} is not valid UTF-8", path=path)


def _check_external_data(proto: onnx.ModelProto, path: str) -> bool:
    """Whether the model has external data; raises if a data file it names is missing."""
    base = os.path.dirname(os.path.abspath(path))
    found = False
    for tensor in proto.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        found = True
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        if location is None or not os.path.isfile(os.path.join(base, location)):
            raise InvalidModelError(
                f"weight {tensor.name!r} refers to external data {location!r}, which is missing",
                path=path,
            )
    return found

