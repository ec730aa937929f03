"""Every parser fuzzed with mutations of valid files (hypothesis): the outcome is a clean
conversion or exit 2 with one line naming the file; never exit 3, a crash, a hang or a
memory blow-up (each case runs in a forked child with a deadline and a memory cap, see
``server.py``).

The fast sample (a few hundred cases, fixed by ``derandomize``) runs with the normal suite;
``-m slow`` (``make bench-tests``) runs ten times as many fresh random cases. A failing input
is written to ``tests/fuzz/regressions/`` (see ``test_regressions.py``, which replays them).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz.harness import (
    Budget,
    fresh_dir,
    hot_offsets,
    mutations,
    problem,
    save_regression,
)

CASE_TIMEOUT = 60.0  # seconds; a clean case takes well under one (the machine may be loaded)
SLOW_FACTOR = 10

# name: (seed file, suffix, markers of places worth mutating, fast examples, argv builder)
H5_MARKERS = [b"HEAP", b"TREE", b"SNOD", b"OHDR", b"model_config", b"weight_names",
              b"\x01\x00\x00\x00\x00\x00\x00\x00"]
ZIP_MARKERS = [b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"]


def _convert(src: Path, out: Path, *extra: str) -> list[str]:
    return ["convert", str(src), "-o", str(out), "--force", "--quiet", *extra]


def _saved_model(part: str):
    """A copy of the seed SavedModel whose variables ``part`` is the mutated file."""
    def argv(src: Path, out: Path, seeds: Path) -> list[str]:
        folder = out.parent / "sm"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(seeds / "seed_sm", folder)
        shutil.copy(src, folder / "variables" / part)
        return _convert(folder, out)
    return argv


MXNET_INPUT = ("--input", "data:1,3,17,19")
TF_MARKERS = [b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x2a"]
# Names besides the mutated file that a one-line error may give (its companions).
COMPANIONS = ["seed.prototxt", "seed.caffemodel", "sm", "variables", "conv2d-symbol.json",
              "conv2d-0000.params"]

TARGETS = {
    "keras-h5": ("seed.h5", ".h5", H5_MARKERS, 40, lambda s, o, seeds: _convert(s, o)),
    "keras-k2-h5": ("seed_k2.h5", ".h5", H5_MARKERS, 30, lambda s, o, seeds: _convert(s, o)),
    "keras-zip": ("seed.keras", ".keras", ZIP_MARKERS + H5_MARKERS + [b'"class_name"'], 40,
                  lambda s, o, seeds: _convert(s, o)),
    "caffe-text": ("seed.prototxt", ".prototxt", [b"layer", b"dim:", b"num_output", b"param"],
                   50, lambda s, o, seeds: _convert(s, o, "--weights",
                                                    str(seeds / "seed.caffemodel"))),
    "caffe-binary": ("seed.caffemodel", ".caffemodel", [b"\xa2\x06", b"\x3a", b"\x2a"], 50,
                     lambda s, o, seeds: ["convert", str(seeds / "seed.prototxt"), "--weights",
                                          str(s), "-o", str(o), "--force", "--quiet"]),
    "onnx": ("seed.onnx", ".onnx", [b"\x3a", b"\x0a", b"\x42"], 60,
             lambda s, o, seeds: _convert(s, o)),
    "tf-pb": ("seed_tf.pb", ".pb", TF_MARKERS, 25, lambda s, o, seeds: _convert(s, o)),
    "tf-pbtxt": ("seed_tf.pbtxt", ".pbtxt", [b"node", b"tensor_content", b"dim", b"attr"], 15,
                 lambda s, o, seeds: _convert(s, o)),
    "tf-index": ("seed_sm/variables/variables.index", ".index", TF_MARKERS, 15,
                 _saved_model("variables.index")),
    "tf-data": ("seed_sm/variables/variables.data-00000-of-00001", ".data", [], 10,
                _saved_model("variables.data-00000-of-00001")),
    "mxnet-symbol": ("conv2d-symbol.json", "-symbol.json",
                     [b'"op"', b'"attrs"', b'"kernel"', b'"inputs"', b'"heads"'], 20,
                     lambda s, o, seeds: _convert(s, o, "--weights",
                                                  str(seeds / "conv2d-0000.params"), *MXNET_INPUT)),
    "mxnet-params": ("conv2d-0000.params", ".params", [b"\xc9\xfa\x93\xf9", b"\xca\xfa\x93\xf9"],
                     20, lambda s, o, seeds: ["convert", str(seeds / "conv2d-symbol.json"),
                                              "--weights", str(s), "-o", str(o), "--force",
                                              "--quiet", *MXNET_INPUT]),
    "torch7": ("seed.t7", ".t7", [b"torch", b"nn.", b"Storage", b"Tensor"], 30,
               lambda s, o, seeds: _convert(s, o, "--input", "input:1,3,8,8")),
    "keras1-h5": ("seed_k1.h5", ".h5", H5_MARKERS, 20, lambda s, o, seeds: _convert(s, o)),
    "torch-export": ("seed.pt2", ".pt2", ZIP_MARKERS, 12, lambda s, o, seeds: _convert(s, o)),
    "torchscript": ("seed_script.pt", ".pt", ZIP_MARKERS, 8,
                    lambda s, o, seeds: _convert(s, o, "--trust-code", "--input",
                                                 "x:1,3,8,8")),
    "torch-state": ("seed_state.pt", ".pt", ZIP_MARKERS, 8, lambda s, o, seeds: _convert(s, o)),
}


def _fuzz(name: str, seeds: Path, server, tmp_path: Path, *, slow: bool) -> None:
    seed_name, suffix, markers, examples, argv = TARGETS[name]
    data = (seeds / seed_name).read_bytes()
    work = fresh_dir(tmp_path / "work")
    budget = Budget(name)
    # The unmutated seed converts: otherwise every case would be a refusal and prove nothing.
    clean = server.run(argv(seeds / seed_name, work / "seed.onnx", seeds), timeout=CASE_TIMEOUT)
    # (A state_dict alone is refused, exit 2: its fuzzing exercises torch.load's safe reader.)
    assert clean.rc == (2 if name == "torch-state" else 0), clean.stderr
    names = [f"case{suffix}", *COMPANIONS]

    @settings(max_examples=examples * (SLOW_FACTOR if slow else 1), deadline=None,
              derandomize=not slow, database=None, print_blob=True,
              # shrinking replays a failure for minutes; the failing input is kept as found
              phases=[Phase.explicit, Phase.reuse, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(mutations(data, hot_offsets(data, markers)))
    def case(mutated: bytes) -> None:
        src = work / f"case{suffix}"
        src.write_bytes(mutated)
        outcome = server.run(argv(src, work / "out.onnx", seeds), timeout=CASE_TIMEOUT)
        budget.record(outcome)
        why = problem(outcome, names)
        if why:
            digest = hashlib.sha1(mutated).hexdigest()[:10]
            kept = save_regression(mutated, f"{name}-{digest}", suffix)
            raise AssertionError(f"{name}: {why} (input kept as {kept})")

    try:
        case()
    finally:
        print("\n" + budget.summary())


@pytest.mark.parametrize("name", [n for n in TARGETS if not n.startswith("torch")])
def test_fuzz_sample(name, seeds, fuzz_server, tmp_path):
    _fuzz(name, seeds, fuzz_server, tmp_path, slow=False)


@pytest.mark.parametrize("name", [n for n in TARGETS if n.startswith("torch")])
def test_fuzz_sample_pytorch(name, seeds, fuzz_server, tmp_path):
    # torch comes with the pytorch extra that `make test` installs: a missing torch fails here
    _fuzz(name, seeds, fuzz_server, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_long(name, seeds, fuzz_server, tmp_path):
    _fuzz(name, seeds, fuzz_server, tmp_path, slow=True)
