"""Keras importer: ``.h5``/``.hdf5`` (Keras 2 and 3) and ``.keras`` archives, read with h5py and
the JSON model config alone (neither TensorFlow nor Keras is imported).

Users register translations for their own layers with :func:`keras_layer`::

    from modelport.importers.keras import keras_layer

    @keras_layer("ScaleBy")
    def scale_by(ctx, layer, inputs):
        (x,) = inputs
        factor = ctx.b.const(layer.config["factor"], "factor")
        return x.like(ctx.b.op("Mul", x.value, factor))

See docs/extending.md for the translator API.
"""

from modelport.importers.keras.table import KT, keras_layer

__all__ = ["KT", "keras_layer"]
