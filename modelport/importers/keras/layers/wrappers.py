"""TimeDistributed: the wrapped layer applied to every time step (batch and time merged)."""

from __future__ import annotations

from modelport.errors import UnsupportedFeatureError, UnsupportedOpsError
from modelport.importers.keras.table import KT, Context, Layer, ints, keras_layer


@keras_layer("TimeDistributed")
def time_distributed(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    from modelport.importers.keras.load import _lookup
    from modelport.importers.keras.model import LayerSpec

    inner = layer.config["layer"]
    icfg = inner.get("config") or {}
    spec = LayerSpec(inner["class_name"], layer.name, icfg, inner.get("module"), [], inner)
    fn = _lookup(spec)
    if fn is None:
        raise UnsupportedOpsError({inner["class_name"]: [layer.name]}, path=ctx.path,
                                  kind="Keras layer")
    t = inputs[0]
    x = ctx.logical(t)
    rest = list(t.shape[2:])
    merged = ctx.op("Reshape", x, ints(ctx, [-1, *[d if isinstance(d, int) else 0
                                                    for d in rest]], "shape"))
    sub = Layer(inner["class_name"], layer.name, icfg, layer.weights, inner.get("module"),
                layer.keras_version)
    out = fn(ctx, sub, [KT(merged, (None, *rest), t.dtype)])
    out = out[0] if isinstance(out, (list, tuple)) else out
    y = ctx.logical(out)
    tail = list(out.shape[1:])
    if not all(isinstance(d, int) for d in tail):
        raise UnsupportedFeatureError("TimeDistributed needs static per-step output shapes")
    lead = ctx.op("Slice", ctx.op("Shape", x), ints(ctx, [0], "s"), ints(ctx, [2], "e"))
    shape = ctx.op("Concat", lead, ints(ctx, tail, "tail"), axis=0)
    return KT(ctx.op("Reshape", y, shape), (t.shape[0], t.shape[1], *tail), out.dtype)
