"""Inputs the fuzzer found (tests/fuzz/regressions/), replayed through the CLI: each is refused
with exit 2 and one line naming the file. Names say what was wrong before the fix:

- ``keras-h5-67604870df.h5``, ``keras-k2-h5-5e4e8c7d2f.h5``: a zeroed HDF5 global heap on
  which libhdf5 spins forever reading ``model_config`` (a hang);
- ``keras-k2-h5-07f834f365.h5``, ``keras-k2-h5-88fbd938c6.h5``: corrupt HDF5 symbol tables,
  reported by h5py as RuntimeError (was exit 3 once errors stopped being relabelled);
- ``keras-zip-5b1405db79.keras``: a .keras whose stored weight member fails its CRC;
- ``keras-h5-96bd870b6c.h5``: pooling strides changed so the Dense kernel no longer fits its
  input (was a NumPy broadcast error at export);
- ``torch-export-c87edf6441.pt2``: a corrupt .pt2 on which torch logged a dozen warning lines
  to stderr before the one-line error;
- ``torch-export-7577000666.pt2``, ``torch-state-b56170281c.pt``: archives whose mutated names
  classify them as torch.save pickles, whose zip torch's reader rejects with RuntimeError
  (exit 3 until torch.load's errors became InvalidModelError).
"""

from __future__ import annotations

import pytest

from tests.fuzz.harness import REGRESSIONS, problem

CASES = sorted(p for p in REGRESSIONS.iterdir() if p.is_file()) if REGRESSIONS.is_dir() else []


def test_there_are_regressions():
    assert CASES, "tests/fuzz/regressions/ is empty"


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_regression_input_is_refused_cleanly(path, fuzz_server, tmp_path):
    src = tmp_path / path.name
    src.write_bytes(path.read_bytes())
    outcome = fuzz_server.run(["convert", str(src), "-o", str(tmp_path / "out.onnx"),
                               "--quiet"], timeout=60)
    assert outcome.rc == 2, outcome.stderr
    assert problem(outcome, [src.name]) is None, outcome.stderr
    assert not (tmp_path / "out.onnx").exists()
