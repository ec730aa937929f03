"""EinsumDense and the convolutional LSTMs: small seeded models saved by Keras 3 (.h5 and
.keras) and by Keras 2 (tf_keras .h5), converted, and compared with Keras on seeded inputs."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.errors import ModelportError
from tests.importers.keras.helpers import check, convert_file, inputs_for, randomize, save


def einsum_model(K):
    L = K.layers
    v = K.Input((6,), name="vec")
    s = K.Input((4, 6), name="seq")
    outs = [
        L.EinsumDense("ab,bc->ac", output_shape=5, bias_axes="c", activation="relu",
                      name="plain")(v),
        L.EinsumDense("abc,cd->abd", output_shape=(None, 7), bias_axes="d", name="per_step")(s),
        L.EinsumDense("abc,cde->abde", output_shape=(None, 3, 5), bias_axes="de",
                      activation="tanh", name="heads")(s),
        L.EinsumDense("abc,bce->ae", output_shape=5, bias_axes="e", name="two_contracted")(s),
        L.EinsumDense("...b,bc->...c", output_shape=3, name="ellipsis")(s),
        # Not a dense product: these go through ONNX Einsum.
        L.EinsumDense("abc,bd->adc", output_shape=(3, None), bias_axes="d", name="moved")(s),
        L.EinsumDense("abc,cb->ab", output_shape=(4,), bias_axes="b", name="shared")(s),
    ]
    return K.Model([v, s], outs)


def conv_lstm2d_model(K):
    L = K.layers
    i = K.Input((5, 8, 9, 3), name="frames")
    seq = L.ConvLSTM2D(4, 3, padding="same", return_sequences=True, name="same_seq")(i)
    last, h, c = L.ConvLSTM2D(3, (2, 3), strides=2, padding="valid", go_backwards=True,
                              return_state=True, name="valid_s2_back")(seq)
    head = L.Conv2D(2, 1, name="head")(last)  # takes the channels-first result as it is
    flat = L.Dense(3, name="flat_dense")(L.Flatten(name="flat")(seq))
    alt = L.ConvLSTM2D(2, 3, padding="same", activation="relu",
                       recurrent_activation="hard_sigmoid", use_bias=False,
                       return_sequences=True, go_backwards=True, name="relu_hard")(i)
    return K.Model(i, [seq, last, h, c, head, flat, alt])


def conv_lstm1d_3d_model(K):
    L = K.layers
    s = K.Input((6, 10, 2), name="signal")
    a = L.ConvLSTM1D(3, 3, padding="same", dilation_rate=2, return_sequences=True,
                     name="c1_seq")(s)
    a = L.ConvLSTM1D(2, 3, strides=2, padding="valid", name="c1_last")(a)
    v = K.Input((3, 4, 5, 6, 2), name="volume")
    b = L.ConvLSTM3D(2, 2, padding="same", return_sequences=True, name="c3")(v)
    return K.Model([s, v], [a, b])


def initial_state_model(K):
    L = K.layers
    i = K.Input((4, 6, 6, 2), name="frames")
    h0 = K.Input((6, 6, 3), name="h0")
    c0 = K.Input((6, 6, 3), name="c0")
    y = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True, name="seeded")(
        i, initial_state=[h0, c0])
    return K.Model([i, h0, c0], y)


BUILDERS = {"einsum": einsum_model, "conv_lstm2d": conv_lstm2d_model,
            "conv_lstm1d_3d": conv_lstm1d_3d_model, "initial_state": initial_state_model}
# tf_keras has every one of these layers; nothing is skipped.
_BUILT: dict = {}


def build(case: str, K):
    key = (case, K.__name__)
    if key not in _BUILT:
        model = BUILDERS[case](K)
        randomize(model, seed=sum(map(ord, case)))
        _BUILT[key] = model
    return _BUILT[key]


@pytest.mark.parametrize("case", sorted(BUILDERS))
@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_keras3(case, fmt, k3, model_dir):
    model = build(case, k3)
    path = save(model, str(model_dir / f"extra_{case}_k3.{fmt}"))
    check(model, path)


@pytest.mark.parametrize("case", sorted(BUILDERS))
def test_keras2(case, k2, model_dir):
    model = build(case, k2)
    path = save(model, str(model_dir / f"extra_{case}_k2.h5"))
    check(model, path)


def test_einsum_dense_products_become_matmul(k3, model_dir):
    model = build("einsum", k3)
    import modelport

    ir_model = modelport.load(save(model, str(model_dir / "extra_einsum_ops.h5")))
    ops = [n.op_type for n in ir_model.graph]
    assert ops.count("Einsum") == 2  # "moved" and "shared"
    assert ops.count("MatMul") == 5


def test_conv_lstm_channels_first(k3, model_dir):
    """A channels_first ConvLSTM2D (which TensorFlow's CPU kernels cannot run) against the
    same weights in a channels_last model, with the inputs and outputs transposed."""
    L = k3.layers
    last = build("conv_lstm2d", k3)
    ref = k3.Model(last.inputs, last.get_layer("same_seq").output)
    i = k3.Input((5, 3, 8, 9), name="frames")
    y = L.ConvLSTM2D(4, 3, padding="same", return_sequences=True, data_format="channels_first",
                     name="cf")(i)
    cf = k3.Model(i, y)
    cf.get_layer("cf").set_weights(last.get_layer("same_seq").get_weights())
    path = save(cf, str(model_dir / "extra_cf.keras"))
    from tests.oracles import assert_close, run_onnx

    x = inputs_for(ref)[0]
    want = np.asarray(ref(x, training=False)).transpose(0, 1, 4, 2, 3)
    got = run_onnx(convert_file(path), {"frames": x.transpose(0, 1, 4, 2, 3)})
    assert_close(next(iter(got.values())), want, rtol=1e-3, atol=1e-4, name="cf")


def _dynamic_time_model(K, model_dir):
    i = K.Input((None, 6, 6, 2), name="frames")
    y = K.layers.ConvLSTM2D(2, 3, name="lstm")(i)
    return save(K.Model(i, y), str(model_dir / "extra_dynamic_time.h5"))


def test_dynamic_timesteps_is_a_clear_error(k3, model_dir):
    path = _dynamic_time_model(k3, model_dir)
    with pytest.raises(ModelportError, match="needs a fixed number of timesteps"):
        convert_file(path)


def test_dynamic_timesteps_cli_exit_2_and_input_override(k3, model_dir, capsys):
    from modelport.cli import main

    path = _dynamic_time_model(k3, model_dir)
    out = str(model_dir / "extra_dynamic_time.onnx")
    with pytest.raises(SystemExit) as exc:
        main(["convert", path, "-o", out, "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "fixed number of timesteps" in err
    # Giving the time axis a size makes it convertible.
    code = 0
    try:
        main(["convert", path, "-o", out, "--quiet", "--input", "frames:N,4,6,6,2"])
    except SystemExit as e:
        code = e.code
    assert code in (0, None), capsys.readouterr().err


def test_stateful_is_refused(k2, model_dir):
    i = k2.Input(batch_shape=(2, 3, 6, 6, 2), name="frames")
    y = k2.layers.ConvLSTM2D(2, 3, stateful=True, name="lstm")(i)
    path = save(k2.Model(i, y), str(model_dir / "extra_stateful.h5"))
    with pytest.raises(ModelportError, match="stateful ConvLSTM2D"):
        convert_file(path)


def test_masked_input_is_refused(k3, model_dir):
    i = k3.Input((4, 6, 2), name="signal")
    m = k3.layers.Masking(0.0, name="pad")(i)
    y = k3.layers.ConvLSTM1D(2, 3, name="lstm")(m)
    path = save(k3.Model(i, y), str(model_dir / "extra_masked.keras"))
    with pytest.raises(ModelportError, match="(?i)mask"):
        convert_file(path)
