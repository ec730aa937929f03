"""Build MXNet test models with real MXNet 1.9.1 (run with the MXNet environment's python).

    .venv-mxnet/bin/python tests/oracles/mxnet_build.py OUT_DIR NAME [NAME...]

For each NAME writes ``NAME-symbol.json``, ``NAME-0000.params`` (every parameter and
auxiliary state random, seeded) and ``NAME-io.npz`` (``in:VAR`` seeded inputs, ``out:K`` the
heads MXNet computes with is_train=False). ``legacy:PATH:data=2,20`` builds random params and
outputs for an existing symbol file ``PREFIX-symbol.json`` (written as ``PREFIX-0000.params``
and ``PREFIX-io.npz`` in OUT_DIR; the symbol itself is not rewritten).
``zoo:NAME:SIZE`` exports a Gluon model-zoo net (pretrained=False, randomised).
This file imports only MXNet and NumPy.
"""

import json
import os
import subprocess
import sys
import zlib

import mxnet as mx
import numpy as np

S = mx.sym


def data(name="data"):
    return S.Variable(name)


# -- symbol-API models per op family: name -> (symbol, {input: shape}, {input: "int"|"pos"}) ----
def conv2d():
    x = data()
    y = S.Convolution(x, num_filter=8, kernel=(3, 3), pad=(1, 1), name="conv1")
    y = S.BatchNorm(y, fix_gamma=False, eps=1e-5, name="bn1")
    y = S.Activation(y, act_type="relu", name="relu1")
    y = S.Convolution(y, num_filter=8, kernel=(3, 3), stride=(2, 2), dilate=(2, 2), pad=(2, 2),
                      num_group=4, no_bias=True, name="conv2")
    y = S.Pooling(y, kernel=(3, 3), stride=(2, 2), pool_type="max",
                  pooling_convention="full", name="pool1")
    y = S.Pooling(y, kernel=(2, 2), stride=(2, 2), pad=(1, 1), pool_type="avg",
                  pooling_convention="full", name="pool2")
    y = S.Flatten(y, name="flat")
    y = S.FullyConnected(y, num_hidden=10, name="fc")
    return S.SoftmaxOutput(y, name="softmax"), {"data": (2, 3, 17, 19)}


def conv_nd():
    x = data()
    a = S.Convolution(x, num_filter=4, kernel=(3,), stride=(2,), pad=(1,), name="c1d")
    a = S.Pooling(a, kernel=(3,), stride=(2,), pool_type="avg", name="p1d")
    v = data("vol")
    b = S.Convolution(v, num_filter=4, kernel=(2, 3, 3), pad=(0, 1, 1), dilate=(1, 2, 1),
                      name="c3d")
    b = S.Pooling(b, kernel=(2, 2, 2), stride=(2, 2, 2), pool_type="max", name="p3d")
    return S.Group([a, b]), {"data": (2, 3, 20), "vol": (1, 2, 6, 9, 8)}


def deconv():
    x = data()
    a = S.Deconvolution(x, num_filter=4, kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 1),
                        name="up1")
    b = S.Deconvolution(x, num_filter=6, kernel=(4, 4), stride=(2, 2), target_shape=(14, 11),
                        no_bias=False, name="up2")
    c = S.Deconvolution(x, num_filter=4, kernel=(3, 3), stride=(3, 3), pad=(1, 1),
                        adj=(1, 0), num_group=2, name="up3")
    return S.Group([a, b, c]), {"data": (1, 4, 7, 6)}


