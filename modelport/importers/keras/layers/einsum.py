"""EinsumDense: ``einsum(equation, x, kernel) + bias`` then the activation.

Most equations seen in practice are a dense product in disguise: the input ends with the
contracted axes, the kernel is those axes followed by the new ones, and the output is the
untouched leading axes followed by the new ones (``...b,bc->...c``, ``abc,cde->abde``,
``abcd,cde->abe``). Those become Reshape + MatMul + Reshape, with the kernel flattened to a
matrix inside the weight read; onnxruntime runs that faster than Einsum. Every other equation
is emitted as an ONNX Einsum with the equation unchanged.

The stored bias already has the broadcast shape Keras adds (trailing-aligned with the output),
so it is added as it is.
"""

from __future__ import annotations

import math
import re

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.layers.activations import activate
from modelport.importers.keras.table import KT, Context, Layer, ints, keras_layer

_ELL = "0"  # stand-in for "..." while the equation is analysed


def split_equation(equation: str) -> tuple[str, str, str]:
    """(input, kernel, output) specs with ``...`` written as one ``0`` token."""
    eq = str(equation).replace(" ", "").replace("...", _ELL)
    m = re.fullmatch(r"([a-zA-Z0]+),([a-zA-Z]+)->([a-zA-Z0]*)", eq)
    if m is None:
        raise UnsupportedFeatureError(f"EinsumDense equation {equation!r} is not of the form "
                         "'IN,KERNEL->OUT' (an ellipsis is allowed in IN and OUT only)")
    a, w, out = m.groups()
    for spec in (a, w, out):
        if len(set(spec)) != len(spec):
            raise UnsupportedFeatureError(f"EinsumDense equation {equation!r} repeats an axis letter "
                             "(traces and diagonals are not supported)")
    if (_ELL in a) != (_ELL in out):
        raise UnsupportedFeatureError(f"EinsumDense equation {equation!r}: '...' must appear in both the "
                         "input and the output")
    return a, w, out


def _dims(spec: str, shape: tuple, what: str) -> dict[str, list]:
    """Map every token of ``spec`` to the dims of ``shape`` it covers (the ellipsis may cover
    several, or none)."""
    named = len(spec) - (1 if _ELL in spec else 0)
    extra = len(shape) - named
    if extra < 0 or (extra > 0 and _ELL not in spec):
        raise UnsupportedFeatureError(f"EinsumDense: the {what} has rank {len(shape)}, which does not fit "
                         f"the equation's {spec.replace(_ELL, '...')!r}")
    out: dict[str, list] = {}
    pos = 0
    for ch in spec:
        n = extra if ch == _ELL else 1
        out[ch] = list(shape[pos:pos + n])
        pos += n
    return out


def _dense_split(a: str, w: str, out: str) -> tuple[str, str, str] | None:
    """(kept, contracted, new) when ``a = kept+contracted``, ``w = contracted+new`` and
    ``out = kept+new``; None for any other equation."""
    contracted = "".join(ch for ch in w if ch in a)
    new = w[len(contracted):]
    if not contracted or not new or w != contracted + new or any(ch in a for ch in new):
        return None
    if any(ch in out for ch in contracted) or not a.endswith(contracted):
        return None
    kept = a[:len(a) - len(contracted)]
    if any(ch in w for ch in kept) or out != kept + new:
        return None
    return kept, contracted, new


@keras_layer("EinsumDense")
def einsum_dense(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    t = inputs[0]
    a, w, out = split_equation(c["equation"])
    ws = layer.weights()
    if any(ds.dtype.kind != "f" for ds in ws):
        raise UnsupportedFeatureError("quantized EinsumDense layers (integer kernels) are not supported")
    kshape = tuple(int(d) for d in ws[0].shape)
    if len(kshape) != len(w):
        raise UnsupportedFeatureError(f"EinsumDense kernel has shape {kshape}, which does not fit the "
                         f"equation's kernel spec {w!r}")
    in_dims = _dims(a, t.shape, "input")
    k_dims = {ch: [kshape[i]] for i, ch in enumerate(w)}
    for ch in out:
        if ch not in in_dims and ch not in k_dims:
            raise UnsupportedFeatureError(f"EinsumDense equation {c['equation']!r}: output axis {ch!r} "
                             "is in neither the input nor the kernel")
    out_shape = tuple(d for ch in out for d in (in_dims[ch] if ch in in_dims else k_dims[ch]))
    x = ctx.logical(t)
    split = _dense_split(a, w, out)
    if split is not None:
        kept, contracted, new = split
        n_kept = sum(len(in_dims[ch]) for ch in kept)
        k_in = math.prod(kshape[:len(contracted)])
        k_out = math.prod(kshape[len(contracted):])
        if len(contracted) > 1:
            x = ctx.op("Reshape", x, ints(ctx, [0] * n_kept + [k_in], "shape"))
        kernel = ctx.weight(layer, 0, "kernel", transform=lambda k: k.reshape(k_in, k_out),
                            shape=(k_in, k_out))
        y = ctx.op("MatMul", x, kernel)
        if len(new) > 1:
            y = ctx.op("Reshape", y, ints(ctx, [0] * n_kept + list(kshape[len(contracted):]),
                                          "shape"))
    else:
        eq = f"{a},{w}->{out}".replace(_ELL, "...")
        y = ctx.op("Einsum", x, ctx.weight(layer, 0, "kernel"), equation=eq)
    if c.get("bias_axes") and len(ws) > 1:
        y = ctx.op("Add", y, ctx.weight(layer, 1, "bias"))
    return activate(ctx, c.get("activation"), KT(y, out_shape, t.dtype), keras2=layer.keras2)
