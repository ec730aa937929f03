"""Every case of the ONNX backend test suite that onnxruntime runs correctly on the original,
on the machine the suite runs on, must still run and match its expected outputs after
`modelport convert` at -O0 and -O1.

Whether onnxruntime runs a case's original correctly is decided per case, at run time, on this
machine (tests/onnx_backend.py): onnxruntime's coverage differs between machines, so no list
of "cases onnxruntime cannot run" is committed. Such a case is skipped with the reason
``onnxruntime cannot run the original on this machine: ...`` (allowed, with its
justification, in tests/allowed_skips.py); tests/conftest.py fails the session if too many
cases end so, so that a broken onnxruntime cannot make the suite vacuous.
tests/onnx_backend_exclusions.tsv lists only cases excluded for a reason independent of the
machine, each with its reason.
"""

import pytest

from tests import onnx_backend

NAMES = onnx_backend.case_names()
LEVELS = (0, 1)


def test_the_suite_is_all_there():
    assert len([n for n in NAMES if n.startswith("node/")]) >= 1880
    assert len(NAMES) >= 2000
    excluded = onnx_backend.exclusions()
    assert set(excluded) <= set(NAMES)
    assert all(reason.strip() for reason in excluded.values())


# The levels of one case are adjacent, so that they usually share a worker and the cached
# verdict on the original.
@pytest.mark.parametrize("name,level", [(n, lvl) for n in NAMES for lvl in LEVELS],
                         ids=[f"{n}-O{lvl}" for n in NAMES for lvl in LEVELS])
def test_backend_case_survives_conversion(name, level, tmp_path):
    status, reason = onnx_backend.run_case(name, level, workdir=str(tmp_path))
    if status in ("unrunnable", "excluded"):
        pytest.skip(reason if status == "unrunnable" else
                    f"excluded from the ONNX backend suite: {reason}")
    assert status == "pass", reason