def pooling():
    x = data()
    outs = []
    i = 0
    for conv in ("valid", "full"):
        for kind in ("max", "avg", "sum", "lp"):
            for pad in ((0, 0), (1, 1)):
                kw = dict(kernel=(3, 3), stride=(2, 2), pad=pad, pool_type=kind,
                          pooling_convention=conv, name=f"pool{i}")
                if kind == "lp":
                    kw["p_value"] = 2
                outs.append(S.Pooling(x, **kw))
                i += 1
    outs.append(S.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg",
                          count_include_pad=False, pooling_convention="full", name="avg_nopad"))
    for kind in ("max", "avg", "sum"):
        outs.append(S.Pooling(x, kernel=(1, 1), global_pool=True, pool_type=kind,
                              name=f"global_{kind}"))
    return S.Group(outs), {"data": (2, 3, 10, 9)}


def norms():
    x = data()
    a = S.BatchNorm(x, name="bn_fixed")  # fix_gamma=True by default
    b = S.BatchNorm(x, fix_gamma=False, use_global_stats=True, name="bn_global")
    t = data("seq")
    c = S.BatchNorm(t, fix_gamma=False, axis=-1, name="bn_last")
    d = S.LayerNorm(t, name="ln")
    e = S.LayerNorm(t, axis=1, name="ln_axis1")
    f = S.InstanceNorm(x, name="inorm")
    g = [S.L2Normalization(x, mode=m, name=f"l2_{m}") for m in ("instance", "channel",
                                                                 "spatial")]
    return S.Group([a, b, c, d, e, f, *g]), {"data": (2, 4, 5, 6), "seq": (2, 3, 5)}


def activations():
    x = data()
    outs = [S.Activation(x, act_type=t, name=f"act_{t}") for t in
            ("relu", "sigmoid", "tanh", "softrelu", "softsign")]
    outs += [S.LeakyReLU(x, act_type="leaky", slope=0.1, name="leaky"),
             S.LeakyReLU(x, act_type="elu", slope=0.7, name="elu"),
             S.LeakyReLU(x, act_type="selu", name="selu"),
             S.LeakyReLU(x, act_type="gelu", name="gelu"),
             S.LeakyReLU(x, act_type="rrelu", name="rrelu")[0],  # (its mask is output 1)
             S.LeakyReLU(x, act_type="prelu", name="prelu"),
             S.softmax(x, axis=1, name="softmax_c"),
             S.softmax(x, temperature=2.0, name="softmax_t"),
             S.log_softmax(x, name="logsoftmax"),
             S.SoftmaxActivation(x, name="smact"),
             S.SoftmaxActivation(x, mode="channel", name="smact_c"),
             S.SoftmaxOutput(x, multi_output=True, name="smo_multi"),
             S.SoftmaxOutput(x, preserve_shape=True, name="smo_keep")]
    return S.Group(outs), {"data": (2, 3, 4, 5)}


