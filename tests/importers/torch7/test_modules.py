"""One small net per family of Torch7 nn modules, written as a .t7 file with seeded random
weights, converted, and compared on seeded inputs with OpenCV DNN's readNetFromTorch (an
independent reader) or, for what OpenCV does not read, with a NumPy definition."""

from __future__ import annotations

import cv2  # noqa: E402,F401  (the independent reader: installed by the torch7 extra)
import numpy as np
import pytest

from tests.importers.torch7 import t7writer as w
from tests.importers.torch7.helpers import check_numpy, check_opencv

relu = w.module("nn.ReLU", threshold=0, val=0, inplace=False)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_convolutions(tmp_path):
    r = rng()
    net = w.sequential(
        w.conv(r, 3, 6, 3, stride=2, pad=1, kw=2, sw=1, pw=0),
        w.module("nn.ReLU", threshold=0, val=0, inplace=True),
        w.conv(r, 6, 4, 3, pad=1, mm=True),
        w.conv(r, 4, 5, 3, pad=2, dilation=2, bias=False),
    )
    check_opencv(tmp_path, net, [2, 3, 11, 9])


def test_full_convolution(tmp_path):
    r = rng(1)
    wt = (r.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
    full = w.module("nn.SpatialFullConvolution", nInputPlane=4, nOutputPlane=3, kW=3, kH=3,
                    dW=2, dH=2, padW=1, padH=1, adjW=1, adjH=0, weight=w.tensor(wt),
                    bias=w.tensor(r.standard_normal(3).astype(np.float32)))
    check_opencv(tmp_path, w.sequential(full), [1, 4, 5, 6])


@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("geometry", [(3, 2, 0), (3, 2, 1), (2, 2, 1), (3, 3, 1)])
def test_max_pooling(tmp_path, ceil, geometry):
    k, s, p = geometry
    pool = w.module("nn.SpatialMaxPooling", kW=k, kH=k, dW=s, dH=s, padW=p, padH=p,
                    ceil_mode=ceil, indices=w.empty())
    check_opencv(tmp_path, w.sequential(pool), [1, 2, 10, 7])


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("ceil", [False, True])
def test_average_pooling(tmp_path, include_pad, ceil):
    pool = w.module("nn.SpatialAveragePooling", kW=3, kH=3, dW=2, dH=2, padW=1, padH=1,
                    ceil_mode=ceil, count_include_pad=include_pad, divide=True)
    check_opencv(tmp_path, w.sequential(pool), [1, 2, 10, 7])


def test_batch_normalization(tmp_path):
    r = rng(2)
    net = w.sequential(
        w.conv(r, 3, 4, 3),
        w.batchnorm(r, 4),
        w.batchnorm(r, 4, affine=False),
        w.batchnorm(r, 4, old_std=True),
        w.module("nn.View", size=w.longs([-1]), numElements=4 * 5 * 5, numInputDims=3),
        w.linear(r, 100, 6),
        w.batchnorm(r, 6, spatial=False),
    )
    check_opencv(tmp_path, net, [2, 3, 7, 7])


def test_instance_normalization(tmp_path):
    r = rng(3)
    inorm = w.module("nn.InstanceNormalization", nOutput=4, eps=1e-5, prev_batch_size=-1,
                     weight=w.tensor(r.uniform(0.5, 1.5, 4).astype(np.float32)),
                     bias=w.tensor(r.standard_normal(4).astype(np.float32)))
    check_opencv(tmp_path, w.sequential(w.conv(r, 3, 4, 3), inorm), [1, 3, 9, 9])


def test_linear_view_reshape_softmax(tmp_path):
    r = rng(4)
    net = w.sequential(
        w.module("nn.View", size=w.longs([3 * 4 * 4]), numElements=48, numInputDims=3),
        w.linear(r, 48, 10),
        w.module("nn.Tanh"),
        w.module("nn.Reshape", size=w.longs([2, 5]), nelement=10, batchsize=w.longs([1, 2, 5])),
        w.module("nn.View", size=w.longs([10]), numElements=10, numInputDims=2),
        w.linear(r, 10, 7, bias=False),
        w.module("nn.SoftMax"),
    )
    check_opencv(tmp_path, net, [1, 3, 4, 4])
    net = w.sequential(
        w.module("nn.View", size=w.longs([-1, 48]), numElements=48),
        w.linear(r, 48, 5),
        w.module("nn.LogSoftMax"),
    )
    check_opencv(tmp_path, net, [2, 3, 4, 4], name="logsoftmax")


def test_activations(tmp_path):
    r = rng(5)
    net = w.sequential(
        w.conv(r, 3, 4, 1),
        w.module("nn.PReLU", nOutputPlane=4,
                 weight=w.tensor(r.uniform(0.05, 0.3, 4).astype(np.float32))),
        w.module("nn.PReLU", nOutputPlane=0, weight=w.tensor(np.array([0.2], np.float32))),
        w.module("nn.Sigmoid"),
        w.module("nn.Dropout", p=0.3, v2=False, noise=w.empty()),
        w.module("nn.Dropout", p=0.4, v2=True, noise=w.empty()),
        w.module("nn.MulConstant", constant_scalar=2.5, inplace=False),
        w.module("nn.Square"),
        w.module("nn.Sqrt", eps=0),
        w.module("nn.Power", pow=1.5),
        w.module("nn.Tanh"),
    )
    check_opencv(tmp_path, net, [2, 3, 5, 6])


def test_concat_containers(tmp_path):
    r = rng(6)
    branch1 = w.sequential(w.conv(r, 3, 4, 1), relu)
    branch2 = w.sequential(w.conv(r, 3, 2, 3, pad=1))
    concat = w.module("nn.Concat", dimension=2, modules=[branch1, branch2],
                      size=w.longs([1, 6, 6, 6]))
    depth = w.module("nn.DepthConcat", dimension=2,
                     modules=[w.conv(r, 6, 3, 1), w.conv(r, 6, 2, 3), w.conv(r, 6, 2, 4)])
    check_opencv(tmp_path, w.sequential(concat, depth), [1, 3, 6, 6])


def test_tables(tmp_path):
    r = rng(7)
    table = w.module("nn.ConcatTable", modules=[w.conv(r, 3, 4, 3, pad=1),
                                                w.module("nn.Identity")])
    # (OpenCV ignores nInputDims: JoinTable(1, 3), the batch form, is checked in NumPy below)
    join = w.module("nn.JoinTable", dimension=2)
    table2 = w.module("nn.ConcatTable", modules=[w.conv(r, 7, 7, 1), w.module("nn.Identity")])
    add = w.module("nn.CAddTable", inplace=False)
    check_opencv(tmp_path, w.sequential(table, join, table2, add, relu), [1, 3, 5, 5])


def test_padding_lrn_upsampling(tmp_path):
    r = rng(8)
    net = w.sequential(
        w.conv(r, 3, 5, 1),
        w.module("nn.SpatialZeroPadding", pad_l=1, pad_r=2, pad_t=0, pad_b=1),
        w.module("nn.SpatialReflectionPadding", pad_l=2, pad_r=1, pad_t=1, pad_b=2),
        w.module("nn.SpatialCrossMapLRN", size=3, alpha=0.01, beta=0.75, k=2.0),
        w.module("nn.SpatialUpSamplingNearest", scale_factor=2),
        w.module("nn.Padding", dim=2, pad=2, nInputDim=3, value=0.5, index=1),
        w.module("nn.Padding", dim=1, pad=-1, nInputDim=3, value=0, index=1),
    )
    check_opencv(tmp_path, net, [1, 3, 4, 5])


def test_normalize(tmp_path):
    r = rng(9)
    for p in (2, 1):
        net = w.sequential(
            w.module("nn.View", size=w.longs([-1]), numElements=1, numInputDims=3),
            w.linear(r, 12, 6), w.module("nn.Normalize", p=p, eps=1e-10))
        check_opencv(tmp_path, net, [2, 3, 2, 2], name=f"p{p}")


# -- checked against NumPy: modules OpenCV does not read ----------------------------------------
def test_elu_leaky_relu_threshold(tmp_path):
    net = w.sequential(
        w.module("nn.ELU", alpha=0.7, inplace=False),
        w.module("nn.LeakyReLU", negval=0.2, inplace=False),
        w.module("nn.Threshold", threshold=0.1, val=-2.0, inplace=False),
    )

    def ref(x):
        y = np.where(x > 0, x, 0.7 * (np.exp(x) - 1))
        y = np.where(y > 0, y, 0.2 * y)
        return np.where(y > 0.1, y, -2.0).astype(np.float32)

    check_numpy(tmp_path, net, [2, 3, 4, 4], ref)


def test_parallel_table_and_table_outputs(tmp_path):
    r = rng(10)
    lin = w.linear(r, 6, 4)
    wt = lin.fields["weight"].storage.array.reshape(4, 6)
    b = lin.fields["bias"].storage.array
    split = w.module("nn.ConcatTable", modules=[w.module("nn.Identity"),
                                                w.module("nn.Tanh")])
    par = w.module("nn.ParallelTable", modules=[lin, w.module("nn.Sigmoid")])
    # JoinTable(1, 1): the features of 1-D samples, so dimension 2 of a batch
    join = w.module("nn.JoinTable", dimension=1, nInputDims=1)
    net = w.sequential(split, w.module("nn.ConcatTable", modules=[par, join]))

    def ref(x):
        return [x @ wt.T + b, 1 / (1 + np.exp(-np.tanh(x))),
                np.concatenate([x, np.tanh(x)], axis=1)]

    check_numpy(tmp_path, net, [3, 6], ref)


def _node(module=None, **data):
    d = {"mapindex": {}, "annotations": {}, "input": []}
    if module is not None:
        d["module"] = module
    d.update(data)
    return w.Obj("nngraph.Node", {"data": d, "children": [], "visited": False, "marked": False,
                                  "id": 0})


def _link(parent, child):
    """child takes parent's output (the forward graph's children; mapindex in the child)."""
    parent.fields["children"].append(child)
    mi = child.fields["data"]["mapindex"]
    n = len([k for k in mi if isinstance(k, int)]) + 1
    mi[n] = parent.fields["data"]
    mi_keys = getattr(child, "_refs", [])
    mi_keys.append((parent.fields["data"], n))
    child._refs = mi_keys


def _gmodule(nodes, innode, outnode):
    for node in nodes:  # mapindex also maps each parent's data table to its position
        for data, n in getattr(node, "_refs", []):
            node.fields["data"]["mapindex"][w.Ref(data)] = n
    return w.module("nngraph.gModule", forwardnodes=list(nodes), innode=innode,
                    outnode=outnode, nInputs=1, modules=[
                        n.fields["data"]["module"] for n in nodes if "module" in n.fields["data"]])


def test_nngraph_residual_block(tmp_path):
    # input -> conv1 -> relu -> conv2 -> (+ input) -> relu, and a second output conv1's output
    r = rng(11)
    conv1, conv2 = w.conv(r, 3, 3, 3, pad=1), w.conv(r, 3, 3, 3, pad=1)
    innode = _node()
    ident = _node(w.module("nn.Identity"))
    n1 = _node(conv1)
    n2 = _node(w.module("nn.ReLU", threshold=0, val=0, inplace=False))
    n3 = _node(conv2)
    add = _node(w.module("nn.CAddTable", inplace=False))
    n4 = _node(w.module("nn.ReLU", threshold=0, val=0, inplace=False))
    outnode = _node()
    _link(innode, ident)
    _link(ident, n1)
    _link(n1, n2)
    _link(n2, n3)
    _link(n3, add)
    _link(ident, add)
    _link(add, n4)
    _link(n4, outnode)
    _link(n1, outnode)
    net = _gmodule([innode, ident, n1, n2, n3, add, n4, outnode], innode, outnode)

    def conv_np(x, m):
        wt = m.fields["weight"].storage.array.reshape(3, 3, 3, 3)
        b = m.fields["bias"].storage.array
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = np.zeros_like(x)
        for i in range(3):
            for j in range(3):
                out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + x.shape[2], j:j + x.shape[3]],
                                 wt[:, :, i, j])
        return out + b[None, :, None, None]

    def ref(x):
        a = conv_np(x, conv1)
        y = conv_np(np.maximum(a, 0), conv2) + x
        return [np.maximum(y, 0), a]

    check_numpy(tmp_path, net, [1, 3, 5, 5], ref)


