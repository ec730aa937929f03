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


CORNER, CENTER_SIZE = 1, 2


@caffe_layer("DetectionOutput")
def detection_output(ctx, layer, inputs):
    """SSD's DetectionOutput: decode boxes, per-class top-k, NMS, keep_top_k over classes.

    Output [1, 1, K, 7] rows (image id, label, score, xmin, ymin, xmax, ymax) ordered by label,
    then score, as Caffe writes them; K is dynamic. When nothing passes the threshold the
    output is Caffe's placeholder row (0, -1, -1, -1, -1, -1, -1).
    """
    import onnx_ir as ir

    if len(inputs) != 3:
        raise ctx.fail("DetectionOutput needs loc, conf and prior bottoms (ARM variants are not "
                       "supported)")
    loc, conf, priors = inputs
    p = layer.detection_output_param
    nms = p.nms_param
    n = ctx.shape(loc)[0]
    if n != 1:
        raise ctx.fail(f"DetectionOutput is translated for batch 1, the net has batch {n}")
    if not p.share_location:
        raise ctx.fail("share_location: false is not supported")
    if nms.eta != 1.0:
        raise ctx.fail("adaptive NMS (eta != 1) is not supported")
    if p.code_type not in (CORNER, CENTER_SIZE):
        raise ctx.fail("only CORNER and CENTER_SIZE box codes are supported")
    num_priors = ctx.shape(priors)[2] // 4
    classes = int(p.num_classes)
    f = ir.DataType.FLOAT
    i64 = ir.DataType.INT64

    # Decode the boxes: [P, 4].
    prior_boxes = ctx.op("Reshape", ctx.op("Slice", priors, ctx.ints([0], "s0"),
                                           ctx.ints([1], "e0"), ctx.ints([1], "a0"),
                                           shape=[1, 1, num_priors * 4]),
                         ctx.ints([num_priors, 4], "pshape"), shape=[num_priors, 4])
    variances = ctx.op("Reshape", ctx.op("Slice", priors, ctx.ints([1], "s1"),
                                         ctx.ints([2], "e1"), ctx.ints([1], "a1"),
                                         shape=[1, 1, num_priors * 4]),
                       ctx.ints([num_priors, 4], "vshape"), shape=[num_priors, 4])
    deltas = ctx.op("Reshape", loc, ctx.ints([num_priors, 4], "lshape"), shape=[num_priors, 4])
    if not p.variance_encoded_in_target:
        deltas = ctx.op("Mul", deltas, variances, shape=[num_priors, 4])
    if p.code_type == CORNER:
        boxes = ctx.op("Add", prior_boxes, deltas, shape=[num_priors, 4])
    else:
        col = [num_priors, 2]
        lo = ctx.op("Slice", prior_boxes, ctx.ints([0], "c0"), ctx.ints([2], "c2"),
                    ctx.ints([1], "c1"), shape=col)
        hi = ctx.op("Slice", prior_boxes, ctx.ints([2], "c2b"), ctx.ints([4], "c4"),
                    ctx.ints([1], "c1b"), shape=col)
        size = ctx.op("Sub", hi, lo, shape=col)
        center = ctx.op("Mul", ctx.op("Add", lo, hi, shape=col), ctx.const(0.5, "half"),
                        shape=col)
        d_center = ctx.op("Slice", deltas, ctx.ints([0], "d0"), ctx.ints([2], "d2"),
                          ctx.ints([1], "d1"), shape=col)
        d_size = ctx.op("Slice", deltas, ctx.ints([2], "d2b"), ctx.ints([4], "d4"),
                        ctx.ints([1], "d1b"), shape=col)
        new_center = ctx.op("Add", ctx.op("Mul", d_center, size, shape=col), center, shape=col)
        half_size = ctx.op("Mul", ctx.op("Mul", ctx.op("Exp", d_size, shape=col), size,
                                         shape=col), ctx.const(0.5, "half2"), shape=col)
        boxes = ctx.op("Concat", ctx.op("Sub", new_center, half_size, shape=col),
                       ctx.op("Add", new_center, half_size, shape=col), axis=1,
                       shape=[num_priors, 4])
    if p.clip:
        boxes = ctx.op("Clip", boxes, ctx.const(0.0, "zero"), ctx.const(1.0, "one"),
                       shape=[num_priors, 4])

    # Scores per foreground class: [C', P].
    labels = [c for c in range(classes) if c != p.background_label_id]
    fg = len(labels)
    scores = ctx.op("Transpose", ctx.op("Reshape", conf, ctx.ints([num_priors, classes],
                                                                  "cshape"),
                                        shape=[num_priors, classes]),
                    perm=[1, 0], shape=[classes, num_priors])
    scores = ctx.op("Gather", scores, ctx.ints(labels, "labels"), axis=0, shape=[fg, num_priors])

    # Per-class top_k before NMS; each class becomes one NMS batch.
    k1 = num_priors if nms.top_k <= 0 else min(int(nms.top_k), num_priors)
    top_scores, top_idx = ctx.b.op("TopK", scores, ctx.ints([k1], "k1"), axis=1, largest=1,
                                   sorted=1, outputs=2)
    top_scores.shape, top_scores.type = ir.Shape([fg, k1]), ir.TensorType(f)
    top_idx.shape, top_idx.type = ir.Shape([fg, k1]), ir.TensorType(i64)
    class_boxes = ctx.op("Gather", boxes, top_idx, axis=0, shape=[fg, k1, 4])
    # Caffe gives a box with xmax <= xmin or ymax <= ymin (possible with CORNER codes) no
    # overlap with anything; ONNX's NMS would reorder its corners. Such boxes go to NMS as
    # points, which overlap nothing either; the output keeps the decoded corners.
    half = [fg, k1, 2]
    mins = ctx.op("Slice", class_boxes, ctx.ints([0], "m0"), ctx.ints([2], "m2"),
                  ctx.ints([2], "ma"), shape=half)
    maxs = ctx.op("Slice", class_boxes, ctx.ints([2], "x2"), ctx.ints([4], "x4"),
                  ctx.ints([2], "xa"), shape=half)
    bad = ctx.reduce("ReduceMax", ctx.op("Cast", ctx.op("LessOrEqual", maxs, mins, shape=half,
                                                        dtype=ir.DataType.BOOL),
                                         to=f, shape=half),
                     [2], keepdims=1, shape=[fg, k1, 1])
    points = ctx.op("Concat", mins, mins, axis=2, shape=[fg, k1, 4])
    nms_boxes = ctx.op("Where", ctx.op("Cast", bad, to=ir.DataType.BOOL, shape=[fg, k1, 1],
                                       dtype=ir.DataType.BOOL),
                       points, class_boxes, shape=[fg, k1, 4])
    S = "selected"  # noqa: N806 - symbolic dims
    selected = ctx.op(
        "NonMaxSuppression", nms_boxes,
        ctx.op("Unsqueeze", top_scores, ctx.ints([1], "ax1"), shape=[fg, 1, k1]),
        ctx.ints([k1], "max_out"), ctx.const(np.float32(nms.nms_threshold), "iou"),
        ctx.const(np.float32(p.confidence_threshold), "score_min"),
        shape=[S, 3], dtype=i64)
    pairs = ctx.op("Gather", selected, ctx.ints([0, 2], "bk"), axis=1, shape=[S, 2], dtype=i64)
    det_scores = ctx.op("GatherND", top_scores, pairs, shape=[S])
    det_boxes = ctx.op("GatherND", class_boxes, pairs, shape=[S, 4])
    slot = ctx.op("Gather", pairs, ctx.ints([0], "b0"), axis=1, shape=[S, 1], dtype=i64)
    det_labels = ctx.op("Cast", ctx.op("Gather", ctx.ints(labels, "labels2"), slot, axis=0,
                                       shape=[S, 1], dtype=i64), to=f, shape=[S, 1])
    det_scores = ctx.op("Unsqueeze", det_scores, ctx.ints([1], "ax1b"), shape=[S, 1])

    # keep_top_k over all classes, keeping NMS's order (class, then score) for the survivors.
    if p.keep_top_k >= 0:
        count = ctx.op("Shape", det_scores, start=0, end=1, shape=[1], dtype=i64)
        K = "detections"  # noqa: N806
        k2 = ctx.op("Min", count, ctx.ints([int(p.keep_top_k)], "keep"), shape=[1], dtype=i64)
        flat = ctx.op("Reshape", det_scores, ctx.ints([-1], "flat"), shape=[S])
        _, best = ctx.b.op("TopK", flat, k2, axis=0, largest=1, sorted=1, outputs=2)
        best.shape, best.type = ir.Shape([K]), ir.TensorType(i64)
        ordered = ctx.op("Cast", best, to=f, shape=[K])
        kept, _ = ctx.b.op("TopK", ordered, k2, axis=0, largest=0, sorted=1, outputs=2)
        kept.shape, kept.type = ir.Shape([K]), ir.TensorType(f)
        keep_idx = ctx.op("Cast", kept, to=i64, shape=[K], dtype=i64)
        det_scores = ctx.op("Gather", det_scores, keep_idx, axis=0, shape=[K, 1])
        det_labels = ctx.op("Gather", det_labels, keep_idx, axis=0, shape=[K, 1])
        det_boxes = ctx.op("Gather", det_boxes, keep_idx, axis=0, shape=[K, 4])
    else:
        K = S  # noqa: N806
    image_id = ctx.op("Mul", det_scores, ctx.const(0.0, "zero_id"), shape=[K, 1])
    rows = ctx.op("Concat", image_id, det_labels, det_scores, det_boxes, axis=1, shape=[K, 7])
    # No detection: Caffe writes one row (image 0, then -1s). Append that row and keep
    # max(K, 1) rows, so it survives only when there is nothing else.
    placeholder = ctx.const(np.asarray([[0, -1, -1, -1, -1, -1, -1]], np.float32), "none")
    padded = ctx.op("Concat", rows, placeholder, axis=0, shape=["detections_plus_one", 7])
    count = ctx.op("Shape", rows, start=0, end=1, shape=[1], dtype=i64)
    end = ctx.op("Max", count, ctx.ints([1], "one_row"), shape=[1], dtype=i64)
    rows = ctx.op("Slice", padded, ctx.ints([0], "start0"), end, ctx.ints([0], "axis0"),
                  shape=["detections_or_one", 7])
    return [ctx.op("Unsqueeze", rows, ctx.ints([0, 1], "ax01"),
                   shape=[1, 1, "detections_or_one", 7])]
