"""ONNX exporter: IR model → a checked, shape-annotated, deterministic ``.onnx`` file.

What it guarantees: the file passes ``onnx.checker`` with ``full_check``; value shapes are
inferred and stored; converting the same model twice gives the same bytes; weights beyond
``EXTERNAL_DATA_THRESHOLD`` (2 GB, protobuf's limit) go to an external data file beside the
model; outputs appear atomically (see :mod:`.atomic`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import ShapeInferencePass

from modelport.errors import ExportError
from modelport.exporters._protowire import write_model
from modelport.exporters.atomic import atomic_outputs

EXTERNAL_DATA_THRESHOLD = 2_000_000_000  # protobuf cannot serialize messages over 2 GiB


@dataclasses.dataclass
class ExportResult:
    path: str
    bytes: int
    external_data: str | None
    opset: int


def weight_bytes(model: ir.Model) -> int:
    total = 0
    for value in model.graph.initializers.values():
        if value.const_value is not None:
            total += value.const_value.nbytes
    return total


def convert_opset(model: ir.Model, opset: int) -> None:
    current = model.opset_imports.get("", None)
    if current == opset:
        return
    from onnxscript.version_converter import convert_version

    try:
        convert_version(model, opset, fallback=True)
    except Exception as exc:
        raise ExportError(f"cannot convert the graph from opset {current} to {opset}: {exc}") from exc
    if model.opset_imports.get("") != opset:
        raise ExportError(
            f"cannot convert the graph from opset {current} to {opset}: "
            "the ONNX version converter does not support it"
        )


def _fix_ir_version(model: ir.Model) -> None:
    opsets = [onnx.helper.make_opsetid(d, v) for d, v in model.opset_imports.items()]
    try:
        needed = onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    except Exception:
        needed = onnx.IR_VERSION
    model.ir_version = max(model.ir_version or 0, needed, 7)


def infer_shapes(model: ir.Model) -> None:
    ShapeInferencePass(check_type=True, strict_mode=False, data_prop=True)(model)


def export(
    model: ir.Model,
    path: str | os.PathLike,
    *,
    opset: int | None = None,
    force: bool = False,
    external_data: bool | None = None,
    external_threshold: int = EXTERNAL_DATA_THRESHOLD,
    on_tensor: Callable[[str, int], None] | None = None,
) -> ExportResult:
    """Write ``model`` to ``path``.

    ``external_data``: None decides by size (over ``external_threshold`` bytes of weights),
    True/False forces it. The external file is ``<name>.onnx.data`` beside the model.
    """
    path = os.fspath(path)
    if opset is not None:
        convert_opset(model, opset)
    _fix_ir_version(model)
    infer_shapes(model)
    use_external = external_data if external_data is not None else (
        weight_bytes(model) > external_threshold
    )
    data_name = os.path.basename(path) + ".data"
    finals = [os.path.join(os.path.dirname(os.path.abspath(path)), data_name)] if use_external else []
    finals.append(os.path.abspath(path))
    with atomic_outputs(finals, force=force) as temps:
        tmp_model = temps[os.path.abspath(path)]
        try:
            if use_external:
                ir.save(model, tmp_model, external_data=data_name, size_threshold_bytes=1024,
                        callback=(lambda t, info: on_tensor(t.name or "", t.nbytes))
                        if on_tensor else None)
            else:
                with open(tmp_model, "wb") as f:
                    write_model(model, f, on_tensor=on_tensor)
        except OSError as exc:
            raise ExportError(f"cannot write: {exc.strerror or exc}", path=path) from exc
        try:
            onnx.checker.check_model(tmp_model, full_check=True)
        except Exception as exc:  # onnx raises several exception types here
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"the converted graph fails the ONNX checker: {first}", path=path) from exc
        size = os.path.getsize(tmp_model)
    return ExportResult(
        path=path,
        bytes=size,
        external_data=finals[0] if use_external else None,
        opset=model.opset_imports.get("", 0),
    )
