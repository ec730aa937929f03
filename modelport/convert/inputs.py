"""User-given verification inputs: ``--inputs`` arrays checked against the converted model, and
the converted model's input names matched to the reference's.

Both are user mistakes when they do not fit (exit 2, one line), never a crash inside a runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from modelport.errors import InputSpecError, first_line, join_names


def _dims(shape: Sequence) -> str:
    return "x".join(str(d) if isinstance(d, int) else str(d or "?") for d in shape) or "scalar"


def check_arrays(path: str, feeds: Mapping[str, np.ndarray], files: Sequence[str],
                 specs: Sequence[tuple[str, np.dtype, list]]) -> None:
    """Every array of an ``--inputs`` file must name an input and fit its rank and fixed dims."""
    wanted = [name for name, _, _ in specs]
    extra = [f for f in files if f not in wanted]
    if extra:
        raise InputSpecError(f"{path}: array(s) {join_names(extra)} name no input of the "
                             f"converted model (its inputs are {join_names(wanted)})")
    for name, _, shape in specs:
        value = feeds.get(name)
        if value is None or shape is None:
            continue
        fits = value.ndim == len(shape) and all(
            not isinstance(d, int) or d == n for d, n in zip(shape, value.shape))
        if not fits:
            raise InputSpecError(f"{path}: array {name!r} has shape {_dims(value.shape)}, but "
                                 f"the converted model's input takes {_dims(shape)}")


def reference_inputs(reference) -> list[tuple[str, list | None]] | None:
    """The reference's inputs as (name, shape or None), in order, where the runner tells."""
    specs = getattr(getattr(reference, "_runner", None), "input_specs", None)
    if callable(specs):  # ONNX sources: the original file in onnxruntime
        return [(name, list(shape)) for name, _, shape in specs()]
    for names in (getattr(reference, "inputs", None),
                  getattr(getattr(reference, "source", None), "input_names", None)):
        if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
            return [(n, None) for n in names]
    io = getattr(reference, "_io", None)
    if isinstance(io, dict) and isinstance(io.get("inputs"), dict):
        return [(n, None) for n in io["inputs"]]
    return None


def match_reference(reference, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """Feeds keyed by the reference's input names, and a note when they were mapped.

    The converted model's input names normally are the source's. When they differ (an ONNX file
    from another converter), the inputs are mapped by position if the counts and the known
    shapes agree; otherwise this is a one-line error.
    """
    ref = reference_inputs(reference)
    if ref is None or all(name in {n for n, _ in ref} for name in feeds):
        return feeds, ""
    mine = list(feeds)
    theirs = [n for n, _ in ref]
    if len(mine) != len(theirs):
        raise InputSpecError(
            f"the converted model's inputs ({join_names(mine)}) are not the source's "
            f"({join_names(theirs)}), and their counts differ: they cannot be matched")
    for (name, shape), value in zip(ref, feeds.values()):
        if shape is not None and (len(shape) != value.ndim or any(
                isinstance(d, int) and d != n for d, n in zip(shape, value.shape))):
            raise InputSpecError(
                f"the converted model's inputs ({join_names(mine)}) are not the source's "
                f"({join_names(theirs)}), and by position {name!r} takes {_dims(shape)}, not "
                f"{_dims(value.shape)}: they cannot be matched")
    mapped = {name: value for (name, _), value in zip(ref, feeds.values())}
    pairs = ", ".join(f"{a}->{b}" for a, b in zip(mine, theirs) if a != b)
    return mapped, f" (inputs matched by position: {pairs})"


def run_matched(reference, feeds: dict[str, np.ndarray], matched: str) -> dict[str, np.ndarray]:
    """``reference.run(feeds)``; inputs matched by position that the source rejects are the
    user's mismatch (a converted model of another source), reported in one line."""
    if not matched:
        return reference.run(feeds)
    from modelport.errors import ModelportError

    try:
        return reference.run(feeds)
    except ModelportError:
        raise
    except Exception as exc:
        text = first_line(exc)
        raise InputSpecError(f"the converted model's inputs, matched to the source's by position, "
                             f"do not fit it ({text}); is it a conversion of this model?"
                             ) from exc
