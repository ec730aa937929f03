"""Convolutions, matrix products and bias: Conv2D/3D, DepthwiseConv2dNative,
Conv2DBackpropInput, MatMul, BatchMatMul, Einsum, BiasAdd.

Channels-last inputs are transposed to ONNX's channels-first layout and back around each
layout-sensitive op; the optimiser cancels the pairs that meet.

A BiasAdd, and an inference FusedBatchNorm (see :mod:`.nn`), directly after a convolution
whose output nothing else reads are folded into the convolution's weights as they are read
(:func:`absorb_into_conv`), as the Keras importer does: no Add/Mul nodes are emitted for them
and none has to be folded later. The folded kernel is computed when the exporter reads it, from
one read of the original weight.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.graph_ir import lazy_tensor
from modelport.graph_ir.layout import to_channels_last
from modelport.graph_ir.tensors import SMALL_TENSOR_ELEMENTS
from modelport.importers.tensorflow.ops._util import (
    channels_last,
    pad_attrs,
    same_pads,
    spatial,
    to_cf,
    to_cl,
    weight,
)
from modelport.importers.tensorflow.table import tf_op


def _conv_weight(ctx, w, rank):
    """TF filter (spatial..., in, out) -> ONNX (out, in, spatial...)."""
    shape = ctx.shape(w)
    perm = [rank - 1, rank - 2, *range(rank - 2)]
    new = [shape[p] for p in perm] if shape and all(d is not None for d in shape) else None
    if new is None:
        return ctx.op("Transpose", w, perm=perm)
    return weight(ctx, w, lambda a: a.transpose(perm), new,
                  lambda v: ctx.op("Transpose", v, perm=perm))


def _conv(ctx, node, x, w, *, depthwise=False, dilations=None, pads=None):
    """``dilations`` and ``pads`` (ONNX's [begins..., ends...]) override the node's."""
    wr = ctx.rank(w)
    rank = wr  # input rank = spatial + 2 = filter rank
    cl = channels_last(node)
    xc = to_cf(ctx, x, rank) if cl else x
    wshape = ctx.shape(w)
    kernels = wshape[:-2]
    strides = spatial(node.ints("strides"), rank, cl)
    if dilations is None:
        dilations = spatial(node.ints("dilations"), rank, cl)
    if depthwise:
        kh_kw_in_mult = wshape
        cin, mult = kh_kw_in_mult[-2], kh_kw_in_mult[-1]
        flat = [*kernels, 1, cin * mult]

        def relayout(a, flat=flat, rank=rank):
            return a.reshape(flat).transpose([rank - 1, rank - 2, *range(rank - 2)])

        new_shape = [cin * mult, 1, *kernels]
        wt = weight(ctx, w, relayout, new_shape,
                    lambda v: ctx.op("Transpose", ctx.op("Reshape", v, ctx.ints(flat)),
                                     perm=[rank - 1, rank - 2, *range(rank - 2)]))
        group = cin
    else:
        wt = _conv_weight(ctx, w, rank)
        xshape = ctx.shape(xc)
        cin = xshape[1] if xshape else None
        group = cin // wshape[-2] if cin and wshape[-2] and cin != wshape[-2] else 1
    pads = {"pads": list(pads)} if pads is not None else \
        pad_attrs(ctx, node, xc, kernels, strides, dilations)
    y = ctx.op("Conv", xc, wt, kernel_shape=list(kernels), strides=strides,
               dilations=dilations, group=group, **pads)
    return to_cl(ctx, y, rank) if cl else y


@tf_op("Conv2D", "Conv3D", "Conv1D")
def conv(ctx, node, inputs):
    x, w = inputs
    if ctx.shape(w) is None or any(d is None for d in ctx.shape(w)):
        raise ctx.fail("the filter's shape must be static")
    return _conv(ctx, node, x, w)


@tf_op("DepthwiseConv2dNative")
def depthwise(ctx, node, inputs):
    x, w = inputs
    if ctx.shape(w) is None or any(d is None for d in ctx.shape(w)):
        raise ctx.fail("the filter's shape must be static")
    return _conv(ctx, node, x, w, depthwise=True)


def atrous_conv(ctx, node, inputs) -> ir.Value | None:
    """``SpaceToBatchND -> Conv2D / DepthwiseConv2dNative -> BatchToSpaceND`` (the current
    node), the way TensorFlow writes a dilated convolution, as one Conv with dilations; None
    where the pattern is not there or not equivalent.

    Per spatial dim with block ``r``, SpaceToBatch padding ``(p0, p1)``, the inner (stride-1,
    undilated) convolution's own padding ``(a0, a1)`` on each block and BatchToSpace crops
    ``(c0, c1)``: the result is the convolution with dilation ``r`` of the input padded by
    ``p0 + r*a0 - c0`` at the start and ``p1 + r*a1 - c1`` at the end (each block is one
    phase of the padded input; interleaving the blocks' outputs gives every start position,
    and cropping the output is padding the input less). Used where both are >= 0 and the
    padded size is a multiple of ``r`` (as SpaceToBatchND requires)."""
    scope = ctx.scope
    if scope is None or len(inputs) != 3 or not ctx.sole_reader(0):
        return None
    conv_nd, _ = ctx.tf_input(node.nd, 0)
    if conv_nd is None or conv_nd.op not in ("Conv2D", "DepthwiseConv2dNative"):
        return None
    s2b_nd, _ = ctx.tf_input(conv_nd, 0)
    if s2b_nd is None or s2b_nd.op != "SpaceToBatchND" or \
            scope.uses(_data_inputs(conv_nd)[0]) != 1:
        return None
    from modelport.importers.tensorflow.load import Node

    conv_node = Node(conv_nd, conv_nd.name)
    if not channels_last(conv_node) or conv_node.s("padding", "VALID") not in ("VALID", "SAME"):
        return None
    if any(v != 1 for v in conv_node.ints("strides", [1])) or \
            any(v != 1 for v in conv_node.ints("dilations", [1])):
        return None
    _, x = ctx.tf_input(s2b_nd, 0)
    _, w = ctx.tf_input(conv_nd, 1)
    _, s2b_block = ctx.tf_input(s2b_nd, 1)
    _, s2b_pads = ctx.tf_input(s2b_nd, 2)
    arrays = [ctx.const_array(v) for v in (s2b_block, s2b_pads, inputs[1], inputs[2])]
    if any(a is None for a in arrays) or not isinstance(x, ir.Value) or \
            not isinstance(w, ir.Value):
        return None
    block, pads, block2, crops = (np.asarray(a, np.int64) for a in arrays)
    xs, ws = ctx.shape(x), ctx.shape(w)
    m = block.size
    if xs is None or ws is None or len(xs) != m + 2 or len(ws) != m + 2 or \
            block.tolist() != block2.reshape(-1).tolist() or pads.size != 2 * m or \
            crops.size != 2 * m or any(d is None for d in [*xs[1:-1], *ws]):
        return None
    pads, crops = pads.reshape(m, 2), crops.reshape(m, 2)
    begins, ends = [], []
    for i in range(m):
        r, n, k = int(block[i]), xs[1 + i], ws[i]
        padded = n + int(pads[i].sum())
        if r < 1 or padded % r:
            return None
        if conv_node.s("padding") == "SAME":
            a0, a1 = same_pads([padded // r], [k], [1], [1])
        else:
            a0 = a1 = 0
        begins.append(int(pads[i, 0]) + r * a0 - int(crops[i, 0]))
        ends.append(int(pads[i, 1]) + r * a1 - int(crops[i, 1]))
    if min(begins + ends) < 0:
        return None
    return _conv(ctx, conv_node, x, w, depthwise=conv_nd.op == "DepthwiseConv2dNative",
                 dilations=[int(r) for r in block], pads=begins + ends)


def _data_inputs(nd) -> list[str]:
    return [r for r in nd.input if not r.startswith("^")]


@tf_op("Conv2DBackpropInput", "Conv3DBackpropInputV2")
def conv_transpose(ctx, node, inputs):
    sizes, w, dy = inputs
    out_size = ctx.partial_ints(sizes)
    wshape = ctx.shape(w)
    rank = len(wshape)
    cl = channels_last(node)
    dyc = to_cf(ctx, dy, rank) if cl else dy
    kernels = wshape[:-2]
    strides = spatial(node.ints("strides"), rank, cl)
    dilations = spatial(node.ints("dilations"), rank, cl)
    in_sizes = (ctx.shape(dyc) or [None] * rank)[2:]
    targets = (out_size[1:-1] if cl else out_size[2:]) if out_size else [None]
    if any(d is None for d in in_sizes) or any(d is None for d in targets):
        raise ctx.fail("needs static spatial sizes (its input's and input_sizes)")
    padding = node.s("padding", "VALID")
    explicit = node.ints("explicit_paddings")
    begins, ends, extra = [], [], []
    for i, (n, o, k, s, d) in enumerate(zip(in_sizes, targets, kernels, strides, dilations)):
        eff = (k - 1) * d + 1
        if padding == "SAME":
            begin = max((n - 1) * s + eff - o, 0) // 2
        elif padding == "EXPLICIT":
            pairs = [explicit[2 * j: 2 * j + 2] for j in range(len(explicit) // 2)]
            begin = (pairs[1:-1] if cl else pairs[2:])[i][0]
        else:
            begin = 0
        total = s * (n - 1) + eff - o
        end = total - begin
        begins.append(begin)
        ends.append(max(end, 0))
        extra.append(max(-end, 0))
    # ONNX ConvTranspose weight (in = dy channels, out, spatial...): TF (spatial..., out, in).
    perm = [rank - 1, rank - 2, *range(rank - 2)]
    wt = weight(ctx, w, lambda a: a.transpose(perm), [wshape[p] for p in perm],
                lambda v: ctx.op("Transpose", v, perm=perm))
    y = ctx.op("ConvTranspose", dyc, wt, kernel_shape=list(kernels), strides=strides,
               dilations=dilations, pads=begins + ends,
               output_padding=extra if any(extra) else None)
    return to_cl(ctx, y, rank) if cl else y


# ---- folding per-channel affine ops into the convolution before them --------------------------

def conv_feeding(ctx, x: ir.Value, k: int = 0) -> tuple[ir.Node, bool] | None:
    """``(conv, channels_last)``: the ONNX Conv computing ``x``, the current node's ``k``-th
    input, directly or through the Transpose back to channels-last, if the current node may
    absorb it: the node is the only reader of ``x`` in the TF graph, nothing in the ONNX graph
    reads ``x`` or the Conv's output otherwise, and the Conv's weight (and bias) are float32
    constants of static shape."""
    if not isinstance(x, ir.Value) or x.uses() or x.is_graph_output() or x.shape is None or \
            not ctx.sole_reader(k):
        return None
    producer, cl = x.producer(), False
    if producer is not None and producer.op_type == "Transpose" and producer.domain == "":
        perm = producer.attributes.get_ints("perm")
        inner = producer.inputs[0]
        if perm is None or list(perm) != to_channels_last(len(x.shape)) or inner is None or \
                len(inner.uses()) != 1 or inner.is_graph_output():
            return None
        producer, cl = inner.producer(), True
    if producer is None or producer.op_type != "Conv" or producer.domain != "":
        return None
    w = producer.inputs[1]
    b = producer.inputs[2] if len(producer.inputs) > 2 else None
    if w is None or w.const_value is None or w.dtype != ir.DataType.FLOAT or w.shape is None \
            or not w.shape.is_static():
        return None
    if b is not None and (b.const_value is None or b.dtype != ir.DataType.FLOAT):
        return None
    return producer, cl


def channel_vector(v: ir.Value, rank: int, channel_axis: int, channels: int):
    """A reader of ``v`` as a [channels] float32 vector if ``v`` is a float32 constant that
    broadcasts over a rank-``rank`` tensor along ``channel_axis`` only (a scalar, ``[C]`` when
    the channels are last, ``[1, C, 1, 1]``...), else None. Only the shape is looked at here;
    the data are read when the reader is called."""
    if not isinstance(v, ir.Value) or v.const_value is None or v.dtype != ir.DataType.FLOAT or \
            v.shape is None or not v.shape.is_static() or len(v.shape) > rank:
        return None
    dims = [1] * (rank - len(v.shape)) + list(v.shape.dims)
    if any(d != 1 for i, d in enumerate(dims) if i != channel_axis % rank) or \
            dims[channel_axis % rank] not in (1, channels):
        return None
    tensor = v.const_value

    def read(t=tensor, c=channels):
        return np.broadcast_to(np.asarray(t.numpy(), np.float32).reshape(-1), (c,))

    return read


def absorb_into_conv(ctx, conv: ir.Node, cl: bool, *, scale=None, shift=None,
                     bias: ir.Value | None = None) -> ir.Value:
    """A new Conv computing ``conv``'s output ``* scale + shift`` (readers of [C] float32
    vectors; either may be None), or ``+ bias`` (a [C] float32 constant, for a Conv without
    bias), then the Transpose back to channels-last when ``cl``. The old Conv is left without
    readers (the importer's dead-node sweep removes it, and its weights with it); the new
    kernel and bias are lazy, computed from one read of the old ones when written."""
    xc, w = conv.inputs[0], conv.inputs[1]
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    rank = len(w.shape)
    channels = w.shape[0]
    attrs = {k: ir.Attr(k, a.type, a.value) for k, a in conv.attributes.items()}
    name = ctx.node.name
    new_w = w
    if scale is not None:
        def kernel(t=w.const_value):
            s = scale().reshape((-1,) + (1,) * (rank - 1))
            k = t.numpy()
            if k.dtype == np.float32 and k.flags.owndata and k.flags.writeable and \
                    k.size > SMALL_TENSOR_ELEMENTS:  # a fresh copy (small ones are cached)
                k *= s
                return k
            return np.asarray(k, np.float32) * s

        new_w = ctx.b.initializer(f"{name}/folded_kernel", lazy_tensor(
            kernel, ir.DataType.FLOAT, list(w.shape.dims)))
    if bias is not None:
        new_b = bias
    else:
        def bias_vector(t=b.const_value if b is not None else None):
            out = np.zeros(channels, np.float32) if t is None else \
                np.array(t.numpy(), np.float32).reshape(channels)
            if scale is not None:
                out *= scale()
            if shift is not None:
                out += shift()
            return out

        new_b = ctx.b.initializer(f"{name}/folded_bias", lazy_tensor(
            bias_vector, ir.DataType.FLOAT, [channels]))
    # Built directly: same attributes, same output type and shape as the Conv it replaces.
    old_y = conv.outputs[0]
    y = ctx.b.op("Conv", xc, new_w, new_b, **attrs)
    y.type, y.shape = old_y.type, ir.Shape(_dims(old_y.shape))
    if not cl:
        return y
    out = ctx.b.op("Transpose", y, perm=ir.AttrInt64s("perm", to_channels_last(rank)))
    out.type, out.shape = old_y.type, ir.Shape([_dims(old_y.shape)[p]
                                                for p in to_channels_last(rank)])
    return out


def _dims(shape: ir.Shape) -> list:
    return [d if isinstance(d, int) else d.value for d in shape.dims]


def fold_affine(ctx, node, inputs, kind: str) -> ir.Value | None:
    """``conv * c`` or ``conv + c`` (either operand order) with ``c`` a per-channel float32
    constant, folded into the convolution; None if it cannot be."""
    if len(inputs) != 2:
        return None
    for k in (0, 1):
        x, c = inputs[k], inputs[1 - k]
        found = conv_feeding(ctx, x, k)
        if found is None or ctx.dtype(x) != ir.DataType.FLOAT:
            continue
        conv, cl = found
        rank = len(x.shape)
        read = channel_vector(c, rank, -1 if cl else 1, conv.inputs[1].shape[0])
        if read is None:
            continue
        if kind == "Mul":
            return absorb_into_conv(ctx, conv, cl, scale=read)
        return absorb_into_conv(ctx, conv, cl, shift=read)
    return None


def fold_batch_norm(ctx, node, x: ir.Value, params: list, eps: float) -> ir.Value | None:
    """An inference FusedBatchNorm after a convolution, folded into it; None if it cannot be."""
    found = conv_feeding(ctx, x, 0)
    if found is None or ctx.dtype(x) != ir.DataType.FLOAT:
        return None
    conv, cl = found
    if cl != channels_last(node):
        return None
    channels = conv.inputs[1].shape[0]
    readers = [channel_vector(p, 1, 0, channels) for p in params]
    if any(r is None for r in readers) or any(list(p.shape.dims) != [channels] for p in params):
        return None
    terms: list[np.ndarray] = []

    def scale_shift():  # the four vectors read once, for the kernel and the bias
        if not terms:
            gamma, beta, mean, var = (r() for r in readers)
            scale = gamma / np.sqrt(var + np.float32(eps))
            terms.extend((scale, beta - mean * scale))
        return terms

    return absorb_into_conv(ctx, conv, cl, scale=lambda: scale_shift()[0],
                            shift=lambda: scale_shift()[1])


@tf_op("BiasAdd", "BiasAddV1")
def bias_add(ctx, node, inputs):
    x, b = inputs
    found = conv_feeding(ctx, x, 0) if x.shape is not None and len(x.shape) > 2 else None
    if found is not None and found[1] == channels_last(node) and \
            ctx.dtype(x) == ir.DataType.FLOAT:
        conv, cl = found
        channels = conv.inputs[1].shape[0]
        if len(conv.inputs) == 2 and b.const_value is not None and \
                b.dtype == ir.DataType.FLOAT and b.shape is not None and \
                list(b.shape.dims) == [channels]:
            return absorb_into_conv(ctx, conv, cl, bias=b)  # the vector itself, not a copy
        read = channel_vector(b, 1, 0, channels)
        if read is not None:
            return absorb_into_conv(ctx, conv, cl, shift=read)
    if channels_last(node) or ctx.rank(x) <= 2:
        return ctx.op("Add", x, b)
    rank = ctx.rank(x)
    return ctx.op("Add", x, ctx.op("Reshape", b, ctx.ints([-1] + [1] * (rank - 2))))


def _swap_last(ctx, v):
    rank = ctx.rank(v)
    perm = [*range(rank - 2), rank - 1, rank - 2]
    shape = ctx.shape(v)
    if shape and all(d is not None for d in shape):
        return weight(ctx, v, lambda a: np.swapaxes(a, -1, -2), [shape[p] for p in perm],
                      lambda t: ctx.op("Transpose", t, perm=perm))
    return ctx.op("Transpose", v, perm=perm)


@tf_op("MatMul")
def matmul(ctx, node, inputs):
    a, b = inputs
    if node.b("transpose_a"):
        a = _swap_last(ctx, a)
    if node.b("transpose_b"):
        b = _swap_last(ctx, b)
    return ctx.op("MatMul", a, b)


@tf_op("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def batch_matmul(ctx, node, inputs):
    a, b = inputs
    if node.b("adj_x"):
        a = _swap_last(ctx, a)
    if node.b("adj_y"):
        b = _swap_last(ctx, b)
    if node.op == "BatchMatMulV3":
        out = node.type("Tout", 0)
        if out:
            from modelport.importers.tensorflow import dtypes

            y = ctx.op("MatMul", ctx.cast(a, dtypes.to_ir(out)), ctx.cast(b, dtypes.to_ir(out)))
            return y
    return ctx.op("MatMul", a, b)


@tf_op("Einsum")
def einsum(ctx, node, inputs):
    equation = node.s("equation").replace(" ", "")
    if "..." in equation and "->" not in equation:
        raise ctx.fail(f"equation {equation!r} without an explicit output is not supported")
    return ctx.op("Einsum", *inputs, equation=equation)
