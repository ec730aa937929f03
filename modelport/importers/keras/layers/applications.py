"""Helper layers of keras.applications models (ConvNeXt's LayerScale, Inception-ResNet's
CustomScaleLayer)."""

from __future__ import annotations

from modelport.importers.keras.table import (
    KT,
    Context,
    Layer,
    keras_layer,
    scalar,
)


@keras_layer("LayerScale")
def layer_scale(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """keras.applications.convnext.LayerScale: x * gamma over the channel axis."""
    t = ctx.unflatten(inputs[0])
    n = int(layer.weights()[0].shape[0])
    shape = [1] * t.rank
    shape[t.phys_axis(-1)] = n
    g = ctx.weight(layer, 0, "gamma", transform=lambda w: w.reshape(shape), shape=shape)
    return t.like(ctx.op("Mul", t.value, g))


@keras_layer("CustomScaleLayer", "Custom>CustomScaleLayer")
def custom_scale(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """keras.applications.inception_resnet_v2.CustomScaleLayer: x[0] + x[1] * scale."""
    scale = float(layer.config["scale"])
    perm, (a, b) = ctx.common_layout(inputs[:2])
    y = ctx.op("Add", a, ctx.op("Mul", b, scalar(ctx, scale)))
    return KT(y, inputs[0].shape, inputs[0].dtype, perm)
