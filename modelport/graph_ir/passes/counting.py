"""The base of this project's own in-place passes: ``rewrites`` counts what the last run
rewrote (each pass resets it when its ``call`` starts), and the pass manager reports it per
pass (``convert --json``)."""

from __future__ import annotations

import onnx_ir as ir


class CountingPass(ir.passes.InPlacePass):
    def __init__(self) -> None:
        super().__init__()
        self.rewrites = 0
