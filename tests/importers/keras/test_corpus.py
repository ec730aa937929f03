"""The real Keras 1/2 files of the shared corpus (Deeplearning4j's Keras-import test files,
read from ../shared/corpus/keras, never copied): converted with TensorFlow blocked, compared
with the golden outputs the original Keras wrote next to them (``*_inputs_and_outputs.h5``),
or, for the MNIST CNNs that have none, with Keras 1.2.2 on Theano at rtol=1e-3, atol=1e-4."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from modelport.convert.runners.theano import TheanoReference, theano_reference
from modelport.importers.registry import LoadOptions
from tests.importers.keras import theano_helpers as th
from tests.oracles import assert_close, run_onnx


def corpus_dir() -> Path:
    env = os.environ.get("MODELPORT_CORPUS")
    if env:
        return Path(env) / "keras"
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus" / "keras"


CORPUS = corpus_dir()
# (stem, has golden outputs, backend the file was saved with and modelport should take)
FILES = [
    ("mnist_mlp_th_keras_1", True), ("mnist_mlp_th_keras_2", True),
    ("simple_lstm_th_keras_1", True), ("simple_lstm_tf_keras_1", True),
    ("simple_rnn_tf_keras_2", True),
    ("mnist_cnn_th_keras_1", False), ("mnist_cnn_tf_keras_1", False),
]


def _source(stem: str) -> tuple[Path, Path | None]:
    base = CORPUS / f"dl4j_{stem}"
    model = base.with_name(base.name + "_model.h5")
    if model.is_file():
        return model, None
    return base.with_name(base.name + "_config.json"), base.with_name(base.name + "_weights.h5")


def test_corpus_present():
    assert CORPUS.is_dir(), f"the Keras corpus is missing: {CORPUS} (set MODELPORT_CORPUS)"
    listed = {p.name for p in CORPUS.iterdir()}
    for stem, golden in FILES:
        src, w = _source(stem)
        assert src.name in listed and (w is None or w.name in listed), stem
        if golden:
            assert f"dl4j_{stem}_inputs_and_outputs.h5" in listed


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    sources = {stem: _source(stem) for stem, _ in FILES}
    srcs = [s for s, _ in sources.values()]
    weights = {s: w for s, w in sources.values() if w is not None}
    return th.convert_blocked(srcs, tmp_path_factory.mktemp("keras_corpus"), weights=weights)


def _input_names(onnx_path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input]


@pytest.mark.parametrize("stem", [s for s, g in FILES if g])
def test_golden(stem, converted):
    import h5py

    src, _ = _source(stem)
    out = converted[str(src)]
    assert not isinstance(out, str), out
    with h5py.File(CORPUS / f"dl4j_{stem}_inputs_and_outputs.h5", "r") as f:
        ins = json.loads(f.attrs["inputs"])["inputs"]
        outs = json.loads(f.attrs["outputs"])["outputs"]
        feeds = dict(zip(_input_names(out), [np.asarray(f["inputs"][n][()]) for n in ins]))
        want = [np.asarray(f["predictions"][n][()]) for n in outs]
    got = list(run_onnx(out, feeds).values())
    assert len(got) == len(want)
    for g, w, name in zip(got, want, outs):
        assert_close(g, w, th.RTOL, th.ATOL, f"{stem}:{name}")


@pytest.mark.parametrize("stem", [s for s, g in FILES if not g])
def test_against_theano(stem, converted):
    src, weights = _source(stem)
    out = converted[str(src)]
    assert not isinstance(out, str), out
    th.env_python("k1")
    ref = theano_reference(str(src), LoadOptions(weights=str(weights)))
    assert isinstance(ref, TheanoReference), getattr(ref, "cannot_judge", ref)
    # The 'th' file is Theano's (kernels flipped by the importer); the 'tf' one is
    # TensorFlow's, run on Theano after Keras' convert_kernel.
    assert ref.convert_kernels == ("_tf_" in stem)
    rng = np.random.default_rng(0)
    name = _input_names(out)[0]
    x = rng.random((4, 1, 28, 28) if "_th_" in stem else (4, 28, 28, 1)).astype(np.float32)
    want = next(iter(ref.run({ref.inputs[0]: x}).values()))
    got = next(iter(run_onnx(out, {name: x}).values()))
    assert_close(got, want, th.RTOL, th.ATOL, stem)


def test_backend_assumption_recorded(converted):
    """Keras 1 files do not record their backend: the ONNX metadata says what was assumed."""
    import onnx

    for stem, expect in (("mnist_cnn_th_keras_1", "theano (assumed"),
                         ("mnist_cnn_tf_keras_1", "tensorflow (assumed"),
                         ("mnist_mlp_th_keras_2", "theano (recorded")):
        src, _ = _source(stem)
        props = {p.key: p.value for p in onnx.load(str(converted[str(src)])).metadata_props}
        assert props["modelport.keras_backend"].startswith(expect), props
