"""The conversion pipeline: detect → import → optimise → export → verify."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import time
from collections import Counter
from typing import Any

import onnx_ir as ir

from modelport.convert.progress import NULL, Progress
from modelport.errors import InputSpecError, InvalidModelError, MissingDependencyError, first_line
from modelport.graph_ir import close_sources, validate
from modelport.graph_ir.io import select_outputs, set_input_shapes
from modelport.graph_ir.metadata import (
    FIXED_INPUT_SHAPES_META,
    FORMAT_KEY,
    LAYER_MAP_KEY,
    LAYER_SKIPS_KEY,
    NOTES_META,
)
from modelport.graph_ir.source import layer_map
from modelport.importers.registry import (
    FormatSpec,
    LoadOptions,
    check_options,
    detect_format,
    get_format,
)


def resolve_format(source: str, format: str | None,
                   options: LoadOptions | None = None) -> FormatSpec:
    """The source's format; with ``options``, also refuse options that format cannot honour."""
    spec = get_format(format) if format else detect_format(source)
    if options is not None:
        check_options(spec, options)
    return spec


def check_code(source: str, spec: FormatSpec, options: LoadOptions, *, run: bool) -> None:
    """The code check every command applies before it opens a model (convert, verify, inspect,
    batch): raises UnsafeModelError when reading ``source`` would execute code stored in it and
    ``options.trust_code`` is not set. ``run=False``: modelport's own importer reads it;
    ``run=True``: the source framework loads it, for verification. Each format defines what
    that means (``FormatSpec.code_check``: Keras Lambda and foreign modules, pickles,
    TorchScript...)."""
    spec.check_code(source, options, run=run)


def source_files(source: str, options: LoadOptions, model: ir.Model | None = None) -> list[str]:
    """The files a conversion reads (model, weights, external tensors): never an output."""
    files = [source] + ([options.weights] if options.weights else [])
    if os.path.isdir(source):
        with contextlib.suppress(OSError):
            files += [os.path.join(source, n) for n in os.listdir(source)]
    if model is not None:
        for value in model.graph.initializers.values():
            path = getattr(value.const_value, "path", None)
            if isinstance(path, (str, os.PathLike)):
                files.append(os.fspath(path))
    return files


def import_model(
    source: str | os.PathLike,
    *,
    format: str | None = None,
    options: LoadOptions | None = None,
) -> tuple[ir.Model, FormatSpec]:
    source = os.fspath(source)
    options = options or LoadOptions()
    spec = resolve_format(source, format, options)
    missing = spec.missing_for_load()
    if missing:
        module, extra = missing[0]
        raise MissingDependencyError(module, extra, f"reading a {spec.description}", path=source)
    check_code(source, spec, options, run=False)
    loader = spec.loader()
    # Only the project's own errors are problems of the input: parsers turn what their
    # libraries raise on malformed files into InvalidModelError naming the file. Anything else
    # escaping an importer is a bug of modelport and propagates (the CLI reports it as an
    # internal error, exit 3); it is never relabelled as a corrupt file.
    model = loader(source, options)
    try:
        set_input_shapes(model, with_importer_shapes(options, model).input_shapes)
        select_outputs(model, options.outputs)
        layers, skips = layer_map(model)
        model.metadata_props[LAYER_MAP_KEY] = json.dumps(layers, separators=(",", ":"))
        if skips:
            model.metadata_props[LAYER_SKIPS_KEY] = json.dumps(skips, separators=(",", ":"))
        model.metadata_props[FORMAT_KEY] = spec.name
        validate(model)
    except BaseException:
        close_sources(model)
        raise
    return model, spec


def with_importer_shapes(options: LoadOptions, model: ir.Model) -> LoadOptions:
    """``options`` with the input shapes the importer had to fix (a copy; the caller's options
    are never changed)."""
    fixed = model.meta.get(FIXED_INPUT_SHAPES_META)
    if not fixed:
        return options
    return dataclasses.replace(options, input_shapes={**options.input_shapes, **fixed})


