"""PyTorch reference runner: the source module itself, in eager mode on CPU.

Entry points and pickles run the ``nn.Module``; TorchScript archives run in the TorchScript
interpreter; ``.pt2`` archives run ``torch.export.load(...).module()``. Per-layer values come
from forward hooks on the named submodules (for ``.pt2``, on ``torch.export.unflatten`` of the
program, which restores the module hierarchy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modelport.errors import InputSpecError
from modelport.importers.pytorch.sources import (
    TorchSource,
    flatten_outputs,
    open_source,
    output_names,
)


class PyTorchReference:
    def __init__(self, path: str, options=None) -> None:
        from modelport.importers.registry import LoadOptions

        options = options or LoadOptions()
        self.source: TorchSource = open_source(path, options)
        kinds = {"module": "eager", "torchscript": "TorchScript interpreter",
                 "export": "torch.export program"}
        self.name = f"PyTorch {torch.__version__.split('+')[0]} {kinds[self.source.kind]}"

    def _args(self, feeds: dict[str, np.ndarray]) -> list[torch.Tensor]:
        missing = [n for n in self.source.input_names if n not in feeds]
        if missing:
            raise InputSpecError(f"no values for the module's input(s) {', '.join(missing)} "
                                 f"(got {', '.join(feeds)})")
        return [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.source.input_names]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            result = self.source.callable()(*self._args(feeds))
        tensors = flatten_outputs(result)
        return {name: t.detach().numpy() for name, t in zip(output_names(len(tensors)), tensors)}

    def run_layers(self, feeds: dict[str, np.ndarray], layers: dict[str, list[str]]
                   ) -> dict[str, list[np.ndarray]]:
        if self.source.kind == "torchscript":
            raise InputSpecError(
                "per-layer verification is not available for TorchScript archives: the export "
                "traces through the TorchScript interpreter, which hides the submodules; "
                "verify the outputs, or convert the original nn.Module (entry point or .pt2)")
        root = self._hookable()
        modules = dict(root.named_modules())
        captured: dict[str, Any] = {}
        handles = []

        def hook_for(name: str):
            def hook(_module, _inputs, output):
                if name not in captured:  # first call only
                    captured[name] = flatten_outputs(output)
            return hook

        for layer in layers:
            module = modules.get(layer)
            if module is not None and layer:
                handles.append(module.register_forward_hook(hook_for(layer)))
        try:
            with torch.no_grad():
                root(*self._args(feeds))
        finally:
            for handle in handles:
                handle.remove()
        return {layer: [t.detach().numpy() for t in tensors[:len(layers[layer])]]
                for layer, tensors in captured.items() if tensors}

    def _hookable(self) -> torch.nn.Module:
        if self.source.kind == "export":
            return torch.export.unflatten(self.source.module)
        return self.source.module


def reference(path: str, options=None, device: str = "cpu") -> PyTorchReference:
    # PyTorch runs on CPU here whatever --device says; --device picks onnxruntime's provider.
    return PyTorchReference(path, options)
