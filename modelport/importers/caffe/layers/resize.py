"""Resizing layers of common Caffe forks: Interp (PSPNet/DeepLab; bilinear, corners aligned)
and Upsample (nearest neighbour by an integer scale, as in the YOLO/darknet ports)."""

from __future__ import annotations

import numpy as np

from modelport.importers.caffe.table import caffe_layer


@caffe_layer("Interp")
def interp(ctx, layer, inputs):
    x = inputs[0]
    shape = ctx.shape(x)
    p = layer.interp_param
    h_in, w_in = shape[2], shape[3]
    if p.pad_beg > 0 or p.pad_end > 0:
        raise ctx.fail("interp_param pad_beg/pad_end must not be positive")
    h_eff = h_in + p.pad_beg + p.pad_end
    w_eff = w_in + p.pad_beg + p.pad_end
    zoom, shrink = p.zoom_factor, p.shrink_factor
    if shrink != 1 and zoom == 1:
        h_out, w_out = (h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1
    elif zoom != 1 and shrink == 1:
        h_out, w_out = h_eff + (h_eff - 1) * (zoom - 1), w_eff + (w_eff - 1) * (zoom - 1)
    elif zoom != 1 and shrink != 1:
        h_out, w_out = (h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1
        h_out, w_out = h_out + (h_out - 1) * (zoom - 1), w_out + (w_out - 1) * (zoom - 1)
    elif p.height and p.width:
        h_out, w_out = int(p.height), int(p.width)
    elif len(inputs) == 2:
        ref = ctx.shape(inputs[1])
        h_out, w_out = ref[2], ref[3]
    else:
        raise ctx.fail("interp_param gives no output size")
    src = x
    if p.pad_beg or p.pad_end:
        src = ctx.op("Slice", x, ctx.ints([-p.pad_beg, -p.pad_beg], "starts"),
                     ctx.ints([h_in + p.pad_end, w_in + p.pad_end], "ends"),
                     ctx.ints([2, 3], "axes"), shape=[shape[0], shape[1], h_eff, w_eff])
    out = [shape[0], shape[1], h_out, w_out]
    sizes = ctx.ints(out, "sizes")
    return [ctx.op("Resize", src, None, None, sizes, mode="linear",
                   coordinate_transformation_mode="align_corners", shape=out)]


@caffe_layer("Upsample")
def upsample(ctx, layer, inputs):
    if len(inputs) != 1:
        raise ctx.fail("Upsample with a pooling mask (SegNet max-unpooling) is not supported")
    (x,) = inputs
    shape = ctx.shape(x)
    p = layer.upsample_param
    sh = int(p.scale_h) if p.HasField("scale_h") else int(p.scale)
    sw = int(p.scale_w) if p.HasField("scale_w") else int(p.scale)
    if p.HasField("upsample_h") or p.HasField("upsample_w") or p.pad_out_h or p.pad_out_w:
        raise ctx.fail("Upsample output sizes (upsample_h/w, pad_out_h/w) belong to "
                       "max-unpooling, which is not supported")
    out = [shape[0], shape[1], shape[2] * sh, shape[3] * sw]
    scales = ctx.const(np.asarray([1, 1, sh, sw], np.float32), "scales")
    return [ctx.op("Resize", x, None, scales, mode="nearest",
                   coordinate_transformation_mode="asymmetric", nearest_mode="floor", shape=out)]