def shapes():
    x = data()
    outs = [S.Reshape(x, shape=(0, -1), name="r0"),
            S.Reshape(x, shape=(-2,), name="r2"),
            S.Reshape(x, shape=(-3, -2), name="r3"),
            S.Reshape(x, shape=(0, -4, 2, -1, -2), name="r4"),
            S.Reshape(x, shape=(-1, 0), reverse=True, name="rrev"),
            S.Reshape(x, shape=(2, 0, 0, -1), name="rmix"),
            S.transpose(x, axes=(0, 2, 3, 1), name="tr"),
            S.transpose(x, name="tr_rev"),
            S.expand_dims(x, axis=2, name="ed"),
            S.squeeze(S.slice_axis(x, axis=2, begin=0, end=1), axis=2, name="sq"),
            S.Concat(x, x * 2, dim=1, name="cat"),
            S.slice(x, begin=(None, 1, 0), end=(None, 4, -1), step=(1, 2, 1), name="sl"),
            S.slice(x, begin=(0, None, 3), end=(2, None, None), step=(1, -1, 1), name="slneg"),
            S.slice_axis(x, axis=-1, begin=1, end=None, name="sla"),
            S.slice_like(x, S.Variable("like"), axes=(2, 3), name="slike"),
            S.clip(x, a_min=-0.5, a_max=0.7, name="clip"),
            S.Dropout(x, p=0.5, name="drop"),
            S.Flatten(x, name="flat"),
            S.Pad(x, mode="constant", pad_width=(0, 0, 0, 0, 1, 2, 2, 1), constant_value=0.5,
                  name="padc"),
            S.Pad(x, mode="edge", pad_width=(0, 0, 0, 0, 1, 2, 2, 1), name="pade"),
            S.Pad(x, mode="reflect", pad_width=(0, 0, 0, 0, 1, 2, 2, 1), name="padr"),
            S.tile(x, reps=(1, 2, 1, 3), name="tile"),
            S.repeat(x, repeats=2, axis=3, name="rep"),
            S.stack(x, x, axis=1, name="stk"),
            S.reshape_like(x, S.Variable("like2"), name="rlike"),
            S.UpSampling(x, scale=2, sample_type="nearest", name="upn"),
            S.contrib.BilinearResize2D(x, height=9, width=11, name="bil"),
            S.contrib.AdaptiveAvgPooling2D(x, output_size=(2, 3), name="aap")]
    parts = S.SliceChannel(x, num_outputs=3, axis=1, name="split")
    outs += [parts[0], parts[2]]
    sq = S.split(x, num_outputs=6, axis=3, squeeze_axis=True, name="split_sq")
    outs.append(sq[5])
    return S.Group(outs), {"data": (2, 6, 4, 6), "like": (1, 1, 3, 2), "like2": (6, 4, 12)}


def maths():
    x, y, z = data("a"), data("b"), data("c")
    outs = [S.elemwise_add(x, y, name="eadd"), S.elemwise_sub(x, y, name="esub"),
            S.elemwise_mul(x, y, name="emul"), S.elemwise_div(x, y, name="ediv"),
            S.broadcast_add(x, z, name="badd"), S.broadcast_sub(x, z, name="bsub"),
            S.broadcast_mul(x, z, name="bmul"), S.broadcast_div(x, z, name="bdiv"),
            S.broadcast_maximum(x, z, name="bmax"), S.broadcast_minimum(x, z, name="bmin"),
            S.broadcast_power(S.abs(x), z, name="bpow"), S.broadcast_mod(x, z, name="bmod"),
            S.broadcast_greater(x, z, name="bgt"), S.broadcast_lesser_equal(x, z, name="ble"),
            S.broadcast_equal(S.round(x), S.round(z), name="beq"),
            S.broadcast_not_equal(S.round(x), S.round(z), name="bne"),
            S.broadcast_hypot(x, z, name="bhyp"),
            x + 1.5, x - 0.5, 2.0 - x, x * 3.0, x / 4.0, 2.0 / y, x ** 2.0, 2.0 ** x,
            S.maximum(x, 0.1), S.minimum(x, 0.2), x > 0.1, x <= -0.2, x == 0.0, x % 0.7,
            S.add_n(x, y, x, name="addn"),
            S.sum(x, axis=1, name="sum1"), S.mean(x, axis=(1, 2), keepdims=True, name="mean"),
            S.max(x, axis=2, name="max2"), S.min(x, name="minall"),
            S.sum(x, axis=1, exclude=True, name="sumex"), S.prod(x, axis=0, name="prod"),
            S.norm(x, axis=1, name="norm1"), S.norm(x, name="normall"),
            S.argmax(x, axis=1, name="argmax"), S.argmin(x, axis=2, keepdims=True, name="argmin"),
            S.exp(x), S.log(S.abs(x) + 1), S.sqrt(S.abs(x)), S.rsqrt(S.abs(x) + 1),
            S.square(x), S.negative(x), S.reciprocal(y), S.sign(x), S.floor(x * 3),
            S.ceil(x * 3), S.round(x * 3), S.fix(x * 3), S.sin(x), S.erf(x),
            S.Cast(x * 4, dtype="int32", name="cast"),
            S.where(x > 0, x, y, name="where"),
            S.zeros_like(x, name="zl"), S.ones_like(x, name="ol"),
            S.relu(x, name="relu_op"), S.sigmoid(x, name="sigmoid_op")]
    m1, m2 = data("m1"), data("m2")
    outs += [S.dot(m1, m2, name="dot"), S.dot(m1, m1, transpose_b=True, name="dot_tb"),
             S.batch_dot(x, y, transpose_b=True, name="bdot"),
             S.batch_dot(x, y, transpose_a=True, name="bdot_ta")]
    return S.Group(outs), {"a": (2, 3, 4), "b": (2, 3, 4), "c": (1, 3, 1), "m1": (5, 6),
                           "m2": (6, 7)}


