"""Source-layer names on IR nodes.

Every node an importer creates records the layer of the original model it came from in
``node.metadata_props[SOURCE_KEY]`` (keys: :mod:`modelport.graph_ir.metadata`). Verification
uses it to map an ONNX value back to a layer of the source model; passes keep it when they
rewrite nodes.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx_ir as ir

from modelport.graph_ir.metadata import LAYER_SKIPS_META, LAYER_VALUES_META, SOURCE_KEY


def set_source(node: ir.Node, layer: str | None) -> None:
    """Record that ``node`` comes from source layer ``layer`` (``modelport.source``)."""
    if layer:
        node.metadata_props[SOURCE_KEY] = layer


def get_source(node: ir.Node) -> str | None:
    """The source layer ``node`` came from, or None."""
    return node.metadata_props.get(SOURCE_KEY)


def layer_outputs(graph: ir.Graph) -> dict[str, list[ir.Value]]:
    """Map each source layer to the outputs of the *last* node (in graph order) it produced.

    The last node of a layer computes what the layer returns; earlier nodes are its internals.
    """
    result: dict[str, list[ir.Value]] = {}
    for node in graph:
        layer = get_source(node)
        if layer:
            result[layer] = [v for v in node.outputs if v is not None and v.name]
    return result


def fill_missing_sources(nodes: Iterable[ir.Node], default: str) -> None:
    for node in nodes:
        if SOURCE_KEY not in node.metadata_props:
            node.metadata_props[SOURCE_KEY] = default


def layer_map(model: ir.Model) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Source layer -> names of the values it returns, and layer -> why it has none.

    Layers the importer stated explicitly (``LAYER_VALUES_META``) map to those values; the
    others to the outputs of their last node (:func:`layer_outputs`).
    """
    layers = {k: [v.name for v in vs] for k, vs in layer_outputs(model.graph).items()}
    explicit = model.meta.get(LAYER_VALUES_META) or {}
    for layer, values in explicit.items():
        layers[layer] = [v.name for v in values if v is not None and v.name]
    skips = dict(model.meta.get(LAYER_SKIPS_META) or {})
    for layer in skips:
        layers.pop(layer, None)
    return layers, skips
