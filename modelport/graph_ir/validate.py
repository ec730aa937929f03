"""``validate(model)``: the IR invariants every importer and pass must keep, checked in one place."""

from __future__ import annotations

import onnx_ir as ir


class GraphInvariantError(AssertionError):
    """The IR breaks an invariant: a bug in an importer or a pass, never the user's fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"invalid graph: {shown}{more}")


def validate(model: ir.Model) -> None:
    """Raise :class:`GraphInvariantError` listing every broken invariant.

    Checked: the default-domain opset is imported; nodes are in topological order; value and
    node names are unique and non-empty; every node input is defined before use; every graph
    output is produced; graph inputs, outputs and the main graph's inputs and outputs have known types and
    initializers hold data.
    """
    problems: list[str] = []
    if "" not in model.opset_imports and any(n.domain == "" for n in model.graph.all_nodes()):
        problems.append("no opset import for the default ONNX domain")
    _check_graph(model.graph, set(), problems, main=True)
    if problems:
        raise GraphInvariantError(problems)


def _check_graph(
    graph: ir.Graph, outer: set[ir.Value], problems: list[str], main: bool = False
) -> None:
    defined: set[ir.Value] = set(outer)
    names: dict[str, str] = {}

    def claim(name: str | None, what: str) -> None:
        if not name:
            problems.append(f"{what} has no name")
        elif name in names:
            problems.append(f"name {name!r} used twice ({names[name]} and {what})")
        else:
            names[name] = what

    for value in graph.inputs:
        claim(value.name, "graph input")
        defined.add(value)
        if main and value.type is None:
            problems.append(f"graph input {value.name!r} has no type")
    for name, value in graph.initializers.items():
        if value not in graph.inputs:
            claim(name, "initializer")
        defined.add(value)
        if value.const_value is None:
            problems.append(f"initializer {name!r} holds no data")
        if name != value.name:
            problems.append(f"initializer registered as {name!r} is named {value.name!r}")

    node_names: set[str] = set()
    for node in graph:
        label = f"{node.op_type} node {node.name!r}"
        if node.name:
            if node.name in node_names:
                problems.append(f"node name {node.name!r} used twice")
            node_names.add(node.name)
        for i, value in enumerate(node.inputs):
            if value is not None and value not in defined:
                problems.append(
                    f"{label} input {i} ({value.name!r}) is used before it is produced"
                )
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                _check_graph(attr.value, defined, problems)
            elif attr.type == ir.AttributeType.GRAPHS:
                for sub in attr.value:
                    _check_graph(sub, defined, problems)
        for value in node.outputs:
            if value is None:
                continue
            if value.name:
                claim(value.name, f"output of {label}")
            defined.add(value)

    for value in graph.outputs:
        if value not in defined:
            problems.append(f"graph output {value.name!r} is not produced")
        if main and value.type is None and value.producer() is None:
            problems.append(f"graph output {value.name!r} has no type")