def indexing():
    x = data()
    idx = data("idx")
    emb = S.Embedding(idx, input_dim=10, output_dim=5, name="emb")
    outs = [emb, S.take(x, idx, axis=1, name="take"),
            S.take(x, idx - 2, mode="wrap", name="take_wrap"),
            S.pick(x, S.slice_axis(idx, axis=1, begin=0, end=1).reshape((-1,)) * 0 + 1,
                   axis=1, name="pick"),
            S.topk(x, axis=1, k=2, name="topk_i"),
            S.topk(x, axis=1, k=2, ret_typ="value", name="topk_v")]
    fc = S.FullyConnected(S.Reshape(emb, shape=(0, 0, 5)), num_hidden=3, flatten=False,
                          name="fc_nf")
    outs.append(fc)
    return S.Group(outs), {"data": (3, 7), "idx": (3, 4)}


def upsample_bilinear():
    x = data()
    w = S.Variable("up_weight")
    return S.UpSampling(x, w, scale=2, sample_type="bilinear", num_filter=3,
                        name="up"), {"data": (1, 3, 5, 4)}


def extras():
    x, c = data(), data("cond")
    outs = [S.shape_array(x, name="shp"), S.BlockGrad(x, name="bg"), S.identity(x, name="ident"),
            S.argmax(x, name="argmax_all"), S.where(c, x, x * 2, name="where_rows"),
            S.squeeze(S.expand_dims(x, axis=0), name="sq_all"),
            S.Deconvolution(S.Reshape(x, shape=(1, 4, -1)), num_filter=2, kernel=(3,),
                            stride=(2,), no_bias=False, name="deconv1d"),
            S.UpSampling(x.reshape((1, 4, 3, 5)), x.reshape((1, 4, 3, 5)) * 3, scale=2,
                         num_args=2, sample_type="nearest", multi_input_mode="sum",
                         name="up_sum"),
            S.contrib.BilinearResize2D(x.reshape((1, 4, 3, 5)), height=7, width=9,
                                       align_corners=False, name="bil_half"),
            S.contrib.AdaptiveAvgPooling2D(x.reshape((1, 4, 3, 5)), output_size=(2, 2),
                                           name="aap_uneven"),
            S.log_softmax(x, axis=0, name="lsm0"), S.swapaxes(x, dim1=0, dim2=1, name="swap"),
            S.Activation(S.Pooling(x.reshape((1, 4, 3, 5)), kernel=(2, 3), stride=(1, 2),
                                   pad=(1, 1), pool_type="avg", count_include_pad=False,
                                   name="avg_nopad_valid"), act_type="tanh", name="act_after")]
    topk = S.topk(x, k=2, ret_typ="both", is_ascend=True, name="topk_both")
    outs += [topk[0], topk[1]]
    return S.Group(outs), {"data": (4, 15), "cond": (4,)}


MODELS = {f.__name__: f for f in (extras, conv2d, conv_nd, deconv, pooling, norms, activations, shapes,
                                 maths, indexing, upsample_bilinear)}
INT_INPUTS = {"idx": 7}


