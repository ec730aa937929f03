"""MXNet operator translators, one module per family; importing this package registers them."""

from modelport.importers.mxnet.ops import (  # noqa: F401
    activation,
    conv,
    math,
    norm,
    pooling,
    recurrent,
    shape,
)
