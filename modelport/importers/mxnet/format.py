"""MXNet format declaration: a symbol JSON recognised by its node list, a ``.params`` file by
the NDArray-list magic."""

from __future__ import annotations

from modelport.importers.registry import FormatSpec


def detect(path: str, head: bytes) -> int:
    from modelport.importers.mxnet.params import is_params_file
    from modelport.importers.mxnet.symbol import looks_like_symbol

    lower = path.lower()
    if looks_like_symbol(head):
        if b'"arg_nodes"' in head or b'"heads"' in head or b'"backward_source_id"' in head:
            return 85
        return 80 if lower.endswith("-symbol.json") else 55
    if is_params_file(head):
        return 85 if lower.endswith(".params") else 40
    return 0


FORMAT = FormatSpec(
    name="mxnet",
    description="MXNet model (-symbol.json + -NNNN.params)",
    extensions=(".json", ".params"),
    detection="symbol JSON with nodes/arg_nodes/heads (or legacy param/backward_source_id); "
              ".params: NDArray-list magic 0x112",
    detect=detect,
    load="modelport.importers.mxnet.load:load",
    reference="modelport.convert.runners.mxnet:reference",
    reference_name="MXNet 1.9.1 (in its own environment, .venv-mxnet)",
    options=frozenset({"weights", "random_weights", "input_dtypes"}),
)