def random_param(rng, name, shape):
    if name.endswith(("_var", "moving_var", "running_var", "_gamma")):
        return rng.uniform(0.5, 1.5, shape)
    if name.endswith(("_beta", "_bias", "_mean", "moving_mean", "running_mean")):
        return rng.uniform(-0.5, 0.5, shape)
    fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return rng.standard_normal(shape) / np.sqrt(max(fan, 1))


def save_model(out_dir, name, sym, shapes, seed=0, save_symbol=True):
    rng = np.random.default_rng(zlib.crc32(name.encode()) + seed)
    arg_shapes, _, aux_shapes = sym.infer_shape_partial(**shapes)
    params = {}
    arg_params, aux_params = {}, {}
    for arg, shape in zip(sym.list_arguments(), arg_shapes):
        if arg in shapes or arg.endswith("_label"):
            continue
        value = mx.nd.array(random_param(rng, arg, shape))
        params["arg:" + arg] = arg_params[arg] = value
    for aux, shape in zip(sym.list_auxiliary_states(), aux_shapes):
        value = mx.nd.array(random_param(rng, aux, shape))
        params["aux:" + aux] = aux_params[aux] = value
    prefix = os.path.join(out_dir, name)
    if save_symbol:
        sym.save(prefix + "-symbol.json")
    mx.nd.save(prefix + "-0000.params", params)
    write_io(prefix, sym, shapes, arg_params, aux_params, rng)


def write_io(prefix, sym, shapes, arg_params, aux_params, rng, ints=None):
    inputs = {}
    ints = {**INT_INPUTS, **(ints or {})}
    for k, shape in shapes.items():
        if k in ints:
            inputs[k] = rng.integers(0, ints[k], size=shape).astype(np.float32)
        else:
            inputs[k] = rng.standard_normal(shape).astype(np.float32)
    args = {k: mx.nd.array(v) for k, v in inputs.items()}
    args.update(arg_params)
    arg_shapes, _, aux_shapes = sym.infer_shape_partial(**shapes)
    for arg, shape in zip(sym.list_arguments(), arg_shapes):
        args.setdefault(arg, mx.nd.zeros(shape))
    aux = {a: aux_params.get(a, mx.nd.zeros(s))
           for a, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    exe = sym.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
    outs = exe.forward(is_train=False)
    payload = {f"in:{k}": v for k, v in inputs.items()}
    payload.update({f"out:{i}": o.asnumpy() for i, o in enumerate(outs)})
    np.savez(prefix + "-io.npz", **payload)


def zoo(out_dir, spec):
    from mxnet.gluon.model_zoo import vision

    _, name, size = spec.split(":")
    size = int(size)
    net = vision.get_model(name, pretrained=False)
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.default_rng(0).standard_normal((1, 3, size, size)))
    net(x)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for pname, p in net.collect_params().items():
        p.set_data(mx.nd.array(random_param(rng, pname, p.shape)))
    net.hybridize()
    net(x)
    safe = name.replace(".", "_")
    prefix = os.path.join(out_dir, safe)
    net.export(prefix, epoch=0)
    sym = mx.sym.load(prefix + "-symbol.json")
    saved = mx.nd.load(prefix + "-0000.params")
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    write_io(prefix, sym, {"data": (1, 3, size, size)}, arg_params, aux_params, rng)


