"""The metadata keys modelport writes, defined once.

Importers, passes, the exporter and verification all read and write these; none of them
spells a key itself. Keys in ``metadata_props`` are saved in the ONNX file (their strings are
part of the file format modelport writes and must not change); keys in ``meta`` live only in
memory, between the stages of one conversion.
"""

from __future__ import annotations

# -- node.metadata_props (saved) ------------------------------------------------------------
# The source layer a node came from.
SOURCE_KEY = "modelport.source"

# -- value.metadata_props (saved) -----------------------------------------------------------
# On a graph input/output whose layout differs from the source model's: the permutation, as
# "0,2,3,1", that takes the ONNX value to the source layout.
SOURCE_PERM_KEY = "modelport.source_perm"

# -- model.metadata_props (saved) -----------------------------------------------------------
# {layer: [value names]} the values each source layer returns (per-layer verification).
LAYER_MAP_KEY = "modelport.layer_outputs"
# {layer: reason} layers without a value of their own (e.g. folded into the one before).
LAYER_SKIPS_KEY = "modelport.layer_skips"
# {value name: layout} the source layout of values that per-layer verification compares.
VALUE_LAYOUTS_KEY = "modelport.value_layouts"
# The registry name of the source format ("keras", "caffe", ...).
FORMAT_KEY = "modelport.source_format"
# Which route the PyTorch importer took (torch.export or the TorchScript exporter).
PYTORCH_ROUTE_KEY = "modelport.pytorch_route"
KERAS_VERSION_KEY = "modelport.keras_version"
KERAS_BACKEND_KEY = "modelport.keras_backend"


def io_key(fmt: str) -> str:
    """The key of a format's input/output name map ({ONNX name: source name}, as JSON), which
    that format's reference runner reads to feed and fetch the source model."""
    return f"modelport.{fmt}.io"


# -- model.meta (in memory only) ------------------------------------------------------------
# {layer: [ir.Value]} what a layer returns, where the importer states it (overrides the
# last-node rule of graph_ir.source.layer_outputs).
LAYER_VALUES_META = "modelport.layer_values"
# {layer: reason}, as LAYER_SKIPS_KEY, while the values are still objects.
LAYER_SKIPS_META = "modelport.layer_skips"
# [str] what the importer wants the user told (the route it took, what it fixed); the
# pipeline hands them on as ConvertResult.notes, and the CLI prints them unless --quiet/--json.
NOTES_META = "modelport.notes"
# {input: [dims]} input shapes the importer had to fix (e.g. a TorchScript route that traced
# the example sizes): the pipeline uses them, on a copy of the caller's options.
FIXED_INPUT_SHAPES_META = "modelport.fixed_input_shapes"
# [objects with close()] the source files the model's lazy tensors read (HDF5 handles, mapped
# weight files): kept open while the model lives, closed by graph_ir.tensors.close_sources
# when a conversion ends.
OPEN_FILES_META = "modelport.open_files"
# False where the source (an ONNX file) does not pass onnx.checker's full check, so the
# exporter must not demand it of the result either.
FULL_CHECK_KEY = "modelport.source_passes_full_check"
# model.meta: the opset the exporter will write (``convert --opset``), so that passes emitting
# newer operators (LayerNormalization, Gelu) hold back when that opset cannot express them.
TARGET_OPSET_KEY = "modelport.target_opset"
