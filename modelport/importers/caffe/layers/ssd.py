"""SSD's PriorBox: the default boxes depend only on the shapes of its two bottoms (a feature
map and the image), so the layer becomes a constant of shape [1, 2, H*W*num_priors*4] (boxes,
then their variances)."""

from __future__ import annotations

import math

import numpy as np

from modelport.importers.caffe.table import caffe_layer


def prior_boxes(p, layer_h: int, layer_w: int, img_h: int, img_w: int) -> np.ndarray:
    ratios = [1.0]
    for ar in p.aspect_ratio:
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(float(ar))
        if p.flip:
            ratios.append(1.0 / ar)
    if p.HasField("img_h") or p.HasField("img_w"):
        img_h, img_w = int(p.img_h), int(p.img_w)
    elif p.HasField("img_size"):
        img_h = img_w = int(p.img_size)
    if p.HasField("step_h") or p.HasField("step_w"):
        step_h, step_w = float(p.step_h), float(p.step_w)
    elif p.HasField("step"):
        step_h = step_w = float(p.step)
    else:
        step_h, step_w = img_h / layer_h, img_w / layer_w
    boxes = []
    for h in range(layer_h):
        for w in range(layer_w):
            cx = (w + p.offset) * step_w
            cy = (h + p.offset) * step_h
            for s, min_size in enumerate(p.min_size):
                sizes = [(min_size, min_size)]
                if len(p.max_size) > s:
                    side = math.sqrt(min_size * p.max_size[s])
                    sizes.append((side, side))
                for ar in ratios:
                    if abs(ar - 1.0) < 1e-6:
                        continue
                    sizes.append((min_size * math.sqrt(ar), min_size / math.sqrt(ar)))
                for bw, bh in sizes:
                    boxes.append([(cx - bw / 2) / img_w, (cy - bh / 2) / img_h,
                                  (cx + bw / 2) / img_w, (cy + bh / 2) / img_h])
    coords = np.asarray(boxes, dtype=np.float64).reshape(-1)
    if p.clip:
        coords = np.clip(coords, 0.0, 1.0)
    variance = list(p.variance) or [0.1]
    if len(variance) == 1:
        var = np.full(coords.shape, variance[0])
    elif len(variance) == 4:
        var = np.tile(np.asarray(variance, dtype=np.float64), coords.size // 4)
    else:
        raise ValueError(f"{len(variance)} variances (1 or 4 expected)")
    return np.stack([coords, var])[None].astype(np.float32)


@caffe_layer("PriorBox")
def prior_box(ctx, layer, inputs):
    if len(inputs) != 2:
        raise ctx.fail("PriorBox needs two bottoms (a feature map and the image)")
    feat, image = ctx.shape(inputs[0]), ctx.shape(inputs[1])
    p = layer.prior_box_param
    if not len(p.min_size):
        raise ctx.fail("prior_box_param has no min_size")
    try:
        boxes = prior_boxes(p, feat[2], feat[3], image[2], image[3])
    except ValueError as exc:
        raise ctx.fail(str(exc)) from None
    const = ctx.const(boxes, "priors")
    # An Identity gives the layer a node of its own (a source-layer name for verification).
    return [ctx.op("Identity", const, shape=boxes.shape)]
