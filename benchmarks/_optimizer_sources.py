"""The models of benchmarks/onnx_optimizer_quality.py, one group per source.

Each entry maps a model name to a function ``prepare(folder) -> Prepared``: the ONNX file that
modelport -O2, onnxslim and onnxsim are all applied to (``baseline``), who made it, and, for
formats the peers cannot read (Keras, Caffe), the same model converted by modelport -O2
straight from its source file (``direct``).

- ``pytorch``: the PyTorch test models (tests/importers/pytorch/models.py), torch.onnx export
  with a dynamic batch;
- ``hf``: Hugging Face ``transformers`` architectures from small configs, random weights,
  torch.onnx export with a dynamic batch (needs ``transformers``);
- ``keras``: the Keras importer's test models (tests/importers/keras/cases.py, Keras 3, seeded
  weights, saved as ``.keras``) and the real Keras 1/2 files of the shared corpus; the baseline
  is modelport's own ``-O0`` conversion (importer output, no optimiser);
- ``caffe``: the demo LeNet (examples/make_demo_models.py) and published nets of the shared
  corpus with seeded random weights (the MTCNN nets with their real weights), batch 1;
  baseline: modelport ``-O0``;
- ``tf2onnx``: ONNX made by tf2onnx (``python -m tf2onnx.convert --graphdef``, opset 17) from
  the frozen TensorFlow graphs of the shared corpus and from the TensorFlow importer's test
  models frozen with a dynamic batch (needs tf2onnx).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = Path(os.environ.get("MODELPORT_CORPUS", ROOT / ".." / "shared" / "corpus"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@dataclasses.dataclass
class Prepared:
    baseline: str
    made_by: str  # "torch.onnx", "modelport -O0", "tf2onnx"
    direct: str | None = None  # modelport -O2 from the source file, where that is not ONNX
    feeds: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # fixed inputs


Prepare = Callable[[Path], Prepared]


# ---- PyTorch and Hugging Face --------------------------------------------------------------

def torch_export(factory, make_inputs, path: str) -> None:
    import torch

    torch.manual_seed(0)
    module = factory().eval()
    inputs = make_inputs()
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (), kwargs=inputs, dynamo=True, verbose=False,
                                    dynamic_shapes={k: {0: batch} for k in inputs})
    program.save(path)


def _torch_entry(name, factory, make_inputs) -> Prepare:
    def prepare(folder: Path) -> Prepared:
        path = str(folder / f"{name}.onnx")
        torch_export(factory, make_inputs, path)
        return Prepared(path, "torch.onnx")
    return prepare


def pytorch_models() -> dict[str, Prepare]:
    import torch

    from tests.importers.pytorch.models import MODELS

    def inputs_for(shapes):
        return lambda: {k: torch.randn(*s) for k, s in shapes.items()}

    return {name: _torch_entry(name, factory, inputs_for(shapes))
            for name, (factory, shapes) in MODELS.items()}


def hf_models() -> dict[str, Prepare]:
    try:
        import torch
        import transformers as T
    except ImportError:
        print("transformers: not installed; the Hugging Face models are skipped",
              file=sys.stderr)
        return {}

    def image():
        return {"pixel_values": torch.randn(2, 3, 32, 32)}

    def tokens():
        return {"input_ids": torch.randint(0, 100, (2, 8), generator=torch.Generator()
                                           .manual_seed(0))}

    models = {
        "hf-resnet": (lambda: T.ResNetForImageClassification(T.ResNetConfig(
            embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic",
            num_labels=10)), image),
        "hf-mobilenetv2": (lambda: T.MobileNetV2ForImageClassification(T.MobileNetV2Config(
            image_size=32, depth_multiplier=0.35, num_labels=10)), image),
        "hf-convnext": (lambda: T.ConvNextForImageClassification(T.ConvNextConfig(
            hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, num_labels=10,
            image_size=32)), image),
        "hf-vit": (lambda: T.ViTForImageClassification(T.ViTConfig(
            image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64, num_labels=10)), image),
        "hf-bert": (lambda: T.BertModel(T.BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64)), tokens),
        "hf-gpt2": (lambda: T.GPT2LMHeadModel(T.GPT2Config(
            vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, use_cache=False,
            bos_token_id=0, eos_token_id=0)), tokens),
    }
    return {name: _torch_entry(name, f, i) for name, (f, i) in models.items()}


# ---- Keras and Caffe: modelport -O0 is the baseline ----------------------------------------

def _modelport_pair(name: str, src: str, folder: Path, **options) -> Prepared:
    """The source converted at -O0 (the baseline every optimiser gets) and at -O2."""
    from modelport.convert.pipeline import convert
    from modelport.importers.registry import LoadOptions

    paths = {}
    for level in (0, 2):
        paths[level] = str(folder / f"{name}.direct-O{level}.onnx")
        with contextlib.redirect_stdout(io.StringIO()):
            convert(src, paths[level], options=LoadOptions(**options), level=level, force=True)
    return Prepared(paths[0], "modelport -O0", direct=paths[2])


def _keras_case(name: str, builder) -> Prepare:
    def prepare(folder: Path) -> Prepared:
        import keras

        from tests.importers.keras.helpers import randomize

        keras.utils.set_random_seed(0)
        model = builder(keras)
        randomize(model)
        src = str(folder / f"{name}.keras")
        model.save(src)
        return _modelport_pair(name, src, folder)
    return prepare


KERAS_CORPUS = [  # (stem, source file, weights file or None) under corpus/keras
    ("mnist_mlp_th_keras_1", "dl4j_mnist_mlp_th_keras_1_config.json",
     "dl4j_mnist_mlp_th_keras_1_weights.h5"),
    ("mnist_mlp_th_keras_2", "dl4j_mnist_mlp_th_keras_2_config.json",
     "dl4j_mnist_mlp_th_keras_2_weights.h5"),
    ("mnist_cnn_tf_keras_1", "dl4j_mnist_cnn_tf_keras_1_config.json",
     "dl4j_mnist_cnn_tf_keras_1_weights.h5"),
    ("mnist_cnn_th_keras_1", "dl4j_mnist_cnn_th_keras_1_config.json",
     "dl4j_mnist_cnn_th_keras_1_weights.h5"),
    ("simple_lstm_tf_keras_1", "dl4j_simple_lstm_tf_keras_1_model.h5", None),
    ("simple_lstm_th_keras_1", "dl4j_simple_lstm_th_keras_1_model.h5", None),
    ("simple_rnn_tf_keras_2", "dl4j_simple_rnn_tf_keras_2_model.h5", None),
]


def _keras_file(name: str, src: Path, weights: Path | None) -> Prepare:
    def prepare(folder: Path) -> Prepared:
        return _modelport_pair(name, str(src), folder,
                               weights=str(weights) if weights else None)
    return prepare


def keras_models() -> dict[str, Prepare]:
    from tests.importers.keras.cases import CASES

    models = {f"keras-{n}": _keras_case(f"keras-{n}", b) for n, b in CASES.items()}
    folder = CORPUS / "keras"
    for stem, src, weights in KERAS_CORPUS:
        if (folder / src).is_file():
            models[f"keras-dl4j-{stem}"] = _keras_file(
                f"keras-dl4j-{stem}", folder / src, folder / weights if weights else None)
        else:
            print(f"keras corpus file missing: {folder / src}; skipped", file=sys.stderr)
    return models


# Corpus nets: small and middle-sized ones (the biggest, VGG/ResNet-101+/Inception-v4, take
# minutes per optimiser on this machine), the MTCNN nets with their real weights, and
# MobileNet-SSD up to DetectionOutput's inputs.
CAFFE_CORPUS = [
    "bvlc_V0format_lenet", "bvlc_V0format_cifar10_quick", "bvlc_V1format_lenet",
    "bvlc_mnist_lenet", "bvlc_cifar10_cifar10_full", "bvlc_cifar10_cifar10_quick",
    "bvlc_siamese_mnist_siamese", "forresti_SqueezeNet_v1.0_deploy",
    "forresti_SqueezeNet_v1.1_deploy", "shicai_mobilenet_v1_deploy",
    "shicai_mobilenet_v2_deploy", "soeaver_deploy_resnet18-priv", "bvlc_googlenet_deploy",
    "kaiminghe_ResNet-50-deploy", "soeaver_deploy_inception-v3", "soeaver_deploy_xception",
    "soeaver_deploy_resnext50-32x4d", "soeaver_deploy_dpn92",
]
CAFFE_REAL_WEIGHTS = ["mtcnn_det1", "mtcnn_det2", "mtcnn_det3", "mtcnn_det4"]
CAFFE_HEADS = {"chuanqi305_MobileNetSSD_deploy": ["mbox_loc", "mbox_conf_flatten",
                                                  "mbox_priorbox"]}


def _caffe_net(name: str, proto: Path | None, text: str | None = None, real: bool = False,
               outputs: list[str] | None = None) -> Prepare:
    def prepare(folder: Path) -> Prepared:
        from tests.oracles.caffe_write import random_caffemodel

        path = proto
        if text is not None:
            path = folder / f"{name}.prototxt"
            path.write_text(text)
        from tests.importers.caffe.test_corpus import _batch1

        shapes = _batch1(path)
        if real:
            weights = path.with_suffix(".caffemodel")
        else:
            weights = folder / f"{name}.caffemodel"
            random_caffemodel(path, weights, seed=0, input_shapes=shapes, outputs=outputs)
        return _modelport_pair(name, str(path), folder, weights=str(weights),
                               input_shapes=shapes, outputs=outputs)
    return prepare


def caffe_models() -> dict[str, Prepare]:
    sys.path.insert(0, str(ROOT / "examples"))
    from make_demo_models import CAFFE_NET

    models = {"caffe-demo_lenet": _caffe_net("caffe-demo_lenet", None, text=CAFFE_NET)}
    folder = CORPUS / "caffe"
    wanted = [(s, False, None) for s in CAFFE_CORPUS] + [
        (s, True, None) for s in CAFFE_REAL_WEIGHTS] + [
        (s, False, o) for s, o in CAFFE_HEADS.items()]
    for stem, real, outputs in wanted:
        proto = folder / f"{stem}.prototxt"
        if not proto.is_file():
            print(f"caffe corpus file missing: {proto}; skipped", file=sys.stderr)
            continue
        models[f"caffe-{stem}"] = _caffe_net(f"caffe-{stem}", proto, real=real,
                                             outputs=outputs)
    return models


# ---- tf2onnx -------------------------------------------------------------------------------

# corpus/tf frozen graphs: inputs (name -> shape, None for the batch), outputs, fixed feeds
TF_CORPUS = {
    "tf2onnx_ae0_frozen.pb": ({"X:0": [None, 784]}, ["output:0"], {}),
    "tf2onnx_fc-layers_frozen.pb": ({"X:0": [None, 784]}, ["output:0"], {}),
    # keep_prob = 1: the dropout mask (RandomUniform) is then all ones
    "tf2onnx_gru_frozen.pb": ({"X:0": [None, 784], "keep_prob:0": [1]}, ["output:0"],
                              {"keep_prob:0": np.ones([1], np.float32)}),
    "tf2onnx_lstm_frozen.pb": ({"X:0": [None, 784], "keep_prob:0": [1]}, ["output:0"],
                               {"keep_prob:0": np.ones([1], np.float32)}),
    "tf2onnx_regression_graphdef_frozen.pb": ({"X:0": [4]}, ["pred:0"], {}),
    "opencv_face_detector_uint8.pb": ({"data:0": [1, 300, 300, 3]},
                                      ["mbox_loc:0", "mbox_conf_flatten:0"], {}),
}
TF_BUILT = ["cnn", "plain_cnn", "mlp", "transformer"]  # tests/importers/tensorflow/models.py
TF_RECURRENT = ["lstm", "gru", "simple_rnn", "bidirectional", "stacked"]  # its recurrent()


def tf2onnx_python() -> str | None:
    """An interpreter that imports tf2onnx: this one, else .venv-bench's."""
    for python in (sys.executable, str(ROOT / ".venv-bench" / "bin" / "python")):
        if os.path.exists(python) and subprocess.run(
                [python, "-c", "import tf2onnx"], capture_output=True).returncode == 0:
            return python
    return None


