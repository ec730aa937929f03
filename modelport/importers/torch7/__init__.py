"""Torch7 importer: ``.t7`` files written by ``torch.save`` (binary with 8- or 4-byte longs, or
ASCII) read natively and safely (no Lua, no Torch), ``nn`` modules and ``nngraph`` graphs.

Custom modules can be added with :data:`torch7_module` (see :mod:`.table`).
"""

from modelport.importers.torch7.table import torch7_module

__all__ = ["torch7_module"]
