"""This project's conventions on top of onnx_ir (the IR itself is onnx_ir: ``import onnx_ir as ir``).

- :class:`GraphBuilder` builds graphs with unique names and source-layer metadata.
- :func:`set_source`/:func:`get_source` and ``SOURCE_KEY`` map nodes back to source layers.
- :func:`lazy_tensor` wraps a weight that is read from the source file on demand;
  :func:`keep_open`/:func:`close_sources` tie the source files to the model and close them.
- :func:`validate` checks the invariants; passes live in :mod:`modelport.graph_ir.passes`.
"""

from modelport.graph_ir.builder import DEFAULT_OPSET, GraphBuilder
from modelport.graph_ir.source import SOURCE_KEY, get_source, layer_outputs, set_source
from modelport.graph_ir.tensors import close_sources, keep_open, lazy_tensor, tensor
from modelport.graph_ir.validate import GraphInvariantError, validate

__all__ = [
    "DEFAULT_OPSET",
    "GraphBuilder",
    "GraphInvariantError",
    "SOURCE_KEY",
    "close_sources",
    "get_source",
    "keep_open",
    "lazy_tensor",
    "layer_outputs",
    "set_source",
    "tensor",
    "validate",
]
