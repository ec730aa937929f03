"""Graph inputs and outputs: user overrides of input shapes and selection of outputs."""

from __future__ import annotations

import re

import onnx_ir as ir
import onnx_ir.passes.common as common

from modelport.errors import InputSpecError, join_names

INT64_MAX = 2**63 - 1
_DIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_INT = re.compile(r"^[0-9]+$")
_SIGNED_INT = re.compile(r"^[+-]?[0-9]+$")


def parse_shape(text: str) -> list[int | str]:
    """Dims from ``--input``: '1,3,224,224', 'batch,max_len' or '1x3x224x224'.

    Commas separate dims. Without a comma, ``x`` separates dims only when every part is an
    integer ('1x3x224x224'); otherwise the text is one dim ('max_len', 'box'). A dim that is not
    an integer is a symbolic name. Raises ValueError with a reason for anything else.
    """
    text = text.strip()
    if not text:
        return []  # a scalar
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
    elif "x" in text and all(_INT.match(p) for p in text.split("x")):
        parts = text.split("x")
    else:
        pieces = text.split("x")
        if len(pieces) > 1 and any(_INT.match(p) for p in pieces) and all(
                _INT.match(p) or not p for p in pieces):
            raise ValueError("an empty dim (two separators in a row, or one at an end)")
        if len(pieces) > 1 and any(_INT.match(p) for p in pieces):
            # 'batchx3x224x224': 'x' cannot both separate dims and be part of a name
            raise ValueError(f"separate dims with commas when one is named, e.g. "
                             f"{','.join(p or '?' for p in pieces)}")
        parts = [text]
    dims: list[int | str] = []
    for part in parts:
        if not part:
            raise ValueError("an empty dim (two separators in a row, or one at an end)")
        if _SIGNED_INT.match(part):
            value = int(part)
            if value <= 0:
                raise ValueError(f"dims must be positive, got {value}")
            if value > INT64_MAX:
                raise ValueError(f"dim {part} does not fit in 64 bits")
            dims.append(value)
        elif _DIM_NAME.match(part):
            dims.append(part)
        else:
            raise ValueError(f"dim {part!r} is neither a positive integer nor a name")
    count = 1
    for d in dims:
        count *= d if isinstance(d, int) else 1
    if count > INT64_MAX:
        raise ValueError("the dims multiply to more elements than 64 bits can count")
    return dims


DTYPES = ("float32", "float16", "float64", "bfloat16", "int64", "int32", "int16", "int8",
          "uint8", "uint16", "uint32", "uint64", "bool")
# A last field that starts like one of these is a (mistyped) dtype, not a dim name.
_DTYPE_LIKE = re.compile(r"^(float|int|uint|bfloat|bool|double|half|complex|fp|bf)\d*$", re.I)


def parse_input_spec(spec: str) -> tuple[str, list[int | str], str | None]:
    """``NAME:DIMS[:DTYPE]`` (one ``--input``) → name, dims, dtype or None.

    Names may contain ':' (TensorFlow's ``x:0``). Raises InputSpecError saying what is wrong.
    """
    rest, dtype = spec, None
    head, sep, last = spec.rpartition(":")
    if sep and last.strip().lower() in DTYPES:
        rest, dtype = head, last.strip().lower()
    elif sep and head.count(":") and _DTYPE_LIKE.match(last.strip()):
        raise InputSpecError(f"--input {spec!r}: unknown dtype {last!r}; one of "
                             f"{', '.join(DTYPES)}")
    name, sep, dims = rest.rpartition(":")
    if not sep or not name:
        raise InputSpecError(
            f"--input {spec!r}: expected NAME:DIMS[:DTYPE], e.g. input:1,3,224,224 or "
            "ids:1,128:int64"
        )
    try:
        shape = parse_shape(dims)
    except ValueError as exc:
        raise InputSpecError(f"--input {spec!r}: {exc}") from None
    return name, shape, dtype


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
        if any(isinstance(d, int) and d <= 0 for d in dims):
            raise InputSpecError(f"--input {name}: dims must be positive, got {dims}")
        if value.shape is not None and _same_dims(value.shape, dims):
            continue
        if value.shape is not None:
            # The importer did not apply this shape: only dims the model leaves open can be set.
            check_input_override(name, list(value.shape.dims), dims)
        value.shape = ir.Shape(dims)
        changed = True
    if not changed:  # the importer already applied them: keep the inferred shapes
        return
    # Stored intermediate shapes may contradict the new input shapes: drop them.
    for node in model.graph.all_nodes():
        for out in node.outputs:
            if out is not None:
                out.shape = None


def check_input_override(name: str, declared, dims: list[int | str]) -> None:
    """Refuse ``--input`` dims that contradict the model's: another rank, or another size for
    a dim the model fixes (weights are sized for it, e.g. the channels). Open dims (None or
    symbolic) may be set to anything."""
    declared = list(declared)
    if len(declared) != len(dims):
        shown = ",".join("?" if not isinstance(d, int) else str(d) for d in declared)
        raise InputSpecError(
            f"--input {name}: the model's input has rank {len(declared)} ({shown}), "
            f"got {len(dims)} dims")
    for i, (have, want) in enumerate(zip(declared, dims)):
        if isinstance(have, int) and have != want:
            raise InputSpecError(
                f"--input {name}: dim {i} of the model's input is fixed at {have}, got {want}; "
                "only its open dims can be set")


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