@dataclasses.dataclass
class ConvertResult:
    """What :func:`modelport.convert` did.

    ``source``, ``format`` and ``output`` name the files and the detected format; ``bytes`` is
    the size written (model and external data), ``opset`` the ONNX opset written and
    ``external_data`` the external data file's name when the weights went beside the model.
    ``nodes_imported``/``nodes_exported`` count nodes before and after optimisation;
    ``seconds`` times each stage (``import``, ``optimize``, ``export``, ``verify``).
    ``report`` is the :class:`~modelport.convert.verify.VerifyReport` when verification ran
    (else None), ``written`` is False when verification failed and the output was not kept,
    ``optimization`` is the optimiser's report as a dict (level, rounds, node counts, what
    each pass removed, added and rewrote) and ``notes`` are the importer's remarks (layouts
    changed, options applied). ``to_dict()`` is what ``--json`` prints.
    """

    source: str
    format: str
    output: str
    bytes: int
    opset: int
    external_data: str | None
    nodes_imported: int
    nodes_exported: int
    seconds: dict[str, float]
    report: Any = None  # VerifyReport when verification ran
    written: bool = True  # False: verification failed and the output was not written
    # OptimizeReport.to_dict(): level, rounds, node counts, and per pass the nodes it removed
    # or added and the rewrites it made
    optimization: dict[str, Any] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # from the importer

    @property
    def passed(self) -> bool:
        """True unless verification ran and failed."""
        return self.report is None or self.report.passed

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["report"] = self.report.to_dict() if self.report is not None else None
        d["passed"] = self.passed
        return d


def convert(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    format: str | None = None,
    options: LoadOptions | None = None,
    opset: int | None = None,
    level: int = 1,
    force: bool = False,
    external_data: bool | None = None,
    verify: bool = False,
    verify_kwargs: dict[str, Any] | None = None,
    progress: Progress = NULL,
    target: str | None = None,
    input_ranges: dict[str, tuple] | None = None,
    keep_failed: bool = False,
) -> ConvertResult:
    """With ``verify``, the output appears only once verification finished and passed (or
    with ``keep_failed``, also after a failure); an interrupted run leaves nothing."""
    from modelport.exporters.atomic import check_writable
    from modelport.exporters.onnx import check_opset, export, weight_bytes
    from modelport.graph_ir.passes import optimize

    source, output = os.fspath(source), os.fspath(output)
    options = options or LoadOptions()
    check_opset(opset)
    resolve_format(source, format, options)  # refuses options the format cannot honour
    check_writable([output], force, sources=source_files(source, options))
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    progress.stage(f"reading {os.path.basename(source)}")
    model, spec = import_model(source, format=format, options=options)
    options = with_importer_shapes(options, model)
    try:
        notes = list(model.meta.get(NOTES_META) or [])
        seconds["import"] = time.perf_counter() - t
        if verify:  # refuse before any work when the reference would run code
            check_code(source, spec, options, run=True)
        sources = source_files(source, options, model)
        imported = sum(1 for _ in model.graph.all_nodes())

        t = time.perf_counter()
        if opset is not None and opset > model.opset_imports.get("", opset):
            # Up first, so that the passes see (and may write) the operators of the opset the
            # file is written at (opset-23 Attention, RMSNormalization...). Down-conversion
            # waits for the optimised graph, which may have dropped what cannot go down.
            from modelport.exporters.onnx import convert_opset

            convert_opset(model, opset)
        progress.stage(f"optimizing (-O{level})")
        optimization = optimize(model, level, target_opset=opset).to_dict()
        validate(model)
        seconds["optimize"] = time.perf_counter() - t
        trt = None
        if target:
            from modelport.exporters import tensorrt

            trt = tensorrt.parse_target(target)
            opset = tensorrt.prepare(model, trt, opset)

        t = time.perf_counter()
        if trt is not None:  # after the opset conversion the exporter would do: check it now
            from modelport.exporters.onnx import convert_opset

            if opset is not None:
                convert_opset(model, opset)
            findings = tensorrt.refuse_if_errors(model, trt, source, external_data)
        progress.stage(f"writing {os.path.basename(output)}", total_bytes=weight_bytes(model))
        report = None

        def verify_before_commit(temp: str) -> None:
            nonlocal report
            progress.done()
            t_verify = time.perf_counter()
            report = verify_model(source, temp, format=spec.name, options=options,
                                  progress=progress, **(verify_kwargs or {}))
            report.converted = output
            seconds["verify"] = time.perf_counter() - t_verify
            if not report.passed and not keep_failed:
                raise _NotWritten

        try:
            result = export(model, output, opset=opset, force=force, external_data=external_data,
                            on_tensor=lambda _name, n: progress.advance(n), sources=sources,
                            before_commit=verify_before_commit if verify else None)
        except _NotWritten:
            result = None
        seconds["export"] = time.perf_counter() - t - seconds.get("verify", 0.0)
        if trt is not None and result is not None:
            tensorrt.write_sidecar(output, model, trt, input_ranges or {}, findings)
        progress.done()
        return ConvertResult(
            source=source, format=spec.name, output=output,
            bytes=result.bytes if result else 0,
            opset=result.opset if result else model.opset_imports.get("", 0),
            external_data=result.external_data if result else None, nodes_imported=imported,
            nodes_exported=sum(1 for _ in model.graph.all_nodes()), seconds=seconds,
            report=report, written=result is not None, optimization=optimization,
            notes=notes,
        )
    finally:
        # The source files the lazy weights read (HDF5 handles, mapped weight files) are
        # closed when the conversion ends, whichever way it ends.
        close_sources(model)


