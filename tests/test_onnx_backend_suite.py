"""Every case of the ONNX backend test suite that onnxruntime runs correctly on the original
must still run and match its expected outputs after `modelport convert` at -O0 and -O1.

Cases onnxruntime cannot run correctly are listed, with the reason, in
tests/onnx_backend_exclusions.tsv; a case that newly fails in onnxruntime, or a listed case
that onnxruntime now runs, fails this test so the list stays true.
"""

import pytest

from tests import onnx_backend

NAMES = onnx_backend.case_names()
EXCLUDED = onnx_backend.exclusions()


def test_the_suite_is_all_there():
    assert len([n for n in NAMES if n.startswith("node/")]) >= 1880
    assert len(NAMES) - len(EXCLUDED) >= 1700
    assert set(EXCLUDED) <= set(NAMES)


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_backend_case_survives_conversion(name, level, tmp_path):
    status, reason = onnx_backend.run_case(name, level, workdir=str(tmp_path))
    if status == "excluded":
        assert name in EXCLUDED, f"onnxruntime newly fails on the original: {reason}"
        return
    assert name not in EXCLUDED, "onnxruntime now runs this case: regenerate the exclusions"
    assert status == "pass", reason
