"""Every case of the ONNX backend test suite that onnxruntime runs correctly on the original,
on the machine the suite runs on, must still run and match its expected outputs after
`modelport convert` at -O0, -O1 and -O2.

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
LEVELS = (0, 1, 2)


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


def test_a_case_onnxruntime_cannot_run_is_not_judged_and_says_why(monkeypatch):
    from tests.allowed_skips import is_allowed

    monkeypatch.setattr(onnx_backend, "original_problem", lambda name: "load: no kernel")
    status, reason = onnx_backend.run_case("node/test_abs", 0)
    assert status == "unrunnable"
    assert reason == "onnxruntime cannot run the original on this machine: load: no kernel"
    assert is_allowed(reason)


def test_a_wrong_conversion_of_a_runnable_case_fails(monkeypatch, tmp_path):
    """The harness fails a case when the converted model computes something else: here the
    converted Abs is turned into Neg after a correct conversion."""
    import onnx

    from modelport.convert import pipeline

    real = pipeline.convert

    def convert_then_break(src, out, *args, **kwargs):
        result = real(src, out, *args, **kwargs)
        model = onnx.load(out)
        for node in model.graph.node:
            if node.op_type == "Abs":
                node.op_type = "Neg"
        onnx.save(model, out)
        return result

    monkeypatch.setattr(pipeline, "convert", convert_then_break)
    assert onnx_backend.original_problem("node/test_abs") is None
    status, reason = onnx_backend.run_case("node/test_abs", 1, workdir=str(tmp_path))
    assert status == "fail"
    assert reason.startswith("converted model: output 0: values differ")
