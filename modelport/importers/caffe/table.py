"""The Caffe layer translation table.

A translator is ``fn(ctx, layer, inputs) -> list of output values`` (one per top), where
``layer`` is the ``LayerParameter`` message, ``inputs`` the values of its bottoms and ``ctx``
a :class:`~modelport.importers.caffe.load.Context` giving the graph builder, static shapes and
the layer's weights. Register one for a custom layer type::

    from modelport.importers.caffe import caffe_layer

    @caffe_layer("MyScale")
    def my_scale(ctx, layer, inputs):
        (x,) = inputs
        return [ctx.op("Mul", x, ctx.b.const(2.0), shape=ctx.shape(x))]
"""

from __future__ import annotations

from modelport.importers.optable import OpTable

caffe_layer = OpTable("Caffe layer")
