"""Graph inputs and outputs: user overrides of input shapes and selection of outputs."""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes.common as common

from modelport.errors import InputSpecError, join_names


def parse_shape(text: str) -> list[int | str]:
    """'1,3,224,224' or '1x3x224x224' → dims; a non-numeric dim ('batch') stays symbolic."""
    dims: list[int | str] = []
    for part in text.replace("x", ",").split(","):
        part = part.strip()
        if not part:
            continue
        dims.append(int(part) if part.lstrip("-").isdigit() else part)
    return dims


def set_input_shapes(model: ir.Model, shapes: dict[str, list[int | str]]) -> None:
    """Fix or override input shapes; shapes of everything downstream are re-inferred at export."""
    if not shapes:
        return
    by_name = {v.name: v for v in model.graph.inputs if v.name not in model.graph.initializers}
    unknown = [n for n in shapes if n not in by_name]
    if unknown:
        raise InputSpecError(
            f"--input names {join_names(unknown)}, but the model's inputs are "
            f"{join_names(by_name) or 'none'}"
        )
    changed = False
    for name, dims in shapes.items():
        value = by_name[name]
        if value.shape is not None and len(value.shape) != len(dims):
            raise InputSpecError(
                f"--input {name}: the model's input has rank {len(value.shape)}, "
                f"got {len(dims)} dims"
            )
        if any(isinstance(d, int) and d <= 0 for d in dims):
            raise InputSpecError(f"--input {name}: dims must be positive, got {dims}")
        if value.shape is not None and _same_dims(value.shape, dims):
            continue
        value.shape = ir.Shape(dims)
        changed = True
    if not changed:  # the importer already applied them: keep the inferred shapes
        return
    # Stored intermediate shapes may contradict the new input shapes: drop them.
    for node in model.graph.all_nodes():
        for out in node.outputs:
            if out is not None:
                out.shape = None


def _same_dims(shape: ir.Shape, dims: list[int | str]) -> bool:
    for have, want in zip(shape.dims, dims):
        if isinstance(want, int):
            if have != want:
                return False
        elif not isinstance(have, ir.SymbolicDim) or have.value != want:
            return False
    return True


def select_outputs(model: ir.Model, names: list[str] | None) -> None:
    """Make ``names`` the graph outputs (any value of the graph may be named) and drop the rest."""
    if not names:
        return
    values: dict[str, ir.Value] = {}
    for v in model.graph.inputs:
        values[v.name] = v
    for node in model.graph:
        for out in node.outputs:
            if out is not None and out.name:
                values[out.name] = out
    missing = [n for n in names if n not in values]
    if missing:
        current = [v.name for v in model.graph.outputs]
        raise InputSpecError(
            f"--output names {join_names(missing)}, which the model does not compute "
            f"(its outputs are {join_names(current)})"
        )
    model.graph.outputs.clear()
    for name in names:
        model.graph.outputs.append(values[name])
    common.RemoveUnusedNodesPass()(model)
