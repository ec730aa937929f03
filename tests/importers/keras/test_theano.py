"""Keras files saved by the Theano backend: converted with TensorFlow blocked, compared with
real Keras 1.2.2 / 2.2.4 on Theano 1.0.5 at rtol=1e-3, atol=1e-4.

* ``test_fixture``: the small committed fixtures (``tests/fixtures/theano``: model, inputs and
  the outputs Theano computed, made by ``regenerate.py``) — runs everywhere.
* ``test_live``: every model of ``theano_models.py`` built now on Theano in the environments
  the session creates (``.venv-theano-k1``/``-k2``).
* ``--verify``: against Theano when its environment exists, and never PASS otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelport.convert.pipeline import convert
from modelport.importers.registry import LoadOptions
from tests.importers.keras import theano_helpers as th
from tests.oracles import run_onnx

FIXTURES = sorted(th.FIXTURES.glob("*.h5"))
K2_MODELS = ["cnn_last", "cnn_first", "conv1d", "conv3d", "sepdw", "sep1d", "rnn", "merge",
             "convlstm", "sequential"]
K1_MODELS = ["cnn_th", "cnn_tf", "conv1d", "deconv", "merge", "seqmerge", "rnn", "gpu_gru",
             "dense_misc"]
# Keras 1 files do not record their backend; those with dim_ordering "th" are taken as Theano
# by default, the others are told with --keras-backend theano (LoadOptions.extra).
K1_TH_ORDERING = {"cnn_th", "deconv"}


def _extra(path) -> dict:
    stem = path.stem.removeprefix("k1_")
    keras1 = path.stem.startswith("k1_") or "live_k1" in str(path) or "theano-k1" in str(path)
    if keras1 and stem not in K1_TH_ORDERING:
        return {"keras_backend": "theano"}
    return {}


def test_fixtures_exist():
    assert len(FIXTURES) >= 4, f"the committed Theano fixtures are missing from {th.FIXTURES}"
    for h5 in FIXTURES:
        assert h5.with_suffix(".npz").is_file(), h5


@pytest.fixture(scope="module")
def fixture_onnx(tmp_path_factory):
    return th.convert_blocked(FIXTURES, tmp_path_factory.mktemp("theano_fixtures"), _extra)


@pytest.mark.parametrize("h5", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture(h5, fixture_onnx):
    out = fixture_onnx[str(h5)]
    assert not isinstance(out, str), out
    th.compare_with_theano(out, h5.with_suffix(".npz"))


@pytest.fixture(scope="module")
def live_onnx(tmp_path_factory):
    result = {}
    for which in ("k1", "k2"):
        built = th.built_models(which)
        result[which] = (built, th.convert_blocked(sorted(built.glob("*.h5")),
                                                   tmp_path_factory.mktemp(f"live_{which}"),
                                                   _extra))
    return result


@pytest.mark.parametrize("which,name", [("k2", n) for n in K2_MODELS] +
                         [("k1", n) for n in K1_MODELS])
def test_live(which, name, live_onnx):
    built, converted = live_onnx[which]
    h5 = built / f"{name}.h5"
    out = converted[str(h5)]
    assert not isinstance(out, str), out
    th.compare_with_theano(out, h5.with_suffix(".npz"))


def _theano_cnn():
    path = th.FIXTURES / "k2_cnn_last.h5"
    assert path.is_file()
    return path


def test_flip_matters(tmp_path):
    """Read as TensorFlow kernels (unflipped), the same file computes something else: the flip
    is what makes the fixture match."""
    src = _theano_cnn()
    out = tmp_path / "tf.onnx"
    convert(src, out, options=LoadOptions(extra={"keras_backend": "tensorflow"}))
    with np.load(src.with_suffix(".npz")) as z:
        feeds = {k: z[k] for k in z.files if not k.startswith("out:")}
        want = z["out:0"]
    got = next(iter(run_onnx(out, feeds).values()))
    assert np.abs(got - want).max() > 1e-2


def test_verify_against_theano(tmp_path):
    th.env_python("k2")
    result = convert(_theano_cnn(), tmp_path / "m.onnx", verify=True)
    report = result.report
    assert "Theano" in report.reference, report.reference
    assert report.cannot_judge is None
    assert report.passed, report.table()
    assert all(c.max_abs <= 1e-4 for c in report.outputs)


def test_verify_without_theano_cannot_judge(tmp_path, monkeypatch):
    """No Theano environment: tf_keras would run the flipped kernels as TensorFlow ones, so the
    report must not say PASS."""
    monkeypatch.setenv("MODELPORT_THEANO_ENVS", str(tmp_path / "none"))
    result = convert(_theano_cnn(), tmp_path / "m.onnx", verify=True)
    report = result.report
    assert report.cannot_judge and "Theano" in report.cannot_judge
    assert not report.passed and not result.passed
    table = report.table()
    assert "CANNOT JUDGE" in table and "PASS" not in table
    assert report.to_dict()["passed"] is False


def test_cli_cannot_judge_exit_code(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from modelport.cli import cli

    monkeypatch.setenv("MODELPORT_THEANO_ENVS", str(tmp_path / "none"))
    r = CliRunner().invoke(cli, ["convert", str(_theano_cnn()), "-o", str(tmp_path / "m.onnx"),
                                 "--verify", "-q"])
    assert r.exit_code == 1, r.output
    assert "CANNOT JUDGE" in r.output