def gluon_rnn(out_dir, spec):
    """A Gluon text model: Embedding -> RNN layer -> Dense(flatten=False), exported."""
    from mxnet import gluon

    _, kind, layers, bidir = spec.split(":")
    layers, bidir = int(layers), bidir == "bi"

    class TextNet(gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            self.emb = gluon.nn.Embedding(30, 8)
            if kind == "lstm":
                self.rnn = gluon.rnn.LSTM(6, num_layers=layers, bidirectional=bidir)
            elif kind == "gru":
                self.rnn = gluon.rnn.GRU(6, num_layers=layers, bidirectional=bidir)
            else:
                self.rnn = gluon.rnn.RNN(6, num_layers=layers, bidirectional=bidir,
                                         activation=kind.split("_")[1])
            self.out = gluon.nn.Dense(4, flatten=False)

        def hybrid_forward(self, F, x):
            return self.out(self.rnn(self.emb(x)))

    net = TextNet()
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(np.ones((5, 2)))
    net(x)
    name = f"text_{kind}_{layers}_{'bi' if bidir else 'uni'}"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for pname, p in net.collect_params().items():
        p.set_data(mx.nd.array(random_param(rng, pname, p.shape)))
    net.hybridize()
    net(x)
    prefix = os.path.join(out_dir, name)
    net.export(prefix, epoch=0)
    sym = mx.sym.load(prefix + "-symbol.json")
    saved = mx.nd.load(prefix + "-0000.params")
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    write_io(prefix, sym, {"data": (5, 2)}, arg_params, aux_params, rng, ints={"data": 30})


def legacy(out_dir, spec):
    _, path, shape_text = spec.split(":", 2)
    shapes = {}
    for part in shape_text.split(";"):
        k, _, v = part.partition("=")
        shapes[k] = tuple(int(d) for d in v.split(","))
    sym = mx.sym.load(path)  # MXNet upgrades the legacy JSON on load
    name = os.path.basename(path).rsplit(".", 1)[0]
    name = name[: -len("-symbol")] if name.endswith("-symbol") else name
    # The params and outputs go beside the original file (PREFIX-0000.params): the
    # upgraded symbol is not written, so the legacy JSON is what gets converted.
    save_model(out_dir, name, sym, shapes, save_symbol=False)


def dtypes(out_dir):
    """One array of every dtype MXNet 1.9.1 saves, with its values for comparison."""
    rng = np.random.default_rng(7)
    arrays = {
        "arg:f32": rng.standard_normal((3, 4)).astype(np.float32),
        "arg:f64": rng.standard_normal((5,)),
        "arg:f16": rng.standard_normal((2, 3)).astype(np.float16),
        "arg:u8": rng.integers(0, 255, (4,)).astype(np.uint8),
        "arg:i32": rng.integers(-1000, 1000, (2, 2)).astype(np.int32),
        "arg:i8": rng.integers(-100, 100, (6,)).astype(np.int8),
        "arg:i64": rng.integers(-(1 << 40), 1 << 40, (3,)).astype(np.int64),
        "aux:b": rng.integers(0, 2, (5,)).astype(bool),
        "aux:scalar1": np.asarray([2.5], np.float32),
    }
    mx.nd.save(os.path.join(out_dir, "dtypes.params"),
               {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})
    np.savez(os.path.join(out_dir, "dtypes-values.npz"), **arrays)


def main(argv):
    out_dir = argv[0]
    os.makedirs(out_dir, exist_ok=True)
    for spec in argv[1:]:
        try:
            build(out_dir, spec)
        except mx.base.MXNetError:
            # MXNet 1.9.1's MKLDNN kernels reject some valid models (Deconvolution with
            # target_shape) and its plain CPU kernels others (Gluon's RNN): retry without.
            if os.environ.get("MXNET_MKLDNN_ENABLED") == "0":
                raise
            env = dict(os.environ, MXNET_MKLDNN_ENABLED="0")
            subprocess.run([sys.executable, __file__, out_dir, spec], env=env, check=True)
    print(json.dumps({"ok": argv[1:]}))


def build(out_dir, spec):
    if spec.startswith("zoo:"):
        zoo(out_dir, spec)
    elif spec.startswith("rnn:"):
        gluon_rnn(out_dir, spec)
    elif spec == "dtypes":
        dtypes(out_dir)
    elif spec.startswith("legacy:"):
        legacy(out_dir, spec)
    else:
        sym, shapes = MODELS[spec]()
        save_model(out_dir, spec, sym, shapes)


if __name__ == "__main__":
    main(sys.argv[1:])
