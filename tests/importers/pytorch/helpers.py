"""Test helpers: write each source kind of a test model, and compare ONNX results with eager."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import torch

from tests.importers.pytorch.models import MODELS, _seeded

RTOL, ATOL = 1e-3, 1e-4
ENTRY = "tests.importers.pytorch.models:{}"


def shapes_at(name: str, batch: int | None = None) -> dict[str, list[int]]:
    shapes = MODELS[name][1]
    return {k: ([batch] + s[1:] if batch else list(s)) for k, s in shapes.items()}


def eager(name: str) -> torch.nn.Module:
    return MODELS[name][0]()


def write_source(kind: str, name: str, folder: str) -> tuple[str, dict, torch.nn.Module]:
    """(source, convert options, the eager module it must match) for one source kind.

    Kinds: entry (entry point), state_dict (entry point + --weights with other weights),
    pt2 (torch.export.save, dynamic batch), script / trace (torch.jit.save).
    """
    module = eager(name)
    shapes = shapes_at(name)
    args = tuple(torch.randn(*s) for s in shapes.values())
    options: dict = {"input_shapes": shapes_at(name, 1)}
    if kind == "entry":
        return ENTRY.format(name), options, module
    if kind == "state_dict":
        other = _seeded(type(module)(), 99)  # different weights than the factory's
        path = os.path.join(folder, f"{name}.state_dict.pt")
        torch.save(other.state_dict(), path)
        options["weights"] = path
        return ENTRY.format(name), options, other
    if kind == "pt2":
        path = os.path.join(folder, f"{name}.pt2")
        batch = torch.export.Dim("batch")
        program = torch.export.export(module, args,
                                      dynamic_shapes={k: {0: batch} for k in shapes})
        torch.export.save(program, path)
        return path, {}, module
    if kind in ("script", "trace"):
        path = os.path.join(folder, f"{name}.{kind}.pt")
        scripted = (torch.jit.script(module) if kind == "script"
                    else torch.jit.trace(module, args, check_trace=False))
        torch.jit.save(scripted, path)
        options["trust_code"] = True  # a TorchScript archive is a program: it must be trusted
        return path, options, module
    raise ValueError(kind)


def seeded_inputs(name: str, batch: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes_at(name, batch).values()]


def compare_with_eager(onnx_path: str, module: torch.nn.Module, name: str,
                       batches: tuple[int, ...]) -> list[float]:
    """Run the ONNX file in onnxruntime and the module eagerly at each batch size; assert
    every output agrees within tolerance; returns the max abs errors (for messages)."""
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    assert input_names == list(MODELS[name][1]), input_names
    errors = []
    for batch in batches:
        feeds = seeded_inputs(name, batch, seed=batch)
        got = session.run(None, dict(zip(input_names, feeds)))
        with torch.no_grad():
            want = module(*[torch.from_numpy(x) for x in feeds])
        want = list(want) if isinstance(want, tuple) else [want]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            w = w.numpy()
            assert g.shape == w.shape, (batch, g.shape, w.shape)
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
            errors.append(float(np.abs(g - w).max()))
    return errors
