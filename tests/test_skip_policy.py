"""The skip policy (tests/skip_policy.py): a skip whose reason is not in tests/allowed_skips.py
fails the session, also under pytest-xdist; a listed one does not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.allowed_skips import ALLOWED_SKIPS, is_allowed
from tests.skip_policy import backend_problem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pytest(tmp_path, source: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(source)
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "tests.skip_policy", "-rs", "--rootdir", str(tmp_path), *args, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_every_allowed_skip_is_justified():
    assert ALLOWED_SKIPS
    for pattern, why in ALLOWED_SKIPS:
        assert pattern and len(why.split()) >= 8, pattern


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_an_unlisted_skip_fails_the_session(tmp_path, workers):
    r = _pytest(tmp_path, "import pytest\n\n"
                          "def test_ok():\n    pass\n\n"
                          "def test_gone():\n    pytest.skip('the extra is not installed')\n",
                *workers)
    assert r.returncode == 1, r.stdout[-2000:]
    assert "unexpected skips" in r.stdout
    assert "test_gone: the extra is not installed" in r.stdout


def test_a_module_that_skips_at_import_fails_the_session(tmp_path):
    r = _pytest(tmp_path, "import pytest\n\npytest.importorskip('no_such_module_here')\n\n"
                          "def test_never():\n    pass\n")
    assert r.returncode == 1, r.stdout[-2000:]
    assert "no_such_module_here" in r.stdout


def test_a_listed_skip_passes(tmp_path):
    reason = "onnxruntime cannot run the original on this machine: load: no kernel"
    assert is_allowed(reason)
    r = _pytest(tmp_path, f"import pytest\n\ndef test_case():\n    pytest.skip({reason!r})\n",
                "-n", "2")
    assert r.returncode == 0, r.stdout[-2000:]
    assert "1 skipped" in r.stdout


def test_a_backend_suite_mostly_unrunnable_by_onnxruntime_fails():
    assert backend_problem(4066, 624) is None  # 15%, as measured
    assert "onnxruntime or the harness is broken" in backend_problem(4066, 1000)
    assert backend_problem(40, 40) is None  # a -k selection is not judged
