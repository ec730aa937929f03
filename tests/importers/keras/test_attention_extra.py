"""MultiHeadAttention over other attention_axes, Dot on rank-4+ inputs and AdditiveAttention
(scale, causal, scores, Keras masks and explicit masks): built here with seeded weights, saved
by Keras 3 (.h5 and .keras) and Keras 2 (tf_keras .h5), converted, compared with Keras."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.errors import ModelportError
from tests.importers.keras.helpers import check, convert_file, keras_outputs, randomize, save

VERSIONS = ["k3_h5", "k3_keras", "k2_h5"]
T = 7


def _keras(version, k3, k2):
    return k2 if version == "k2_h5" else k3


def _path(model_dir, name, version):
    return str(model_dir / f"{name}_{version}.{'keras' if version == 'k3_keras' else 'h5'}")


def mha_axes(K):
    L = K.layers
    MHA = L.MultiHeadAttention
    img = K.Input((3, 4, 6), name="img")
    other = K.Input((2, 5, 6), name="other")
    rows = K.Input((3, 5, 5), name="rows")  # shares axis 1 with img (a batch axis for (2,))
    vol = K.Input((2, 3, 4, 5), name="vol")
    seq = K.Input((5, 6), name="seq")
    key = L.Dense(7, name="key_proj")(rows)
    scored, scores = MHA(2, 3, attention_axes=(1, 3), name="mha_vol_scores")(
        vol, vol, return_attention_scores=True)
    outs = [
        MHA(2, 3, attention_axes=(1, 2), name="mha_hw")(img, other),
        MHA(2, 3, name="mha_default_axes")(img, other),  # all inner axes: (1, 2)
        MHA(2, 3, value_dim=4, attention_axes=(2,), name="mha_w_key")(img, rows, key=key),
        MHA(3, 2, output_shape=5, use_bias=False, attention_axes=(1, 2), name="mha_out5")(
            img, img),
        MHA(2, 2, output_shape=(2, 3), attention_axes=(2,), name="mha_out23")(img, img),
        # Negative axes: H in Keras 3 (rank + axis), W in Keras 2 (projected rank + axis).
        MHA(2, 3, attention_axes=(-3,), name="mha_negative")(img, img),
        scored, scores,
        MHA(2, 3, attention_axes=(1,), name="mha_seq")(seq, seq),
        MHA(2, 3, output_shape=(2, 3), name="mha_seq_out23")(seq, seq),
    ]
    o, s = MHA(2, 3, attention_axes=(2, 1), name="mha_swapped_scores")(
        img, other, return_attention_scores=True)
    outs += [o, s]
    return K.Model([img, other, rows, vol, seq], outs)


def dots(K):
    L = K.layers
    a = K.Input((3, 4, 5), name="a")
    b = K.Input((6, 5), name="b")
    c = K.Input((3, 2, 2), name="c")
    e = K.Input((4,), name="e")
    f = K.Input((2, 2, 3), name="f")
    h = K.Input((2, 5), name="h")
    outs = [
        L.Dot(axes=(3, 2), name="dot_43")([a, b]),
        L.Dot(axes=1, normalize=True, name="cos_44")([a, c]),
        L.Dot(axes=-1, name="dot_last")([a, h]),
        L.Dot(axes=(1, 2), name="dot_24")([e, a]),
        L.Dot(axes=(1, 3), normalize=True, name="cos_mixed")([a, f]),
        L.Dot(axes=(2, 3), name="dot_34")([b, a]),
    ]
    return K.Model([a, b, c, e, f, h], outs)


def additive(K):
    L = K.layers
    AA = L.AdditiveAttention
    q = K.Input((5, 4), name="q")
    v = K.Input((6, 4), name="v")
    k = K.Input((6, 4), name="k")
    v3 = K.Input((6, 3), name="v3")  # another value width (only without scale)
    o, s = AA(name="add_scores")([q, k], return_attention_scores=True)
    oc, sc = AA(use_scale=False, name="add_causal_cross")(
        [q, v], use_causal_mask=True, return_attention_scores=True)
    outs = [AA(name="add")([q, v]),
            AA(use_scale=False, name="add_noscale_key")([q, v3, k]),
            o, s,
            AA(name="add_causal_self")([q, q], use_causal_mask=True),
            oc, sc]
    return K.Model([q, v, k, v3], outs)


def _ids() -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    tok = rng.integers(1, 11, size=(5, T)).astype(np.int32)
    tok[0, 4:] = 0          # padded at the end
    tok[1, :3] = 0          # padded at the start
    tok[2, 2:4] = 0         # a hole in the middle
    tok[3, :] = 0           # nothing left
    other = tok[:, 2:].copy()
    other[4, :] = [3, 0, 0, 5, 6]
    other[0, :] = [0, 2, 9, 0, 0]
    return [tok, other]


def additive_masked(K, masked=True):
    L = K.layers
    AA = L.AdditiveAttention
    tok = K.Input((T,), dtype="int32", name="tokens")
    other = K.Input((T - 2,), dtype="int32", name="other")
    eq = L.Embedding(11, 6, mask_zero=masked, name="emb_q")(tok)
    ev = L.Embedding(11, 6, mask_zero=masked, name="emb_v")(other)
    o, s = AA(name="add_scores")([eq, ev], return_attention_scores=True)
    self_att = AA(use_scale=False, name="add_self")([eq, eq])
    outs = [AA(name="add_cross")([eq, ev]), o, s, self_att,
            AA(name="add_causal")([eq, eq], use_causal_mask=True)]
    return K.Model([tok, other], outs)


def additive_then_lstm(K, masked=True):
    L = K.layers
    tok = K.Input((T,), dtype="int32", name="tokens")
    e = L.Embedding(11, 6, mask_zero=masked, name="emb")(tok)
    att = L.AdditiveAttention(name="add")([e, e])
    # The output keeps the query's mask: the LSTM skips the padded steps.
    return K.Model(tok, [att, L.LSTM(3, name="lstm_after")(att)])


def additive_explicit_mask(K, masked=True):
    L = K.layers
    tok = K.Input((T,), dtype="int32", name="tokens")
    other = K.Input((T - 2,), dtype="int32", name="other")
    qm = K.Input((T,), dtype="bool", name="q_mask")
    vm = K.Input((T - 2,), dtype="bool", name="v_mask")
    eq = L.Embedding(11, 6, name="emb_q")(tok)
    ev = L.Embedding(11, 6, name="emb_v")(other)
    if not masked:
        return K.Model([tok, other], L.AdditiveAttention(name="add")([eq, ev]))
    out = L.AdditiveAttention(name="add")([eq, ev], mask=[qm, vm])
    return K.Model([tok, other, qm, vm], out)


def _build(fn, K, seed, **kw):
    model = fn(K, **kw)
    randomize(model, seed=seed)
    return model


@pytest.mark.parametrize("version", VERSIONS)
def test_multi_head_attention_axes(version, k3, k2, model_dir):
    model = _build(mha_axes, _keras(version, k3, k2), 11)
    path = save(model, _path(model_dir, "mha_axes", version))
    check(model, path)


@pytest.mark.parametrize("version", VERSIONS)
def test_dot_high_rank(version, k3, k2, model_dir):
    model = _build(dots, _keras(version, k3, k2), 12)
    path = save(model, _path(model_dir, "dots", version))
    check(model, path)


@pytest.mark.parametrize("version", VERSIONS)
def test_additive_attention(version, k3, k2, model_dir):
    model = _build(additive, _keras(version, k3, k2), 13)
    path = save(model, _path(model_dir, "additive", version))
    onnx_path = check(model, path)
    assert onnx_path.endswith(".onnx")


def _differs(K, fn, model, feeds, plain_feeds=None):
    """Keras gives other numbers without the mask: the test proves it is applied."""
    plain = fn(K, masked=False)
    plain.set_weights(model.get_weights())
    unmasked = keras_outputs(plain, plain_feeds or feeds)
    masked = keras_outputs(model, feeds)
    assert len(masked) == len(unmasked)
    assert any(not np.allclose(a, b, atol=1e-3) for a, b in zip(masked, unmasked))


def _explicit_feeds() -> list[np.ndarray]:
    tok, other = _ids()
    return [tok, other, tok != 0, other != 0]


@pytest.mark.parametrize("version", VERSIONS)
def test_additive_attention_keras_masks(version, k3, k2, model_dir):
    K = _keras(version, k3, k2)
    model = _build(additive_masked, K, 14)
    path = save(model, _path(model_dir, "additive_masked", version))
    check(model, path, _ids())
    _differs(K, additive_masked, model, _ids())


@pytest.mark.parametrize("version", VERSIONS)
def test_additive_attention_explicit_mask(version, k3, k2, model_dir):
    K = _keras(version, k3, k2)
    model = _build(additive_explicit_mask, K, 15)
    path = save(model, _path(model_dir, "additive_explicit", version))
    check(model, path, _explicit_feeds())
    _differs(K, additive_explicit_mask, model, _explicit_feeds(), _ids())


@pytest.mark.parametrize("version", VERSIONS)
def test_additive_attention_mask_reaches_a_later_lstm(version, k3, k2, model_dir):
    K = _keras(version, k3, k2)
    model = _build(additive_then_lstm, K, 16)
    path = save(model, _path(model_dir, "additive_lstm", version))
    feeds = [_ids()[0]]
    _differs(K, additive_then_lstm, model, feeds)
    # Keras 3 records the mask it hands on through a ConvertToTensor operation.
    check(model, path, feeds)


def test_general_attention_axes_with_a_mask_is_refused(k3, model_dir):
    L = k3.layers
    img = k3.Input((3, 4, 6), name="img")
    am = k3.Input((3, 4, 3, 4), dtype="bool", name="attention_mask")
    out = L.MultiHeadAttention(2, 3, attention_axes=(1, 2), name="mha")(
        img, img, attention_mask=am)
    model = k3.Model([img, am], out)
    path = save(model, str(model_dir / "mha_axes_masked.h5"))
    with pytest.raises(ModelportError, match="attention_axes=.* with a mask"):
        convert_file(path)
