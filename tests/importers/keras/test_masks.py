"""Keras masks (Embedding(mask_zero=True), Masking): recurrent layers skip padded steps and
GlobalAveragePooling1D averages the real ones, wherever the padding is; layers whose use of a
mask modelport does not reproduce are refused, never converted as if nothing were padded.

Inputs are padded on purpose: at the end, at the start (Keras' pad_sequences default), in the
middle, and one sequence entirely padded."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.errors import UnsupportedOpsError
from tests.importers.keras.helpers import check, convert_file, randomize, save

T = 7


def _ids(batch: int = 5) -> np.ndarray:
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 11, size=(batch, T)).astype(np.int32)
    ids[0, 4:] = 0          # padded at the end
    ids[1, :3] = 0          # padded at the start
    ids[2, 2:4] = 0         # a hole in the middle
    ids[3, :] = 0           # nothing left
    return ids


def _features(batch: int = 5) -> np.ndarray:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((batch, T, 3)).astype(np.float32)
    x[0, 5:] = 0.0
    x[1, :2] = 0.0
    x[2, 3] = 0.0
    x[3, 1] = [0.0, 0.5, 0.0]  # partly zero: not masked
    return x


def embedding_rnns(K, masked=True):
    L = K.layers
    tok = K.Input((T,), dtype="int32", name="tokens")
    e = L.Embedding(11, 6, mask_zero=masked, name="emb")(tok)
    d = L.Dense(5, activation="tanh", name="dense_keeps_mask")(e)
    outs = [
        L.LSTM(4, name="lstm")(e),
        L.GRU(3, return_sequences=True, name="gru_seq")(d),
        L.SimpleRNN(3, return_sequences=True, go_backwards=True, name="srnn_back")(e),
        L.GRU(3, reset_after=False, name="gru_v1")(d),
    ]
    seq, h, c = L.LSTM(3, return_sequences=True, return_state=True, name="lstm_state")(e)
    outs += [seq, h, c]
    # A fully padded sequence keeps its initial state.
    outs.append(L.GRU(3, name="gru_initial_state")(e, initial_state=[h]))
    stacked = L.LSTM(4, return_sequences=True, name="lstm_1")(e)
    outs.append(L.LSTM(2, name="lstm_2_after_masked_sequence")(stacked))
    outs.append(L.GlobalAveragePooling1D(name="masked_mean")(d))
    return K.Model(tok, outs)


def bidirectional(K, masked=True):
    L = K.layers
    tok = K.Input((T,), dtype="int32", name="tokens")
    e = L.Embedding(11, 6, mask_zero=masked, name="emb")(tok)
    a = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi_seq")(e)
    b = L.Bidirectional(L.GRU(2), merge_mode="sum", name="bi_last")(a)
    return K.Model(tok, [a, b])


def masking_layer(K, masked=True):
    L = K.layers
    x = K.Input((T, 3), name="x")
    m = (L.Masking(0.0, name="masking") if masked else L.Activation("linear", name="masking"))(x)
    a = L.LSTM(4, return_sequences=True, name="lstm")(m)
    b = L.GRU(3, go_backwards=True, name="gru_back")(m)
    c = L.GlobalAveragePooling1D(name="mean")(L.Dense(2, name="dense")(m))
    return K.Model(x, [m, a, b, c])


def attention(K, masked=True):
    L = K.layers
    tok = K.Input((T,), dtype="int32", name="tokens")
    other = K.Input((T - 2,), dtype="int32", name="other")
    # One embedding per attention layer: Keras 3's MultiHeadAttention deletes the masks of
    # the tensors it is given, so a second consumer of the same tensor would see none.
    def embed(ids, name):
        return L.Embedding(11, 8, mask_zero=masked, name=name)(ids)

    e = embed(tok, "emb")
    self_att = L.MultiHeadAttention(2, 4, name="mha_self")(e, e)
    cross = L.MultiHeadAttention(2, 3, value_dim=5, name="mha_cross")(
        embed(tok, "emb_q"), embed(other, "emb_v"))
    dot = L.Attention(name="dot_attention")([embed(tok, "emb_q2"), embed(other, "emb_v2")])
    # The attention output keeps the query's mask: an LSTM after it skips the padding.
    last = L.LSTM(3, name="lstm_after_attention")(self_att)
    return K.Model([tok, other], [self_att, cross, dot, last])


def _ids_pair() -> list[np.ndarray]:
    other = _ids()[:, 2:].copy()
    other[4, :] = [3, 0, 0, 5, 6]
    return [_ids(), other]


CASES = {"embedding_rnns": (embedding_rnns, _ids), "bidirectional": (bidirectional, _ids),
         "masking_layer": (masking_layer, _features), "attention": (attention, _ids_pair)}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("version", ["k3_h5", "k3_keras", "k2_h5"])
def test_masked_model_matches_keras(case, version, k3, k2, model_dir):
    K = k2 if version == "k2_h5" else k3
    build, feed = CASES[case]
    model = build(K)
    randomize(model, seed=7)
    ext = "keras" if version == "k3_keras" else "h5"
    path = save(model, str(model_dir / f"mask_{case}_{version}.{ext}"))
    feeds = feed()
    feeds = feeds if isinstance(feeds, list) else [feeds]
    check(model, path, feeds)
    # The padding matters for these inputs: without the mask Keras gives other numbers.
    plain = build(K, masked=False)
    plain.set_weights(model.get_weights())
    x = feeds if len(feeds) > 1 else feeds[0]
    unmasked = [np.asarray(o) for o in plain(x, training=False)]
    masked = [np.asarray(o) for o in model(x, training=False)]
    assert any(not np.allclose(a, b, atol=1e-3) for a, b in zip(masked, unmasked))


def keras3_multiply_of_masked(K):
    L = K.layers
    tok = K.Input((T,), dtype="int32", name="tokens")
    a = L.Embedding(11, 4, mask_zero=True, name="a")(tok)
    b = L.Embedding(11, 4, mask_zero=True, name="b")(tok)
    return K.Model(tok, L.LSTM(2, name="lstm")(L.Multiply(name="product")([a, b])))


def keras2_unknown_mask_rule(K):
    L = K.layers
    tok = K.Input((T,), dtype="int32", name="tokens")
    e = L.Embedding(11, 4, mask_zero=True, name="emb")(tok)
    return K.Model(tok, L.LSTM(2, name="lstm")(L.Permute((1, 2), name="permute")(e)))


def conv_then_lstm(K):
    L = K.layers
    tok = K.Input((T,), dtype="int32", name="tokens")
    e = L.Embedding(11, 8, mask_zero=True, name="emb")(tok)
    c = L.Conv1D(4, 3, padding="same", name="conv")(e)  # Keras drops the mask here
    return K.Model(tok, L.LSTM(3, name="lstm")(c))


def test_keras3_merge_that_uses_masks_is_refused(k3, model_dir):
    path = save(keras3_multiply_of_masked(k3), str(model_dir / "mask_multiply_k3.h5"))
    with pytest.raises(UnsupportedOpsError, match="Multiply merging masked inputs"):
        convert_file(path)


def test_mask_through_a_layer_with_unknown_mask_rule_is_refused(k2, model_dir):
    path = save(keras2_unknown_mask_rule(k2), str(model_dir / "mask_permute_k2.h5"))
    with pytest.raises(UnsupportedOpsError, match="LSTM receiving a mask through a layer"):
        convert_file(path)


@pytest.mark.parametrize("version", ["k3", "k2"])
def test_a_layer_that_drops_the_mask_stops_it(version, k3, k2, model_dir):
    K = k2 if version == "k2" else k3
    model = conv_then_lstm(K)
    randomize(model, seed=2)
    path = save(model, str(model_dir / f"mask_conv_{version}.h5"))
    check(model, path, [_ids()])
