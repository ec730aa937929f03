"""The tiled copy of transposed weights gives exactly NumPy's contiguous copy."""

import numpy as np
import pytest

from modelport.graph_ir.tensors import contiguous


@pytest.mark.parametrize("shape,perm", [
    ((3, 3, 130, 70), (3, 2, 0, 1)),     # Keras conv kernel -> ONNX (out, in, kh, kw)
    ((1, 1, 300, 257), (3, 2, 0, 1)),    # 1x1 conv, sizes not multiples of the tile
    ((513, 129), (1, 0)),                 # dense kernel transposed
    ((5, 7, 4096), (2, 0, 1)),           # first two output axes long and short
    ((2, 3), (1, 0)),                     # small: plain copy
])
def test_tiled_copy_equals_numpy(shape, perm):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32).transpose(perm)
    out = contiguous(a)
    assert out.flags.c_contiguous and out.shape == a.shape and out.dtype == a.dtype
    np.testing.assert_array_equal(out, np.ascontiguousarray(a))


def test_contiguous_input_is_returned_as_is():
    a = np.arange(1 << 17, dtype=np.float32).reshape(256, 512)
    assert contiguous(a) is a


@pytest.mark.parametrize("shape,perm", [
    ((3, 3, 130, 70), (3, 2, 0, 1)),     # tiled path
    ((1, 1, 300, 257), (3, 2, 0, 1)),
    ((2, 3), (1, 0)),                     # small: plain path
    ((256, 512), (0, 1)),                 # already contiguous: still a new, scaled array
])
def test_scale_while_copying_equals_copy_then_scale(shape, perm):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(shape).astype(np.float32).transpose(perm)
    scale = rng.standard_normal(a.shape[0]).astype(np.float32)
    before = a.copy()
    out = contiguous(a, scale)
    want = np.ascontiguousarray(a) * scale.reshape((-1,) + (1,) * (a.ndim - 1))
    assert out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(a, before)  # the source is not scaled in place
