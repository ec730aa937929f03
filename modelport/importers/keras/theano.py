"""Keras on Theano: what a file saved by Keras' Theano backend means, translated exactly.

Keras 1 and Keras 2 (up to 2.3) ran on Theano. Three of its semantics differ from TensorFlow's,
and neither tf_keras nor Keras 3 reproduces them when they load such a file:

* Theano computes true convolutions (``T.nnet.conv2d`` flips the filter), so the kernels of
  ``Conv1D/2D/3D``, ``Conv2DTranspose``/``Conv3DTranspose`` (the gradient of a flipping
  convolution) and ``ConvLSTM2D`` (input and recurrent kernels) are stored flipped along their
  spatial axes relative to TensorFlow's cross-correlation. Depthwise and separable kernels are
  not: Keras 2's Theano backend flips those itself before convolving (``kernel[::-1, ::-1]``).
* ``padding="same"`` is Theano's ``half`` border: ``k_eff // 2`` pixels on both sides, the
  output cut to ``ceil(n / stride)``. TensorFlow puts the odd pixel at the end; the two agree
  only for odd kernels at stride 1.
* ``padding="same"`` pooling pads ``k - 2`` (odd ``k > 2``) or ``k - 1`` pixels on both sides
  and cuts the output to ``ceil(n / stride)`` (windows start before the first pixel).

The backend is the file's ``backend`` attribute (Keras 2), or, for Keras 1 files which do not
record it, Theano when a layer uses ``dim_ordering: "th"``; ``--keras-backend`` overrides both.
"""

from __future__ import annotations

import math

import numpy as np

# Layers whose kernels Theano stores flipped: the index of each flipped weight.
FLIPPED = {
    "Conv1D": (0,), "Conv2D": (0,), "Conv3D": (0,),
    "Convolution1D": (0,), "Convolution2D": (0,), "Convolution3D": (0,),
    "Conv2DTranspose": (0,), "Conv3DTranspose": (0,),
    "Convolution2DTranspose": (0,), "Convolution3DTranspose": (0,),
    "ConvLSTM2D": (0, 1),
}
BACKENDS = ("theano", "tensorflow", "cntk")


def is_theano(ctx) -> bool:
    return getattr(ctx, "keras_backend", None) == "theano"


def flips(ctx, class_name: str, index: int) -> bool:
    """Whether weight ``index`` of a ``class_name`` layer is a flipped Theano kernel."""
    return is_theano(ctx) and index in FLIPPED.get(class_name, ())


def unflip(kernel: np.ndarray) -> np.ndarray:
    """A Keras kernel ``(k..., in, out)`` with its spatial axes reversed."""
    n = kernel.ndim - 2
    return kernel[(slice(None, None, -1),) * n]


def same_pads(size, k: int, s: int, d: int) -> tuple[int, int] | None:
    """Theano's ``half`` padding with Keras' crop to ``ceil(size / s)`` outputs, as ONNX pads."""
    if not isinstance(size, int):
        return None
    eff = (k - 1) * d + 1
    begin = eff // 2
    end = (math.ceil(size / s) - 1) * s + eff - size - begin
    return begin, max(end, 0)


def pool_same_pads(size, k: int, s: int, three_d: bool = False) -> tuple[int, int] | None:
    """Keras' Theano ``same`` pooling pads and crop, as ONNX begin/end pads."""
    if not isinstance(size, int):
        return None
    if three_d:
        pad = k - 2 if k % 2 == 1 else k - 1
    else:
        pad = k - 2 if k > 2 and k % 2 == 1 else k - 1
    pad = max(pad, 0)
    want = math.ceil(size / s)
    # Keep the padded end only as far as the windows that survive the crop need it.
    end = max(min(pad, (want - 1) * s + k - size - pad), 0)
    return pad, end


def backend_of(attrs_backend: str | None, keras_version: str, config: dict,
               override: str | None) -> tuple[str, str]:
    """The backend a file was saved with and why we think so: (backend, how)."""
    if override:
        return override, "given with --keras-backend"
    if attrs_backend:
        return attrs_backend, "recorded in the file"
    if keras_version.startswith("1"):
        if _uses_th_ordering(config):
            return "theano", "assumed: a Keras 1 file with dim_ordering 'th' (--keras-backend " \
                             "tensorflow overrides)"
        return "tensorflow", "assumed: a Keras 1 file without dim_ordering 'th' " \
                             "(--keras-backend theano overrides)"
    return "tensorflow", "not recorded; assumed"


def _uses_th_ordering(x) -> bool:
    if isinstance(x, dict):
        if x.get("dim_ordering") == "th":
            return True
        return any(_uses_th_ordering(v) for v in x.values())
    if isinstance(x, list):
        return any(_uses_th_ordering(v) for v in x)
    return False
