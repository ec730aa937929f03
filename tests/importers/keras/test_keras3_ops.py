"""Keras 3 operations in functional graphs (ops.reshape, ops.mean, x[:, 0], ...), saved in
.keras archives (Keras 3 cannot read such .h5 files back itself) and compared with Keras."""

from __future__ import annotations

import pytest

from modelport.errors import ModelportError
from tests.importers.keras.helpers import check, convert_file, randomize, save


def sequence_ops(K):
    from keras import ops

    L = K.layers
    i = K.Input((6, 4), name="x")
    h = L.Dense(5, name="dense")(i)
    outs = [
        ops.reshape(h, (-1, 30)),                       # the op, not the Reshape layer
        ops.transpose(h, (0, 2, 1)),
        ops.mean(h, axis=1),
        ops.sum(h, axis=-1, keepdims=True),
        ops.max(h, axis=[1, 2]),
        ops.expand_dims(ops.min(h, axis=1), 1),
        ops.squeeze(ops.sum(h, axis=1, keepdims=True), axis=1),
        ops.matmul(h, ops.transpose(h, (0, 2, 1))),
        ops.cast(h > 0.1, "float32"),
        ops.clip(h, -0.2, 0.3),
        ops.where(h > 0, h, h * 0.1),
        ops.stack([ops.mean(h, axis=1), ops.max(h, axis=1)], axis=1),
        ops.concatenate([h, i], axis=-1),
        ops.softmax(h, axis=1),
    ]
    return K.Model(i, outs)


def indexing(K):
    L = K.layers
    i = K.Input((6, 4, 5), name="x")
    h = L.Conv2D(3, 1, name="conv")(i)  # channels-first inside: indexing sees Keras order
    outs = [h[:, 0], h[..., -1], h[:, 1:5:2, None, ::-1], h[:, None], h[:, -3:, 2],
            i[:, 2:, :, 1:4], h[:, :, -1, :]]
    return K.Model(i, outs)


@pytest.mark.parametrize("build", [sequence_ops, indexing])
def test_keras3_ops_match_keras(build, k3, model_dir):
    model = build(k3)
    randomize(model, seed=5)
    path = save(model, str(model_dir / f"ops_{build.__name__}.keras"))
    check(model, path)


def test_unsupported_index_is_refused(k3, model_dir):
    from keras import ops

    i = k3.Input((6, 4), name="x")
    idx = k3.Input((2,), dtype="int32", name="idx")
    model = k3.Model([i, idx], ops.take(i, idx, axis=1))
    path = save(model, str(model_dir / "ops_take.keras"))
    with pytest.raises(ModelportError, match="Take"):
        convert_file(path)
