"""Importers: one package per source format, each producing an onnx_ir model.

See :mod:`modelport.importers.registry` for how formats are declared and detected, and
:mod:`modelport.importers.optable` for the per-op translation tables importers use.
"""

from modelport.importers.registry import (
    FormatSpec,
    LoadOptions,
    detect_format,
    formats,
    get_format,
)

__all__ = ["FormatSpec", "LoadOptions", "detect_format", "formats", "get_format"]
