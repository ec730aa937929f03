"""Keras masks: which time steps of a sequence are padding.

``Embedding(mask_zero=True)`` and ``Masking`` attach a boolean (batch, time) mask to their
output; Keras carries it along through layers that support masking and hands it to the layers
that use it. Recurrent layers then skip the padded steps (their state is carried over), and
``GlobalAveragePooling1D`` averages only the real ones. A converter that ignored the mask would
give other numbers for every padded sequence, silently, so the importer follows masks the way
Keras does:

* Keras 3 files record the mask a layer's ``call`` received as an explicit ``mask`` argument;
  Keras 2 files do not, and the importer propagates masks itself (``KT.mask``).
* Layers that use the mask and have a translation that applies it are in :data:`APPLIED`.
* A layer whose result depends on a mask that modelport does not apply, or that receives a
  mask the importer could not follow through an earlier layer, is refused with an error that
  names it; it is never converted as if there were no padding.
"""

from __future__ import annotations

from typing import Any

import onnx_ir as ir

from modelport.errors import UnsupportedOpsError

# A mask Keras would carry here, through a layer whose mask rule modelport does not know.
UNKNOWN = "unknown mask"

# Layers whose outputs Keras gives their input's mask, computing their values without it.
PROPAGATE = frozenset({
    "Dense", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU",
    "Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
    "ActivityRegularization", "Identity", "BatchNormalization", "LayerNormalization",
    "TimeDistributed",
})
# Merge layers. Keras 2 merges values without the masks and ANDs the masks it got; Keras 3
# ORs them (no mask when one input has none), and its Maximum, Minimum and Multiply replace
# masked entries before merging (not reproduced: refused).
MERGES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
                    "Concatenate"})
MERGE_USERS_KERAS3 = frozenset({"Multiply", "Maximum", "Minimum"})
# Layers whose values depend on the mask they receive.
USERS = frozenset({
    "SimpleRNN", "LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU", "RNN", "Bidirectional",
    "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "GlobalAveragePooling1D", "GlobalAvgPool1D",
    "Softmax", "Attention", "AdditiveAttention", "MultiHeadAttention", "GroupQueryAttention",
    "Lambda",
})
# ... of which these take it as their ``mask`` argument, which Keras 3 files record.
RECORDED_KERAS3 = frozenset({
    "SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D",
    "ConvLSTM3D", "GlobalAveragePooling1D", "GlobalAvgPool1D", "Softmax", "TimeDistributed",
})
# ... of which these translators apply it (they read ``ctx.mask``).
APPLIED = frozenset({"SimpleRNN", "LSTM", "GRU", "Bidirectional", "GlobalAveragePooling1D",
                     "GlobalAvgPool1D", "MultiHeadAttention", "Attention",
                     "AdditiveAttention"})
# ... of which these read the masks of their inputs one by one (query, value, key).
PER_INPUT = frozenset({"MultiHeadAttention", "Attention", "AdditiveAttention"})
# Produce a mask of their own (their translators set it).
PRODUCERS = frozenset({"Embedding", "Masking"})
# Compute their values without masks and give none to their outputs (Keras' default for a
# layer that does not support masking).
DROP = frozenset({
    "Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Conv1DTranspose", "SeparableConv1D",
    "DepthwiseConv1D", "MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D",
    "GlobalMaxPooling1D", "GlobalMaxPool1D", "Flatten", "Reshape", "RepeatVector", "Dot",
    "Cropping1D", "ZeroPadding1D", "UpSampling1D", "InputLayer",
})


def _combine(ctx, masks: list, op: str = "And") -> Any:
    if any(m is UNKNOWN for m in masks):
        return UNKNOWN
    out = masks[0]
    for m in masks[1:]:
        if m is not out:
            out = ctx.op(op, out, m)
    return out


def _refuse(ctx, layer, why: str) -> None:
    raise UnsupportedOpsError(
        {f"{layer.class_name} {why}": [layer.name]}, path=ctx.path, kind="use of a Keras mask",
        hint="a mask comes from Embedding(mask_zero=True) or Masking; without applying it the "
             "converted model would compute other numbers for padded sequences")


def mask_for(ctx, layer, inputs: list, kwargs: dict, keras2: bool) -> ir.Value | None:
    """The mask ``layer`` computes with (None if it uses none); refuses what cannot be
    reproduced."""
    name = layer.class_name
    explicit = kwargs.get("mask")
    if isinstance(explicit, list):
        explicit = next((m for m in explicit if m is not None and hasattr(m, "value")), None)
    incoming = [t.mask for t in inputs if t.mask is not None]
    if name == "TimeDistributed" and incoming and \
            layer.config.get("layer", {}).get("class_name") in USERS:
        _refuse(ctx, layer, "passing a mask to the layer it wraps")
    if name not in USERS and not (name in MERGE_USERS_KERAS3 and not keras2):
        return None
    if name in PER_INPUT:
        if any(m is UNKNOWN for m in incoming):
            _refuse(ctx, layer, "receiving a mask through a layer whose mask rule is not known")
        return None
    if explicit is not None and hasattr(explicit, "value"):
        mask: Any = explicit.value
    elif not keras2 and name in RECORDED_KERAS3:
        # Keras 3 records the mask such a layer received; none recorded means it got none
        # (it fills the argument in only for a call with one tensor argument: an RNN given
        # an initial_state runs unmasked).
        return None
    elif incoming:
        mask = _combine(ctx, incoming)
    else:
        return None
    if name in MERGE_USERS_KERAS3:
        _refuse(ctx, layer, "merging masked inputs (Keras 3 replaces masked entries first)")
    if mask is UNKNOWN:
        _refuse(ctx, layer, "receiving a mask through a layer whose mask rule is not known")
    if name not in APPLIED:
        _refuse(ctx, layer, "receiving a mask")
    return mask


def after(ctx, layer, inputs: list, outs: list, keras2: bool) -> None:
    """Give the outputs of ``layer`` the masks Keras would give them (translators of
    producers and users set their own)."""
    name = layer.class_name
    if name in PRODUCERS or name in APPLIED:
        return
    incoming = [t.mask for t in inputs if t.mask is not None]
    if not incoming or name in DROP:
        return
    if name in MERGES:
        mask = _merge_mask(ctx, layer, inputs, outs, keras2)
    elif name in PROPAGATE:
        mask = _combine(ctx, incoming)
    else:
        mask = UNKNOWN
    for t in outs:
        if t.rank >= 3:
            t.mask = mask


def _merge_mask(ctx, layer, inputs: list, outs: list, keras2: bool) -> Any:
    masks = [t.mask for t in inputs]
    if layer.class_name == "Concatenate" and not _last_axis(layer, outs):
        return UNKNOWN  # masks concatenated along the time axis: not followed
    present = [m for m in masks if m is not None]
    if keras2:
        return _combine(ctx, present, "And")
    if len(present) < len(masks):
        return None  # Keras 3: an input without a mask makes the merged mask all true
    return _combine(ctx, present, "Or")


def _last_axis(layer, outs: list) -> bool:
    axis = layer.config.get("axis", -1)
    return bool(outs) and axis % outs[0].rank == outs[0].rank - 1
