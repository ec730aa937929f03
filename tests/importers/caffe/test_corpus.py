"""The published Caffe nets in the shared corpus (read from ../shared/corpus, never copied):
each is converted with seeded random weights (the MTCNN nets with their real weights) and
compared with OpenCV DNN on seeded random inputs. Big nets are marked slow."""

from __future__ import annotations

import cv2  # noqa: F401  (the "caffe" extra: without OpenCV these tests fail, never skip)
import pytest

from modelport.convert.pipeline import convert
from modelport.convert.runners.caffe_opencv import reference
from modelport.importers.registry import LoadOptions
from tests.importers.caffe.helpers import corpus_dir, make_inputs
from tests.oracles import assert_close, run_onnx
from tests.oracles.caffe_write import random_caffemodel

CORPUS = corpus_dir()
slow = pytest.mark.slow

# (file stem, input shape override or None, outputs to keep or None)
FAST = [
    "bvlc_V0format_lenet", "bvlc_V0format_cifar10_quick", "bvlc_V1format_lenet",
    "bvlc_mnist_lenet", "bvlc_cifar10_cifar10_full", "bvlc_cifar10_cifar10_quick",
    "forresti_SqueezeNet_v1.1_deploy", "shicai_mobilenet_v1_deploy",
    "soeaver_deploy_resnet18-priv",
]
SLOW = [
    "bvlc_V0format_imagenet_deploy", "bvlc_V1format_alexnet_deploy",
    "bvlc_V1format_googlenet_deploy", "bvlc_alexnet_deploy",
    "bvlc_finetune_flickr_style_deploy", "bvlc_googlenet_deploy",
    "bvlc_net_surgery_bvlc_caffenet_full_conv", "bvlc_reference_caffenet_deploy",
    "bvlc_reference_rcnn_ilsvrc13_deploy", "bvlc_siamese_mnist_siamese",
    "forresti_SqueezeNet_v1.0_deploy", "kaiminghe_ResNet-50-deploy",
    "kaiminghe_ResNet-101-deploy", "kaiminghe_ResNet-152-deploy",
    "shicai_mobilenet_v2_deploy", "soeaver_deploy_dpn92",
    "soeaver_deploy_inception-resnet-v2", "soeaver_deploy_inception-v1-tf",
    "soeaver_deploy_inception-v3", "soeaver_deploy_inception-v4",
    "soeaver_deploy_resnet101-v2", "soeaver_deploy_resnext50-32x4d",
    "soeaver_deploy_vgg16-tf", "soeaver_deploy_vgg16bn-pytorch", "soeaver_deploy_wrn50-2",
    "soeaver_deploy_xception",
]
# SSD nets: whole (DetectionOutput included) and up to DetectionOutput's three inputs (with
# random weights, few scores pass MobileNet-SSD's 0.25 threshold: the heads check the numbers).
SSD_HEADS = ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"]
SSD = ["chuanqi305_MobileNetSSD_deploy", "chuanqi305_voc_MobileNetSSD_deploy",
       "opencv_res10_300x300_ssd_deploy"]


def _batch1(proto) -> dict[str, list[int]]:
    from modelport.importers.caffe.proto import read_net

    net, _ = read_net(str(proto))
    shapes = {}
    for i, name in enumerate(net.input):
        dims = list(net.input_shape[i].dim) if i < len(net.input_shape) else list(
            net.input_dim[4 * i: 4 * i + 4])
        shapes[name] = [1, *dims[1:]]
    for layer in net.layer:
        if layer.type == "Input":
            for top, shape in zip(layer.top, layer.input_param.shape):
                shapes[top] = [1, *list(shape.dim)[1:]]
    return shapes


def _check(tmp_path, stem: str, *, real_weights: bool = False, outputs=None, edit=None):
    proto = CORPUS / f"{stem}.prototxt"
    if not proto.is_file():
        pytest.fail(f"corpus file missing: {proto} (set MODELPORT_CORPUS)")
    if edit is not None:  # an edited copy in tmp_path (the corpus itself stays untouched)
        text = edit(proto.read_text())
        proto = tmp_path / proto.name
        proto.write_text(text)
    shapes = _batch1(proto)
    if real_weights:
        weights = CORPUS / f"{stem}.caffemodel"
    else:
        weights = tmp_path / f"{stem}.caffemodel"
        random_caffemodel(proto, weights, seed=0, input_shapes=shapes, outputs=outputs)
    options = LoadOptions(weights=str(weights), input_shapes=shapes, outputs=outputs)
    out = tmp_path / f"{stem}.onnx"
    convert(proto, out, options=options, force=True)
    feeds = make_inputs(shapes, seed=1)
    got = run_onnx(out, feeds)
    want = reference(str(proto), options).run(feeds)
    assert set(got) == set(want) and got
    for name in got:
        assert_close(got[name], want[name], name=f"{stem}:{name}")


@pytest.mark.parametrize("stem", FAST)
def test_corpus_net(tmp_path, stem):
    _check(tmp_path, stem)


@slow
@pytest.mark.parametrize("stem", SLOW)
def test_corpus_net_slow(tmp_path, stem):
    _check(tmp_path, stem)


@pytest.mark.parametrize("stem", ["mtcnn_det1", "mtcnn_det2", "mtcnn_det3", "mtcnn_det4"])
def test_mtcnn_real_weights(tmp_path, stem):
    _check(tmp_path, stem, real_weights=True)


@slow
@pytest.mark.parametrize("stem", SSD)
def test_ssd_heads(tmp_path, stem):
    _check(tmp_path, stem, outputs=SSD_HEADS)


@slow
@pytest.mark.parametrize("stem", SSD)
def test_ssd_whole(tmp_path, stem):
    _check(tmp_path, stem)


@pytest.mark.parametrize("stem, missing", [
    ("bvlc_mnist_mnist_autoencoder", {"SigmoidCrossEntropyLoss", "EuclideanLoss"}),
    ("soeaver_deploy_faster_voc_mobilenet-dw", {"Python", "ROIPooling"}),
    ("soeaver_deploy_rfcn_voc_resnet18-priv-merge", {"Python", "PSROIPooling"}),
    ("bvlc_alexnet_train_val", {"Data", "Accuracy", "SoftmaxWithLoss"}),
])
def test_unsupported_layers_listed_together(tmp_path, stem, missing):
    from modelport.errors import UnsupportedOpsError
    from modelport.importers.caffe.load import load

    with pytest.raises(UnsupportedOpsError) as info:
        load(str(CORPUS / f"{stem}.prototxt"), LoadOptions(random_weights=True))
    assert set(info.value.ops) == missing


@slow
def test_pspnet_without_its_unused_input(tmp_path):
    # OpenCV cannot read the net as published: its second input "data_dim" is consumed by no
    # layer, which OpenCV rejects (modelport converts it as is). Without that input OpenCV
    # reads it, and both outputs (Interp upsampling to 513x513) must match.
    def drop_data_dim(text: str) -> str:
        start = text.index('input: "data_dim"')
        end = text.index("}", start) + 1
        return text[:start] + text[end:]

    _check(tmp_path, "soeaver_deploy_psp_inception-v4-merge", edit=drop_data_dim)


def test_training_net_is_explained():
    from modelport.errors import InvalidModelError
    from modelport.importers.caffe.load import load

    with pytest.raises(InvalidModelError, match="training net"):
        load(str(CORPUS / "chuanqi305_MobileNetSSD_train.prototxt"),
             LoadOptions(random_weights=True))
