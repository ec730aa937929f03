"""Every test model from every source kind, against PyTorch eager (slow: about 35 exports).

Entry points, state_dicts and .pt2 archives are converted with a dynamic batch and checked at
two batch sizes, per layer too; TorchScript archives convert at a fixed batch (the wrapper
route) and are checked at that batch.
"""

from __future__ import annotations

import onnx
import pytest

torch = pytest.importorskip("torch")

import modelport  # noqa: E402
from tests.importers.pytorch.helpers import compare_with_eager, write_source  # noqa: E402
from tests.importers.pytorch.models import MODELS  # noqa: E402

KINDS = ("entry", "state_dict", "pt2", "script", "trace")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(MODELS))
def test_model_from_source_kind(tmp_path, name, kind):
    src, options, module = write_source(kind, name, str(tmp_path))
    out = str(tmp_path / f"{name}.{kind}.onnx")
    dynamic = kind in ("entry", "state_dict", "pt2")
    result = modelport.convert(src, out, verify=True, per_layer=dynamic, dynamic=["batch"],
                               **options)
    assert result.passed, result.report.table()
    proto = onnx.load(out)
    dims = [i.type.tensor_type.shape.dim[0] for i in proto.graph.input]
    if dynamic:
        assert all(d.dim_param == "batch" for d in dims), dims
        assert result.report.layers, "no layer was compared"
        assert result.report.first_diverging_layer is None, result.report.table()
        compare_with_eager(out, module, name, batches=(2, 3))
    else:
        assert all(d.dim_value == 1 for d in dims), dims
        compare_with_eager(out, module, name, batches=(1,))