def test_single_sample_inputs_drop_no_batch(tmp_path):
    # A 3-D C x H x W input is one sample: View(48) makes a vector and Linear a vector.
    r = rng(12)
    lin = w.linear(r, 12, 5)
    wt = lin.fields["weight"].storage.array.reshape(5, 12)
    b = lin.fields["bias"].storage.array
    net = w.sequential(
        w.module("nn.SpatialMaxPooling", kW=2, kH=2, dW=2, dH=2, padW=0, padH=0),
        w.module("nn.View", size=w.longs([12]), numElements=12),
        lin, w.module("nn.SoftMax"))

    def ref(x):
        pooled = x.reshape(3, 2, 2, 2, 2).max(axis=(2, 4))
        y = pooled.reshape(12) @ wt.T + b
        e = np.exp(y - y.max())
        return (e / e.sum()).astype(np.float32)

    got = check_numpy(tmp_path, net, [3, 4, 4], ref)
    assert got["output"].shape == (5,)


def test_nngraph_split_nodes_and_refusals(tmp_path):
    # input -> ConcatTable(Tanh, Sigmoid) -> split(2) -> CAddTable(second, first) -> output
    table = w.module("nn.ConcatTable", modules=[w.module("nn.Tanh"), w.module("nn.Sigmoid")])
    innode, outnode = _node(), _node()
    tnode = _node(table)
    first, second = _node(selectindex=1), _node(selectindex=2)
    add = _node(w.module("nn.CAddTable", inplace=False))
    sq = _node(w.module("nn.Square"))
    _link(innode, tnode)
    _link(tnode, first)
    _link(tnode, second)
    _link(second, add)
    _link(first, sq)
    _link(sq, add)
    _link(add, outnode)
    net = _gmodule([innode, tnode, second, first, sq, add, outnode], innode, outnode)

    def ref(x):
        return (1 / (1 + np.exp(-x)) + np.tanh(x) ** 2).astype(np.float32)

    check_numpy(tmp_path, net, [2, 5], ref)

    from modelport.errors import InvalidModelError, UnsafeModelError
    from modelport.importers.registry import LoadOptions
    from modelport.importers.torch7.load import load

    net.fields["nInputs"] = 2
    w.save(tmp_path / "two.t7", net)
    with pytest.raises(InvalidModelError, match="has 2 inputs"):
        load(str(tmp_path / "two.t7"), LoadOptions(input_shapes={"input": [2, 5]}))
    net.fields["nInputs"] = 1
    sq.fields["data"]["module"] = w.Func()
    w.save(tmp_path / "func.t7", net)
    with pytest.raises(UnsafeModelError, match="Lua function"):
        load(str(tmp_path / "func.t7"), LoadOptions(input_shapes={"input": [2, 5]}))
