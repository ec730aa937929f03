"""Fixtures for the TensorFlow importer tests.

TensorFlow is slow to import and to build models with, so everything is built once per
session: the models of :mod:`.models` (frozen GraphDefs, SavedModels) and the corpus files are
converted together in ONE child process in which ``import tensorflow`` fails (proving that
conversion never needs it), and each test then compares a converted model with TensorFlow's
outputs computed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parents[3]
CORPUS_DIR_NAME = {"tf": "tf", "caffe": "caffe"}


def corpus_dir() -> Path:
    env = os.environ.get("MODELPORT_CORPUS")
    if env:
        return Path(env) / "tf"
    return ROOT / ".." / "shared" / "corpus" / "tf"


_BLOCKED = textwrap.dedent("""
    import json, sys, traceback
    for name in ("tensorflow", "keras", "tf_keras"):
        sys.modules[name] = None  # any import of them raises ImportError
    from modelport.convert.pipeline import convert
    from modelport.importers.registry import LoadOptions
    results = {}
    for job in json.loads(open(sys.argv[1]).read()):
        try:
            convert(job["src"], job["out"], force=True, options=LoadOptions(**job["options"]))
            results[job["name"]] = "ok"
        except Exception as exc:
            results[job["name"]] = f"{type(exc).__name__}: {exc}"
    for name in ("tensorflow", "keras", "tf_keras"):
        assert sys.modules.get(name) is None, name
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        print("tensorflow blocked")
    print(json.dumps(results))
""")


def convert_without_tensorflow(jobs: list[dict], workdir: Path) -> dict[str, str]:
    """Convert every job in one child process where TensorFlow cannot be imported."""
    spec = workdir / "jobs.json"
    spec.write_text(json.dumps(jobs))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _BLOCKED, str(spec)], capture_output=True,
                          text=True, env=env, timeout=900, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "tensorflow blocked" in lines, proc.stdout[-2000:]
    return json.loads(lines[-1])


@pytest.fixture(scope="session")
def tf():
    import tensorflow

    return tensorflow


@pytest.fixture(scope="session")
def built(tf, tmp_path_factory):
    """Every test model and corpus file, converted without TensorFlow: name -> Case."""
    import keras
    from google.protobuf import text_format

    from tests.importers.tensorflow import models as M

    folder = tmp_path_factory.mktemp("tf_models")
    cases: dict[str, M.Case] = {}
    for i, (name, build, shape) in enumerate([("cnn", M.cnn, (2, 32, 32, 3)),
                                              ("mlp", M.mlp, (3, 20)),
                                              ("transformer", M.transformer, (2, 12, 32))]):
        model = build(keras)
        M.randomize(model, i)
        feeds = M.rng_inputs(10 + i, shape)
        cases[name] = M.keras_frozen(name, model, feeds, folder)
        cases[name + "_export"] = M.keras_export(name + "_export", model, feeds, folder)

    # The CNN's GraphDef again, as text (.pbtxt).
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(cases["cnn"].src).read_bytes())
    text = folder / "cnn.pbtxt"
    text.write_text(text_format.MessageToString(graph_def))
    cases["cnn_pbtxt"] = M.Case("cnn_pbtxt", str(text), cases["cnn"].feeds,
                                cases["cnn"].expected)

    for name, fn, shapes in M.raw_ops(tf):
        rng = np.random.default_rng(1)
        feeds = [np.array([3, 0, 7], np.int32) if s == "i" else
                 rng.standard_normal(s).astype(np.float32) for s in shapes]
        specs = [tf.TensorSpec(f.shape, tf.as_dtype(f.dtype)) for f in feeds]
        if name == "shapes":  # a dynamic batch: the shape arithmetic stays in the graph
            specs = [tf.TensorSpec([None, *shapes[0][1:]], tf.float32)]
        cases[name] = M.frozen_case(name, fn, feeds, folder, specs)

    feeds, expected = M.tf1_graph(tf, folder / "tf1.pb")
    cases["tf1"] = M.Case("tf1", str(folder / "tf1.pb"), feeds, expected)
    (f1, e1), (f2, e2) = M.two_signatures(tf, folder / "two")
    cases["two_default"] = M.Case("two_default", str(folder / "two"), f1, e1)
    cases["two_embed"] = M.Case("two_embed", str(folder / "two" / "saved_model.pb"), f2, e2,
                                options={"extra": {"signature": "embed"}})

    jobs = [{"name": c.name, "src": c.src, "out": str(folder / f"{c.name}.onnx"),
             "options": c.options} for c in cases.values()]
    corpus = corpus_dir()
    for name, options in CORPUS.items():
        if (corpus / name).is_file():
            jobs.append({"name": name, "src": str(corpus / name),
                         "out": str(folder / f"{name}.onnx"), "options": options})
    results = convert_without_tensorflow(jobs, folder)
    return {"cases": cases, "results": results, "folder": folder}


# Corpus files and their conversion options (their Placeholders have no shapes).
CORPUS = {
    "tf2onnx_ae0_frozen.pb": {"input_shapes": {"X": [1, 784]}},
    "tf2onnx_fc-layers_frozen.pb": {"input_shapes": {"X:0": [1, 784]}},
    "tf2onnx_gru_frozen.pb": {"input_shapes": {"X": [1, 784], "keep_prob": [1]}},
    "tf2onnx_lstm_frozen.pb": {"input_shapes": {"X": [1, 784], "keep_prob": [1]}},
    "tf2onnx_regression_graphdef_frozen.pb": {"input_shapes": {"X": [4]},
                                              "outputs": ["pred:0"]},
    "opencv_face_detector_uint8.pb": {"input_shapes": {"data": [1, 300, 300, 3]}},
}
