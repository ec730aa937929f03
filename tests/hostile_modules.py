"""Modules for tests/test_hostile.py (TorchScript needs its source in a file)."""

from __future__ import annotations

import torch


class WritesFile(torch.nn.Module):
    """A TorchScript program that creates ``path`` when it runs (torch.from_file, shared)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.path, shared=True, size=1)
        return x * 2.0 + written * 0.0


class Doubler(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0
