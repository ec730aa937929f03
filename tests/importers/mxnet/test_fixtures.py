"""Committed fixtures made by real MXNet 1.9.1 (tests/fixtures/mxnet/regen.sh): symbol,
params, seeded inputs and MXNet's outputs. They need no MXNet environment, so MXNet's own
numbers are checked even where that environment cannot be created."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.importers.mxnet.params import ParamsFile
from tests.importers.mxnet.helpers import FIXTURES, convert_and_compare

MODELS = ["conv2d", "deconv", "norms", "indexing", "legacy_0800", "text_lstm_2_bi"]


@pytest.mark.parametrize("name", MODELS)
def test_fixture_matches_mxnet_outputs(name, tmp_path):
    assert convert_and_compare(FIXTURES / name, tmp_path) == []


def test_fixture_params_of_every_dtype():
    params = ParamsFile(str(FIXTURES / "dtypes.params"))
    with np.load(FIXTURES / "dtypes-values.npz") as want:
        assert sorted(r.name for r in params.arrays) == sorted(want.files)
        for ref in params.arrays:
            got = params.reader(ref)()
            assert got.dtype == want[ref.name].dtype, ref.name
            np.testing.assert_array_equal(got, want[ref.name])