def run_tf2onnx(python: str, graphdef: str, inputs: dict, outputs: list[str], out: str) -> None:
    def spec(name, shape):
        return name + "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"

    cmd = [python, "-m", "tf2onnx.convert", "--graphdef", graphdef, "--opset", "17",
           "--inputs", ",".join(spec(k, v) for k, v in inputs.items()),
           "--outputs", ",".join(outputs), "--output", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(out):
        raise RuntimeError("tf2onnx failed: " + r.stderr.strip().splitlines()[-1][-300:])


def _tf_corpus(name: str, path: Path, python: str) -> Prepare:
    inputs, outputs, feeds = TF_CORPUS[path.name]

    def prepare(folder: Path) -> Prepared:
        out = str(folder / f"{name}.onnx")
        run_tf2onnx(python, str(path), inputs, outputs, out)
        return Prepared(out, "tf2onnx", feeds=feeds)
    return prepare


def _freeze_to_tf2onnx(name: str, model, folder: Path, python: str, lower: bool) -> Prepared:
    """``model`` frozen as a GraphDef with a dynamic batch, converted by tf2onnx."""
    import tensorflow as tf

    from tests.importers.tensorflow import models as M

    specs = [tf.TensorSpec([None, *t.shape[1:]], tf.as_dtype(getattr(t.dtype, "name", t.dtype)))
             for t in model.inputs]
    pb = folder / f"{name}.pb"
    if len(specs) == 1:
        _, ins, outs = M.freeze(lambda x: model(x, training=False), specs, pb, lower)
    else:
        _, ins, outs = M.freeze(lambda *xs: model(list(xs), training=False), specs, pb, lower)
    out = str(folder / f"{name}.onnx")
    run_tf2onnx(python, str(pb), {f"{n}:0": [None, *s.shape[1:]] for n, s in zip(ins, specs)},
                [f"{o}:0" for o in outs], out)
    return Prepared(out, "tf2onnx")


def _tf_built(name: str, builder: str, python: str) -> Prepare:
    def prepare(folder: Path) -> Prepared:
        import keras

        from tests.importers.tensorflow import models as M

        keras.utils.set_random_seed(0)
        model = getattr(M, builder)(keras)
        M.randomize(model, seed=0)
        return _freeze_to_tf2onnx(name, model, folder, python, lower=True)
    return prepare


def _tf_recurrent(name: str, key: str, python: str) -> Prepare:
    def prepare(folder: Path) -> Prepared:
        import keras

        from tests.importers.tensorflow import models as M

        keras.utils.set_random_seed(0)
        model = M.recurrent(keras)[key]
        M.randomize(model, seed=0)
        # functional While kept: tf2onnx rewrites it into LSTM/GRU/RNN or a Loop
        return _freeze_to_tf2onnx(name, model, folder, python, lower=False)
    return prepare


def _tf_keras_case(name: str, builder, python: str) -> Prepare:
    def prepare(folder: Path) -> Prepared:
        import keras

        from tests.importers.keras.helpers import randomize

        keras.utils.set_random_seed(0)
        model = builder(keras)
        randomize(model)
        return _freeze_to_tf2onnx(name, model, folder, python, lower=True)
    return prepare


def tf2onnx_models() -> dict[str, Prepare]:
    python = tf2onnx_python()
    if python is None:
        print("tf2onnx: not installed (here or in .venv-bench); its models are skipped",
              file=sys.stderr)
        return {}
    from tests.importers.keras.cases import CASES

    models = {f"tf2onnx-{b}": _tf_built(f"tf2onnx-{b}", b, python) for b in TF_BUILT}
    models.update({f"tf2onnx-rnn-{k}": _tf_recurrent(f"tf2onnx-rnn-{k}", k, python)
                   for k in TF_RECURRENT})
    models.update({f"tf2onnx-keras-{k}": _tf_keras_case(f"tf2onnx-keras-{k}", b, python)
                   for k, b in CASES.items()})
    for file in TF_CORPUS:
        path = CORPUS / "tf" / file
        stem = file.removesuffix(".pb").removesuffix("_frozen").removeprefix("tf2onnx_")
        if path.is_file():
            models[f"tf2onnx-{stem}"] = _tf_corpus(f"tf2onnx-{stem}", path, python)
        else:
            print(f"tf corpus file missing: {path}; skipped", file=sys.stderr)
    return models


GROUPS = {"pytorch": pytorch_models, "hf": hf_models, "keras": keras_models,
          "caffe": caffe_models, "tf2onnx": tf2onnx_models}
