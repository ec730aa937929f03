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
  (exit 3 until torch.load's errors became InvalidModelError);
- ``tf-pbtxt-16a8d5e3cd.pbtxt``: a text GraphDef whose parse error quoted a control character
  of the file (two lines on stderr);
- ``tf-index-bcdf55c4de.index``: a SavedModel variables index whose entry declares a shape
  that its stored bytes do not fill (a NumPy reshape error at export, exit 3);
- ``mxnet-symbol-7700ebdbe6-symbol.json``: a Convolution node whose ``inputs`` key is mangled
  (an IndexError in the translator, exit 3);
- ``keras1-h5-02b0c04514.h5``: a Keras 1 file whose layer lost its weight arrays (an IndexError
  in the Conv translator, exit 3 once translator exceptions stopped being relabelled);
- ``keras1-h5-7259fcd509.h5``: a ``weight_names`` attribute whose variable-length datatype is
  neither a string nor a sequence (libhdf5 crashed with SIGSEGV reading it);
- ``tf-pb-064be2643a.pb``: a Placeholder of a dtype number TensorFlow does not define (a
  KeyError, exit 3);
- ``tf-pb-05c23fe055.pb``: a Mean whose reduction axis is 2^31-1 (the ONNX checker refused the
  converted graph, naming the output instead of the source).
"""

from __future__ import annotations

import pytest

from tests.fuzz.harness import REGRESSIONS, problem

WITH_COMPANIONS = {"tf-pb", "tf-pbtxt", "tf-index", "tf-data", "mxnet-symbol", "mxnet-params",
                   "torch7", "keras1-h5"}
CASES = sorted(p for p in REGRESSIONS.iterdir() if p.is_file()) if REGRESSIONS.is_dir() else []


def test_there_are_regressions():
    assert CASES, "tests/fuzz/regressions/ is empty"


def _target(path) -> str | None:
    """The fuzz target of a regression whose replay needs the target's command (companion
    files, --input): the targets added with the TensorFlow, MXNet, Torch7 and Keras 1 parsers."""
    return next((t for t in WITH_COMPANIONS if path.name.startswith(t + "-")), None)


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_regression_input_is_refused_cleanly(path, fuzz_server, tmp_path, request):
    src = tmp_path / path.name
    src.write_bytes(path.read_bytes())
    target = _target(path)
    names = [src.name]
    if target is None:
        argv = ["convert", str(src), "-o", str(tmp_path / "out.onnx"), "--quiet"]
    else:
        from tests.fuzz.test_fuzz import COMPANIONS, TARGETS

        seeds = request.getfixturevalue("seeds")
        argv = TARGETS[target][4](src, tmp_path / "out.onnx", seeds)
        names += COMPANIONS
    outcome = fuzz_server.run(argv, timeout=60)
    assert outcome.rc == 2, outcome.stderr
    assert problem(outcome, names) is None, outcome.stderr
    assert not (tmp_path / "out.onnx").exists()
