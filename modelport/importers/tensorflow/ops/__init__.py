"""TensorFlow op translators, one module per family; importing this package registers them."""

from modelport.importers.tensorflow.ops import array, conv, lists, math, nn  # noqa: F401
