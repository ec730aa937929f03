"""Caffe layer translators, one module per family; importing this package registers them."""

from modelport.importers.caffe.layers import (  # noqa: F401
    activation,
    conv,
    norm,
    pooling,
    resize,
    shape,
    ssd,
)
