"""Torch7 module translators, one module per family; importing this package registers them."""

from modelport.importers.torch7.modules import (  # noqa: F401
    activation,
    containers,
    conv,
    graph,
    norm,
    pooling,
    shape,
)
