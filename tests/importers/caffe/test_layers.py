"""One small net per Caffe layer family, converted with seeded random weights and compared
with OpenCV DNN on seeded random inputs."""

from __future__ import annotations

import cv2  # noqa: F401  (the "caffe" extra: without OpenCV these tests fail, never skip)
import numpy as np
import pytest

from tests.importers.caffe.helpers import check_net

HEAD = 'name: "t"\ninput: "data"\ninput_shape { dim: 2 dim: 4 dim: 9 dim: 11 }\n'


def net(body: str, head: str = HEAD) -> str:
    return head + body


def test_convolution_variants(tmp_path):
    check_net(tmp_path, net("""
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
  convolution_param { num_output: 6 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 2
                      stride_h: 2 stride_w: 1 group: 2 } }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
  convolution_param { num_output: 4 kernel_size: 3 pad: 2 dilation: 2 bias_term: false } }
layer { name: "c3" type: "ConvolutionDepthwise" bottom: "c2" top: "c3"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 4 } }
"""), {"data": [2, 4, 9, 11]})


def test_deconvolution(tmp_path):
    check_net(tmp_path, net("""
layer { name: "d1" type: "Deconvolution" bottom: "data" top: "d1"
  convolution_param { num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2 } }
layer { name: "d2" type: "Deconvolution" bottom: "d1" top: "d2"
  convolution_param { num_output: 3 kernel_size: 3 bias_term: false } }
"""), {"data": [2, 4, 9, 11]})


def test_inner_product(tmp_path):
    check_net(tmp_path, net("""
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 7 } }
layer { name: "ip3" type: "InnerProduct" bottom: "data" top: "ip3"
  inner_product_param { num_output: 3 axis: 2 bias_term: false } }
"""), {"data": [2, 4, 9, 11]})


