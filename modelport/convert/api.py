"""The public Python API (re-exported by ``modelport``)."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from modelport.importers.registry import LoadOptions

if TYPE_CHECKING:
    import onnx_ir as ir


def _options(options: LoadOptions | None, kwargs: dict[str, Any]) -> LoadOptions:
    # A copy: neither this nor the pipeline changes the caller's object.
    options = dataclasses.replace(options) if options is not None else LoadOptions()
    for key, value in kwargs.items():
        if not hasattr(options, key):
            raise TypeError(f"unknown option {key!r}")
        setattr(options, key, value)
    return options


def load(source: str | os.PathLike, *, format: str | None = None,
         options: LoadOptions | None = None, **option_kwargs: Any) -> ir.Model:
    """Import a model file into the IR (an ``onnx_ir.Model``), unoptimised.

    ``option_kwargs`` set fields of ``LoadOptions`` (input_shapes, outputs, weights, ...).
    """
    from modelport.convert.pipeline import import_model

    model, _ = import_model(source, format=format, options=_options(options, option_kwargs))
    return model


def save(model: ir.Model, path: str | os.PathLike, *, opset: int | None = None,
         level: int = 0, force: bool = False, external_data: bool | None = None):
    """Optimise (``level``, default none) and write ``model`` as ONNX; returns an ExportResult."""
    from modelport.exporters.onnx import export
    from modelport.graph_ir.passes import optimize

    if level:
        optimize(model, level, target_opset=opset)
    return export(model, path, opset=opset, force=force, external_data=external_data)


def convert(source: str | os.PathLike, output: str | os.PathLike, *, format: str | None = None,
            opset: int | None = None, level: int = 1, force: bool = False,
            verify: bool = False, rtol: float | None = None, atol: float | None = None,
            inputs: Any = None, seed: int = 0, per_layer: bool = False, device: str = "cpu",
            external_data: bool | None = None, options: LoadOptions | None = None,
            keep_failed: bool = False, **option_kwargs: Any):
    """Convert ``source`` to ONNX at ``output``; with ``verify=True`` also compare the two.

    With ``verify=True`` the output appears only if verification passes (``keep_failed``:
    also when it fails; ``result.written`` says which).

    Returns a ConvertResult; ``result.report`` is the VerifyReport when verification ran.
    """
    from modelport.convert.pipeline import convert as run
    from modelport.convert.verify import DEFAULT_ATOL, DEFAULT_RTOL

    verify_kwargs = dict(rtol=DEFAULT_RTOL if rtol is None else rtol,
                         atol=DEFAULT_ATOL if atol is None else atol,
                         inputs=inputs, seed=seed, per_layer=per_layer, device=device)
    return run(source, output, format=format, options=_options(options, option_kwargs),
               opset=opset, level=level, force=force, external_data=external_data,
               verify=verify, verify_kwargs=verify_kwargs, keep_failed=keep_failed)


def verify(source: str | os.PathLike, converted: str | os.PathLike, *, format: str | None = None,
           rtol: float | None = None, atol: float | None = None, inputs: Any = None,
           seed: int = 0, per_layer: bool = False, device: str = "cpu",
           options: LoadOptions | None = None, **option_kwargs: Any):
    """Compare ``converted`` (ONNX, in onnxruntime) with ``source`` run by its reference.

    Returns a VerifyReport (``report.passed``, ``report.outputs``, ``report.table()``).
    """
    from modelport.convert.pipeline import verify_model
    from modelport.convert.verify import DEFAULT_ATOL, DEFAULT_RTOL

    return verify_model(source, converted, format=format,
                        options=_options(options, option_kwargs),
                        rtol=DEFAULT_RTOL if rtol is None else rtol,
                        atol=DEFAULT_ATOL if atol is None else atol,
                        inputs=inputs, seed=seed, per_layer=per_layer, device=device)