class _NotWritten(Exception):
    """Verification failed: abandon the temporary output (no file appears)."""


def verify_model(
    source: str | os.PathLike,
    converted: str | os.PathLike,
    *,
    format: str | None = None,
    options: LoadOptions | None = None,
    progress: Progress = NULL,
    device: str = "cpu",
    **kwargs: Any,
):
    from modelport.convert.verify import verify_files

    source, converted = os.fspath(source), os.fspath(converted)
    options = options or LoadOptions()
    spec = resolve_format(source, format, options)
    if not os.path.isfile(converted):
        raise InvalidModelError("no such file", path=converted)
    check_code(source, spec, options, run=True)
    factory = spec.reference_factory()
    if importlib.util.find_spec("onnxruntime") is None:
        raise MissingDependencyError(
            "onnxruntime", "cpu", "verification (it runs the converted model in onnxruntime; "
            "on a GPU machine install modelport[gpu] instead)", path=converted)
    missing = spec.missing_for_reference()
    if factory is None or missing:
        module, extra = missing[0] if missing else (spec.reference_name or "a reference", spec.name)
        raise MissingDependencyError(module, extra, f"verifying a {spec.description}", path=source)
    progress.stage(f"verifying against {spec.reference_name or spec.name}")
    reference = factory(source, options, device=device)
    shapes = {k: [int(d) for d in v if isinstance(d, int)] for k, v in options.input_shapes.items()
              if all(isinstance(d, int) for d in v)}
    try:
        report = verify_files(reference, converted, source_label=source, input_shapes=shapes,
                              device=device, **kwargs)
    except MemoryError as exc:  # e.g. random inputs for a huge --input shape
        text = first_line(exc, "out of memory")
        raise InputSpecError(f"verification ran out of memory ({text}); verify with smaller "
                             "dims (--input) or fewer layers") from exc
    progress.done()
    return report


def summarize(model: ir.Model, spec: FormatSpec, source: str) -> dict[str, Any]:
    """What `modelport inspect` prints: inputs, outputs, operators, parameters."""

    def describe(v: ir.Value) -> dict[str, Any]:
        shape = None if v.shape is None else [
            d if isinstance(d, int) else (str(d) if d is not None else "?") for d in v.shape.dims]
        return {"name": v.name, "dtype": v.dtype.name.lower() if v.dtype else "?", "shape": shape}

    histogram = Counter(
        (f"{n.domain}::{n.op_type}" if n.domain else n.op_type) for n in model.graph.all_nodes()
    )
    params = 0
    nbytes = 0
    for value in model.graph.initializers.values():
        t = value.const_value
        if t is not None:
            params += t.size
            nbytes += t.nbytes
    return {
        "source": source,
        "format": spec.name,
        "opset": model.opset_imports.get(""),
        "inputs": [describe(v) for v in model.graph.inputs
                   if v.name not in model.graph.initializers],
        "outputs": [describe(v) for v in model.graph.outputs],
        "operators": dict(sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))),
        "nodes": sum(histogram.values()),
        "parameters": int(params),
        "parameter_bytes": int(nbytes),
    }