def test_inner_product_transpose(tmp_path):
    # OpenCV 4.x ignores `transpose` (it reads the [K, N] blob as [N, K]), so this case is
    # checked against Caffe's definition, y = x @ W with W stored [K, N], in NumPy.
    import numpy as np

    from tests.importers.caffe.helpers import make_inputs
    from tests.oracles import assert_close, run_onnx
    from tests.oracles.caffe_write import write_caffemodel

    proto = tmp_path / "ip.prototxt"
    proto.write_text('input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 }\n'
                     'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                     'inner_product_param { num_output: 5 transpose: true } }\n')
    rng = np.random.default_rng(0)
    w = rng.standard_normal((12, 5)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    write_caffemodel(tmp_path / "ip.caffemodel", [("ip", "InnerProduct", [w, bias])])
    from modelport.convert.pipeline import convert
    from modelport.importers.registry import LoadOptions

    convert(proto, tmp_path / "ip.onnx", options=LoadOptions(weights=str(tmp_path / "ip.caffemodel")))
    x = make_inputs({"data": [2, 3, 4]})["data"]
    got = run_onnx(tmp_path / "ip.onnx", {"data": x})["ip"]
    assert_close(got, x.reshape(2, 12) @ w + bias, name="ip")


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("geometry", [
    "kernel_size: 3 stride: 2",            # ceil rounding adds a partial window
    "kernel_size: 3 stride: 2 pad: 1",     # padding plus ceil
    "kernel_size: 2 stride: 2 pad: 1",     # the last window would start in the padding
    "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0",
    "kernel_size: 3 stride: 2 pad: 1 ceil_mode: false",
    "global_pooling: true",
])
def test_pooling(tmp_path, pool, geometry):
    check_net(tmp_path, net(f"""
layer {{ name: "p" type: "Pooling" bottom: "data" top: "p"
  pooling_param {{ pool: {pool} {geometry} }} }}
"""), {"data": [2, 4, 9, 11]})


def test_activations(tmp_path):
    check_net(tmp_path, net("""
layer { name: "r" type: "ReLU" bottom: "data" top: "r" relu_param { negative_slope: 0.1 } }
layer { name: "pr" type: "PReLU" bottom: "data" top: "pr" }
layer { name: "prs" type: "PReLU" bottom: "data" top: "prs" prelu_param { channel_shared: true } }
layer { name: "e" type: "ELU" bottom: "data" top: "e" elu_param { alpha: 0.7 } }
layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" }
layer { name: "t" type: "TanH" bottom: "data" top: "t" }
layer { name: "a" type: "AbsVal" bottom: "data" top: "a" }
layer { name: "b" type: "BNLL" bottom: "data" top: "b" }
layer { name: "sw" type: "Swish" bottom: "data" top: "sw" }
layer { name: "d" type: "Dropout" bottom: "data" top: "d" dropout_param { dropout_ratio: 0.3 } }
"""), {"data": [2, 4, 9, 11]})


def test_power_exp_log_threshold(tmp_path):
    check_net(tmp_path, net("""
layer { name: "pw" type: "Power" bottom: "data" top: "pw"
  power_param { power: 2 scale: 0.5 shift: 1.5 } }
layer { name: "ex" type: "Exp" bottom: "data" top: "ex" exp_param { base: 2 scale: 0.5 shift: 0.1 } }
layer { name: "ex2" type: "Exp" bottom: "data" top: "ex2" }
layer { name: "lg2" type: "Log" bottom: "data" top: "lg2" }
"""), {"data": [2, 4, 9, 11]}, positive=True)


def test_batchnorm_scale_bias(tmp_path):
    check_net(tmp_path, net("""
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn"
  batch_norm_param { use_global_stats: true eps: 0.001 } }
layer { name: "sc" type: "Scale" bottom: "bn" top: "sc" scale_param { bias_term: true } }
layer { name: "sc2" type: "Scale" bottom: "sc" top: "sc2" }
layer { name: "gap" type: "Pooling" bottom: "data" top: "gap" pooling_param { pool: AVE global_pooling: true } }
layer { name: "gapf" type: "Flatten" bottom: "gap" top: "gapf" }
layer { name: "sc3" type: "Scale" bottom: "sc2" bottom: "gapf" top: "sc3"
  scale_param { axis: 0 } }
"""), {"data": [2, 4, 9, 11]})


def test_lrn_mvn_normalize(tmp_path):
    check_net(tmp_path, net("""
layer { name: "l1" type: "LRN" bottom: "data" top: "l1"
  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 } }
layer { name: "l2" type: "LRN" bottom: "data" top: "l2"
  lrn_param { local_size: 3 alpha: 0.3 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "m1" type: "MVN" bottom: "data" top: "m1" }
layer { name: "m2" type: "MVN" bottom: "data" top: "m2" mvn_param { across_channels: true } }
layer { name: "m3" type: "MVN" bottom: "data" top: "m3" mvn_param { normalize_variance: false } }
layer { name: "n1" type: "Normalize" bottom: "data" top: "n1"
  norm_param { across_spatial: false channel_shared: false } }
layer { name: "n2" type: "Normalize" bottom: "data" top: "n2" norm_param { across_spatial: true } }
"""), {"data": [2, 4, 9, 11]})


def test_concat_eltwise_softmax(tmp_path):
    check_net(tmp_path, net("""
layer { name: "c" type: "Convolution" bottom: "data" top: "c"
  convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "cat" type: "Concat" bottom: "data" bottom: "c" top: "cat" }
layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "c" top: "sum"
  eltwise_param { operation: SUM coeff: 0.5 coeff: -2 } }
layer { name: "prod" type: "Eltwise" bottom: "data" bottom: "c" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "data" bottom: "c" bottom: "sum" top: "max"
  eltwise_param { operation: MAX } }
layer { name: "sm" type: "Softmax" bottom: "cat" top: "sm" }
layer { name: "sm3" type: "Softmax" bottom: "prod" top: "sm3" softmax_param { axis: 3 } }
"""), {"data": [2, 4, 9, 11]})


def test_reshaping_layers(tmp_path):
    # Split, Flatten, Reshape (0 and -1), Slice (three tops), Permute.
    check_net(tmp_path, net("""
layer { name: "split" type: "Split" bottom: "data" top: "a" top: "b" }
layer { name: "fl" type: "Flatten" bottom: "a" top: "fl" }
layer { name: "fl2" type: "Flatten" bottom: "b" top: "fl2" flatten_param { axis: 2 } }
layer { name: "rs" type: "Reshape" bottom: "data" top: "rs"
  reshape_param { shape { dim: 0 dim: -1 dim: 11 } } }
layer { name: "sl" type: "Slice" bottom: "data" top: "s1" top: "s2" top: "s3"
  slice_param { axis: 1 slice_point: 1 slice_point: 3 } }
layer { name: "pm" type: "Permute" bottom: "s2" top: "pm"
  permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "e1" type: "Power" bottom: "s1" top: "e1" }
"""), {"data": [2, 4, 9, 11]})


def test_crop_and_shuffle(tmp_path):
    head = ('input: "data"\ninput_shape { dim: 1 dim: 6 dim: 10 dim: 12 }\n'
            'input: "ref"\ninput_shape { dim: 1 dim: 6 dim: 5 dim: 7 }\n')
    check_net(tmp_path, head + """
layer { name: "cr" type: "Crop" bottom: "data" bottom: "ref" top: "cr"
  crop_param { axis: 2 offset: 2 offset: 3 } }
layer { name: "sh" type: "ShuffleChannel" bottom: "cr" top: "sh" shuffle_channel_param { group: 3 } }
""", {"data": [1, 6, 10, 12], "ref": [1, 6, 5, 7]})


def test_interp_upsample(tmp_path):
    check_net(tmp_path, net("""
layer { name: "i1" type: "Interp" bottom: "data" top: "i1" interp_param { zoom_factor: 2 } }
layer { name: "i2" type: "Interp" bottom: "data" top: "i2" interp_param { height: 5 width: 17 } }
"""), {"data": [2, 4, 9, 11]})


def test_in_place_layers_and_shared_names(tmp_path):
    # ReLU and BatchNorm/Scale in place (top == bottom); two layers named "relu".
    check_net(tmp_path, net("""
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "conv2" type: "Convolution" bottom: "conv" top: "conv2"
  convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "sum" type: "Eltwise" bottom: "conv" bottom: "conv2" top: "sum" }
"""), {"data": [2, 4, 9, 11]})


def test_silence_and_input_layer(tmp_path):
    check_net(tmp_path, """
layer { name: "in" type: "Input" top: "data" top: "aux"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "si" type: "Silence" bottom: "aux" }
layer { name: "c" type: "Convolution" bottom: "data" top: "c"
  convolution_param { num_output: 2 kernel_size: 3 } }
""", {"data": [1, 3, 8, 8], "aux": [1, 3, 8, 8]})


# ---- layers OpenCV 4.x cannot read (Clip, Threshold, Bias, ArgMax, Embed, Tile and the
# round_mode field): checked against NumPy implementations of Caffe's definitions ----------


def _np_run(tmp_path, text, blobs, feeds):
    from tests.importers.caffe.helpers import convert_with
    from tests.oracles import run_onnx

    return run_onnx(convert_with(tmp_path, text, blobs), feeds)


def test_clip_threshold_tile_numpy(tmp_path):
    from tests.importers.caffe.helpers import make_inputs
    from tests.oracles import assert_close

    x = make_inputs({"data": [2, 4, 9, 11]})["data"]
    got = _np_run(tmp_path, net("""
layer { name: "cl" type: "Clip" bottom: "data" top: "cl" clip_param { min: -0.5 max: 0.7 } }
layer { name: "th" type: "Threshold" bottom: "data" top: "th" threshold_param { threshold: 0.8 } }
layer { name: "tl" type: "Tile" bottom: "data" top: "tl" tile_param { axis: 2 tiles: 3 } }
"""), {}, {"data": x})
    assert_close(got["cl"], np.clip(x, -0.5, 0.7), name="cl")
    assert_close(got["th"], (x > 0.8).astype(np.float32), name="th")
    assert_close(got["tl"], np.tile(x, (1, 1, 3, 1)), name="tl")


def test_bias_numpy(tmp_path):
    from tests.importers.caffe.helpers import make_inputs
    from tests.oracles import assert_close

    feeds = make_inputs({"data": [2, 4, 9, 11], "b": [4, 9]})
    x = feeds["data"]
    b0 = np.random.default_rng(5).standard_normal(4).astype(np.float32)
    got = _np_run(tmp_path, net("""
layer { name: "bi" type: "Bias" bottom: "data" top: "bi" }
layer { name: "bi2" type: "Bias" bottom: "data" bottom: "b" top: "bi2" }
""", HEAD + 'input: "b"\ninput_shape { dim: 4 dim: 9 }\n'), {"bi": [b0]}, feeds)
    assert_close(got["bi"], x + b0.reshape(4, 1, 1), name="bi")
    assert_close(got["bi2"], x + feeds["b"].reshape(4, 9, 1), name="bi2")


def test_argmax_numpy(tmp_path):
    from tests.importers.caffe.helpers import make_inputs
    from tests.oracles import assert_close

    x = make_inputs({"data": [2, 4, 9, 11]})["data"]
    got = _np_run(tmp_path, net("""
layer { name: "am" type: "ArgMax" bottom: "data" top: "am" argmax_param { axis: 1 } }
layer { name: "am2" type: "ArgMax" bottom: "data" top: "am2" argmax_param { top_k: 3 out_max_val: true } }
"""), {}, {"data": x})
    assert_close(got["am"], np.argmax(x, axis=1)[:, None].astype(np.float32), name="am")
    flat = x.reshape(2, -1)
    order = np.argsort(-flat, axis=1)[:, :3]
    want = np.stack([order.astype(np.float32), np.take_along_axis(flat, order, 1)], axis=1)
    assert_close(got["am2"], want, name="am2")


def test_embed_numpy(tmp_path):
    from tests.oracles import assert_close

    rng = np.random.default_rng(3)
    idx = rng.integers(0, 10, (4, 3)).astype(np.float32)
    w = rng.standard_normal((10, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    got = _np_run(tmp_path, 'input: "data"\ninput_shape { dim: 4 dim: 3 }\n' + """
layer { name: "em" type: "Embed" bottom: "data" top: "em"
  embed_param { num_output: 5 input_dim: 10 } }
""", {"em": [w, b]}, {"data": idx})
    assert_close(got["em"], w[idx.astype(int)] + b, name="em")


def test_round_mode_floor_matches_opencv_ceil_mode_false(tmp_path):
    # BVLC's round_mode: FLOOR and the forks' ceil_mode: false mean the same; OpenCV knows only
    # the latter, so the same pooling written both ways must agree.
    from tests.importers.caffe.helpers import convert_with, make_inputs, opencv_forward
    from tests.oracles import assert_close, run_onnx

    x = make_inputs({"data": [2, 4, 9, 11]})["data"]
    floor = convert_with(tmp_path, net("""
layer { name: "p" type: "Pooling" bottom: "data" top: "p"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR } }
"""), {})
    got = run_onnx(floor, {"data": x})["p"]
    ref = tmp_path / "ref.prototxt"
    ref.write_text(net("""
layer { name: "p" type: "Pooling" bottom: "data" top: "p"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 ceil_mode: false } }
"""))
    want = opencv_forward(ref, tmp_path / "np.caffemodel", {"data": x}, ["p"], {})["p"]
    assert got.shape == (2, 4, 5, 6)
    assert_close(got, want, name="p")


def test_reduction_log_lrn_k_numpy(tmp_path):
    # OpenCV lacks Reduction, and ignores log_param and LRN's k: Caffe's definitions in NumPy.
    from tests.importers.caffe.helpers import make_inputs
    from tests.oracles import assert_close

    x = make_inputs({"data": [2, 4, 9, 11]}, positive=True)["data"]
    got = _np_run(tmp_path, net("""
layer { name: "fl" type: "Flatten" bottom: "data" top: "fl" }
layer { name: "rd" type: "Reduction" bottom: "fl" top: "rd"
  reduction_param { axis: 1 operation: MEAN coeff: 2 } }
layer { name: "rd2" type: "Reduction" bottom: "data" top: "rd2"
  reduction_param { axis: 2 operation: SUMSQ } }
layer { name: "rd3" type: "Reduction" bottom: "data" top: "rd3" reduction_param { operation: ASUM } }
layer { name: "lg" type: "Log" bottom: "data" top: "lg" log_param { base: 10 scale: 2 shift: 0.5 } }
layer { name: "lrn" type: "LRN" bottom: "data" top: "lrn"
  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
"""), {}, {"data": x})
    assert_close(got["rd"], 2 * x.reshape(2, -1).mean(axis=1), name="rd")
    assert_close(got["rd2"], (x ** 2).sum(axis=(2, 3)), name="rd2")
    assert_close(got["rd3"], np.abs(x).sum(), name="rd3")
    assert_close(got["lg"], np.log10(2 * x + 0.5), name="lg")
    sq = np.pad(x ** 2, ((0, 0), (1, 1), (0, 0), (0, 0)))
    window = sq[:, :-2] + sq[:, 1:-1] + sq[:, 2:]
    assert_close(got["lrn"], x / (2 + 0.5 / 3 * window) ** 0.75, name="lrn")


def test_scale_two_bottoms_with_bias_numpy(tmp_path):
    # OpenCV applies a two-bottom Scale's bias wrongly at axis 0; Caffe: x * s + b over [N, C].
    from tests.importers.caffe.helpers import make_inputs
    from tests.oracles import assert_close

    feeds = make_inputs({"data": [2, 4, 3, 5], "s": [2, 4]})
    b = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    got = _np_run(tmp_path, """input: "data"
input_shape { dim: 2 dim: 4 dim: 3 dim: 5 }
input: "s"
input_shape { dim: 2 dim: 4 }
layer { name: "sc" type: "Scale" bottom: "data" bottom: "s" top: "sc"
  scale_param { axis: 0 bias_term: true } }
""", {"sc": [b]}, feeds)
    want = feeds["data"] * feeds["s"][:, :, None, None] + b[:, :, None, None]
    assert_close(got["sc"], want, name="sc")


@pytest.mark.parametrize("code, keep", [("CENTER_SIZE", 12), ("CORNER", 400)])
def test_prior_box_and_detection_output(tmp_path, code, keep):
    # SSD's tail on a small net: PriorBox (constants), softmaxed scores for 4 classes, NMS,
    # keep_top_k across classes (12 cuts, 400 does not). OpenCV pads its output to keep_top_k
    # rows of zeros and orders it by score; the reference runner turns that into Caffe's layout
    # (kept rows only, by label then score). keep_top_k: -1 crashes OpenCV 4.14.
    head = ('input: "data"\ninput_shape { dim: 1 dim: 3 dim: 32 dim: 32 }\n'
            'input: "feat"\ninput_shape { dim: 1 dim: 4 dim: 4 dim: 4 }\n')
    check_net(tmp_path, head + f"""
layer {{ name: "pb" type: "PriorBox" bottom: "feat" bottom: "data" top: "pb"
  prior_box_param {{ min_size: 8 max_size: 16 aspect_ratio: 2 flip: true clip: false
                    variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 offset: 0.5 }} }}
layer {{ name: "loc" type: "Convolution" bottom: "feat" top: "loc"
  convolution_param {{ num_output: 16 kernel_size: 3 pad: 1 }} }}
layer {{ name: "locp" type: "Permute" bottom: "loc" top: "locp" permute_param {{ order: 0 order: 2 order: 3 order: 1 }} }}
layer {{ name: "locf" type: "Flatten" bottom: "locp" top: "locf" }}
layer {{ name: "conf" type: "Convolution" bottom: "feat" top: "conf"
  convolution_param {{ num_output: 16 kernel_size: 3 pad: 1 }} }}
layer {{ name: "confp" type: "Permute" bottom: "conf" top: "confp" permute_param {{ order: 0 order: 2 order: 3 order: 1 }} }}
layer {{ name: "conff" type: "Flatten" bottom: "confp" top: "conff" }}
layer {{ name: "confr" type: "Reshape" bottom: "conff" top: "confr" reshape_param {{ shape {{ dim: 0 dim: -1 dim: 4 }} }} }}
layer {{ name: "confs" type: "Softmax" bottom: "confr" top: "confs" softmax_param {{ axis: 2 }} }}
layer {{ name: "confsf" type: "Flatten" bottom: "confs" top: "confsf" }}
layer {{ name: "det" type: "DetectionOutput" bottom: "locf" bottom: "confsf" bottom: "pb" top: "det"
  detection_output_param {{ num_classes: 4 share_location: true background_label_id: 0
    nms_param {{ nms_threshold: 0.45 top_k: 20 }} code_type: {code} keep_top_k: {keep}
    confidence_threshold: 0.2 }} }}
""", {"data": [1, 3, 32, 32], "feat": [1, 4, 4, 4]})


def test_batchnorm_batch_statistics(tmp_path):
    # use_global_stats: false normalises with the batch's own statistics (OpenCV: batch 1 only).
    check_net(tmp_path, """input: "data"
input_shape { dim: 1 dim: 4 dim: 5 dim: 6 }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn"
  batch_norm_param { use_global_stats: false eps: 0.001 } }
""", {"data": [1, 4, 5, 6]})


def test_upsample_numpy(tmp_path):
    # OpenCV has no Caffe Upsample; nearest-neighbour by integer factors, as the forks define it.
    from tests.importers.caffe.helpers import make_inputs
    from tests.oracles import assert_close

    x = make_inputs({"data": [2, 4, 9, 11]})["data"]
    got = _np_run(tmp_path, net("""
layer { name: "up" type: "Upsample" bottom: "data" top: "up" upsample_param { scale: 2 } }
layer { name: "up2" type: "Upsample" bottom: "data" top: "up2" upsample_param { scale_h: 3 scale_w: 1 } }
"""), {}, {"data": x})
    assert_close(got["up"], x.repeat(2, axis=2).repeat(2, axis=3), name="up")
    assert_close(got["up2"], x.repeat(3, axis=2), name="up2")
