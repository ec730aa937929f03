"""MXNet importer: ``-symbol.json`` (current and legacy 0.8 JSON) + ``.params`` (NDArray list),
read with no MXNet installed; weights are read from their file regions when exported.

Custom operators can be added with :data:`mxnet_op` (see :mod:`.table`).
"""

from modelport.importers.mxnet.table import mxnet_op

__all__ = ["mxnet_op"]
