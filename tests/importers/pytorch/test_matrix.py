"""Every test model from every source kind, against PyTorch eager (slow: about 35 exports).

Everything is converted with ``--dynamic batch``. Entry points, state_dicts and .pt2 archives
keep it and are checked at two batch sizes, and per layer. TorchScript archives keep it through
the legacy exporter (checked at two batch sizes) except the transformer and attention models,
where that exporter fails and the wrapper route converts them at a fixed batch.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import modelport
from tests.importers.pytorch.helpers import compare_with_eager, write_source
from tests.importers.pytorch.models import MODELS

KINDS = ("entry", "state_dict", "pt2", "script", "trace")
TORCHSCRIPT_FIXED = {"encoder", "attention"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(MODELS))
def test_model_from_source_kind(tmp_path, name, kind):
    src, options, module = write_source(kind, name, str(tmp_path))
    out = str(tmp_path / f"{name}.{kind}.onnx")
    per_layer = kind in ("entry", "state_dict", "pt2")
    # TorchScript keeps a dynamic batch through the legacy exporter, which fails on attention
    dynamic = per_layer or name not in TORCHSCRIPT_FIXED
    result = modelport.convert(src, out, verify=True, per_layer=per_layer, dynamic=["batch"],
                               **options)
    assert result.passed, result.report.table()
    proto = onnx.load(out)
    dims = [i.type.tensor_type.shape.dim[0] for i in proto.graph.input]
    if dynamic:
        assert all(d.dim_param == "batch" for d in dims), dims
        compare_with_eager(out, module, name, batches=(2, 3))
    else:
        assert all(d.dim_value == 1 for d in dims), dims
        compare_with_eager(out, module, name, batches=(1,))
    # weights carry the parameter paths they are computed from (folded ones too)
    params = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    resize_args = {i for n in proto.graph.node if n.op_type == "Resize" for i in n.input[1:]}
    for tensor in proto.graph.initializer:
        if (tensor.data_type == onnx.TensorProto.FLOAT and int(np.prod(tensor.dims)) > 1
                and tensor.name not in resize_args):
            assert any(tensor.name.startswith(p) for p in params), tensor.name
    if per_layer:
        assert result.report.layers, "no layer was compared"
        assert result.report.first_diverging_layer is None, result.report.table()
