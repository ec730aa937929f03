"""ONNX exporter: IR model → a checked, shape-annotated, deterministic ``.onnx`` file.

What it guarantees: the model passes ``onnx.checker`` with ``full_check`` (run on the
written model's skeleton, see below); value shapes are
inferred and stored; converting the same model twice gives the same bytes; weights beyond
``EXTERNAL_DATA_THRESHOLD`` (2 GB, protobuf's limit) go to an external data file beside the
model; outputs appear atomically (see :mod:`.atomic`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import _c_api_utils

from modelport.errors import ExportError, InputSpecError, first_line
from modelport.exporters._protowire import write_model
from modelport.exporters.atomic import atomic_outputs
from modelport.graph_ir.metadata import FULL_CHECK_KEY

EXTERNAL_DATA_THRESHOLD = 2_000_000_000  # protobuf cannot serialize messages over 2 GiB
# In-memory flag (model.meta) set by the ONNX importer when the *source* already fails the
# full check (onnx's strict shape inference); the export is then checked the basic way.


@dataclasses.dataclass
class ExportResult:
    """What :func:`modelport.save` wrote: the model's ``path``, the ``bytes`` written (external
    data included), the ``external_data`` file name (None when the weights are inside the
    model), the ``opset`` and ``full_check`` (False when the source, an ONNX file, did not
    pass ``onnx.checker``'s full check itself, so the written model was checked without it)."""

    path: str
    bytes: int
    external_data: str | None
    opset: int
    full_check: bool = True


def weight_bytes(model: ir.Model) -> int:
    total = 0
    for value in model.graph.initializers.values():
        if value.const_value is not None:
            total += value.const_value.nbytes
    return total


# The lowest default-domain opset written: the oldest onnxruntime runs and the ONNX version
# converter handles; the highest is the installed onnx package's newest.
MIN_OPSET = 7


def max_opset() -> int:
    return int(onnx.defs.onnx_opset_version())


def check_opset(opset: int | None) -> None:
    """Refuse an ``--opset`` outside what this exporter writes (before any work is done)."""
    if opset is None:
        return
    if not MIN_OPSET <= opset <= max_opset():
        raise InputSpecError(
            f"--opset {opset}: modelport writes ONNX opsets {MIN_OPSET} to {max_opset()} "
            f"(onnx {onnx.__version__})")


def lowest_opset(model: ir.Model) -> int:
    """The lowest opset that needs no op of ``model`` rewritten: the newest ``since_version``
    of the schemas its default-domain ops use. Below it the ONNX version converter needs
    down-conversion adapters, which it has for a few ops only (named when it fails)."""
    current = model.opset_imports.get("", MIN_OPSET)
    lowest = MIN_OPSET
    for node in model.graph.all_nodes():
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type, current, "")
        except Exception:  # not an ONNX op: the checker reports it
            continue
        lowest = max(lowest, schema.since_version)
    return lowest


def convert_opset(model: ir.Model, opset: int) -> None:
    check_opset(opset)
    current = model.opset_imports.get("", None)
    if current == opset:
        return
    from onnxscript.version_converter import convert_version

    works = f"opsets {lowest_opset(model)} to {max_opset()} work for this graph"
    # The converter logs its failures with tracebacks; keep them off the user's terminal and
    # report the reason in one line.
    log = logging.getLogger("onnxscript.version_converter")
    records: list[logging.LogRecord] = []
    handler = _Collect(records)
    saved = (log.propagate, log.level)
    log.addHandler(handler)
    log.propagate = False
    try:
        convert_version(model, opset, fallback=True)
    except Exception as exc:
        raise InputSpecError(f"--opset {opset}: cannot convert the graph from opset {current}: "
                             f"{_first(str(exc))}; {works}") from exc
    finally:
        log.removeHandler(handler)
        log.propagate, _ = saved
    if model.opset_imports.get("") != opset:
        reasons = [_first(str(r.exc_info[1])) for r in records if r.exc_info and r.exc_info[1]]
        why = f" ({reasons[-1]})" if reasons else ""
        raise InputSpecError(f"--opset {opset}: the ONNX version converter cannot convert this "
                             f"graph from opset {current}{why}; {works}")


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _first(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "unknown reason"
    # onnx's C++ assertions: "<file>:<line>: <function>: Assertion `...` failed: <reason>"
    return line.rsplit("failed: ", 1)[-1]


def _fix_ir_version(model: ir.Model) -> None:
    opsets = [onnx.helper.make_opsetid(d, v) for d, v in model.opset_imports.items()]
    try:
        needed = onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    except Exception:
        needed = onnx.IR_VERSION
    model.ir_version = max(model.ir_version or 0, needed, 7)


def _has_type_and_shape(value: ir.Value) -> bool:
    # What the loop below could fill in: a missing type, or a tensor's missing shape.
    return value.type is not None and (
        value.shape is not None or not isinstance(value.type, ir.TensorType))


def infer_shapes(model: ir.Model) -> None:
    """Store inferred types and shapes on values that lack them.

    Uses onnx's shape inference (through onnx_ir's helper that leaves large weights out of the
    call). Unlike onnx_ir's ShapeInferencePass it never overwrites a type or shape the graph
    already declares, and never turns a sequence or optional type into a tensor type.
    """

    def run(proto: onnx.ModelProto) -> onnx.ModelProto:
        return onnx.shape_inference.infer_shapes(
            proto, check_type=False, strict_mode=False, data_prop=True
        )

    if all(_has_type_and_shape(v) for g in model.graphs()
           for v in (*g.inputs, *g.initializers.values(), *(o for n in g for o in n.outputs))):
        return  # nothing for it to fill in (the folder typed every value): skip the call
    try:
        inferred = ir.serde.deserialize_model(_c_api_utils.call_onnx_api(run, model))
    except Exception:  # inference is best effort; the checker has the last word
        return
    for graph, inferred_graph in zip(model.graphs(), inferred.graphs()):
        known = ir.convenience.create_value_mapping(inferred_graph)
        for name, value in ir.convenience.create_value_mapping(graph).items():
            other = known.get(name)
            if other is None or other.type is None:
                continue
            if value.type is None:
                value.type = other.type
            if value.shape is None and other.shape is not None and (
                isinstance(value.type, ir.TensorType) and value.type == other.type
            ):
                value.shape = other.shape


def export(
    model: ir.Model,
    path: str | os.PathLike,
    *,
    opset: int | None = None,
    force: bool = False,
    external_data: bool | None = None,
    external_threshold: int = EXTERNAL_DATA_THRESHOLD,
    on_tensor: Callable[[str, int], None] | None = None,
    sources: Sequence[str] = (),
    before_commit: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write ``model`` to ``path``.

    ``external_data``: None decides by size (over ``external_threshold`` bytes of weights),
    True/False forces it. The external file is ``<name>.onnx.data`` beside the model.
    ``sources``: files the model was read from, never overwritten (see :mod:`.atomic`).
    ``before_commit(temporary model path)`` runs after the file is written and checked, before
    it is moved into place; if it raises, nothing appears (verification runs there).
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
    with atomic_outputs(finals, force=force, sources=sources) as temps:
        tmp_model = temps[os.path.abspath(path)]
        try:
            if use_external:
                ir.save(model, tmp_model, external_data=data_name, size_threshold_bytes=1024,
                        callback=(lambda t, info: on_tensor(t.name or "", t.nbytes))
                        if on_tensor else None)
                skeleton = None
            else:
                with open(tmp_model, "wb") as f:
                    skeleton = write_model(model, f, on_tensor=on_tensor)
        except OSError as exc:
            raise ExportError(f"cannot write: {exc.strerror or exc}", path=path) from exc
        full_check = model.meta.get(FULL_CHECK_KEY, True)
        # Reading the file back would hold a second copy of every weight: the checker sees
        # the skeleton instead (large weights as typed inputs; their byte counts were
        # verified as they were written). Files with external data are checked in place.
        try:
            onnx.checker.check_model(
                skeleton if skeleton is not None else tmp_model, full_check=full_check
            )
        except Exception as exc:  # onnx raises several exception types here
            first = first_line(exc)
            raise ExportError(f"the converted graph fails the ONNX checker: {first}", path=path) from exc
        size = os.path.getsize(tmp_model)
        if before_commit is not None:
            before_commit(tmp_model)
    return ExportResult(
        path=path,
        bytes=size,
        external_data=finals[0] if use_external else None,
        opset=model.opset_imports.get("", 0),
        full_check=full_check,
    )
