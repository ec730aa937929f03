"""The command line, end to end: conversions, reports, exit codes and error messages."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from modelport.convert.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "modelport", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT)


def test_convert_verify_prints_a_per_output_table_and_passes(sample_onnx, tmp_path):
    r = cli("convert", sample_onnx, "-o", tmp_path / "o.onnx", "--verify")
    assert r.returncode == 0, r.stderr
    assert "probs" in r.stdout and "max abs err" in r.stdout and "PASS" in r.stdout
    assert r.stderr == ""  # not a terminal: no progress output


def test_convert_json_report(sample_onnx, tmp_path):
    r = cli("convert", sample_onnx, "-o", tmp_path / "o.onnx", "--verify", "--json")
    report = json.loads(r.stdout)
    assert r.returncode == 0 and report["passed"] is True
    out = report["report"]["outputs"][0]
    assert out["name"] == "probs" and out["max_abs"] < 1e-4
    assert report["nodes_exported"] < report["nodes_imported"]
    opt = report["optimization"]
    assert opt["level"] == 1 and opt["nodes_before"] == report["nodes_imported"]
    # every node the optimiser removed is accounted to a pass
    net = sum(p["removed"] - p["added"] for p in opt["passes"].values())
    assert net == opt["nodes_before"] - opt["nodes_after"] > 0
    assert all(p["runs"] >= 1 for p in opt["passes"].values())


def test_verify_fails_with_exit_1_and_per_layer_names_the_first_diverging_layer(
        sample_onnx, tmp_path):
    good = tmp_path / "good.onnx"
    assert cli("convert", sample_onnx, "-o", good, "-O0").returncode == 0
    proto = onnx.load(good)
    for t in proto.graph.initializer:
        if t.name == "conv2.w":
            w = onnx.numpy_helper.to_array(t).copy()
            w[0] += 1.0
            t.CopyFrom(onnx.numpy_helper.from_array(w, t.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, bad)
    ok = cli("verify", sample_onnx, good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    r = cli("verify", sample_onnx, bad, "--per-layer", "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["passed"] is False
    assert report["first_diverging_layer"] == "conv2"
    layers = {c["name"]: c["passed"] for c in report["layers"]}
    assert layers["relu1"] and layers["pool1"] and not layers["conv2"]


def test_inspect_text_and_json(sample_onnx):
    r = cli("inspect", sample_onnx)
    assert r.returncode == 0
    assert "image: float [batchx3x32x32]" in r.stdout and "Conv" in r.stdout
    info = json.loads(cli("inspect", sample_onnx, "--json").stdout)
    assert info["inputs"] == [{"name": "image", "dtype": "float", "shape": ["batch", 3, 32, 32]}]
    assert info["outputs"][0]["name"] == "probs"
    assert info["operators"]["Conv"] == 2
    expected = 16 * 27 + 4 * 16 + 32 * 16 * 9 + 32 + 320 + 10 + 8
    assert info["parameters"] == expected and info["parameter_bytes"] > 4 * (expected - 8)


def test_formats_lists_onnx_with_detection_and_verification():
    rows = json.loads(cli("formats", "--json").stdout)
    onnx_row = next(r for r in rows if r["name"] == "onnx")
    assert onnx_row["verify"] == "ready" and "ModelProto" in onnx_row["detection"]
    assert "onnx" in cli("formats").stdout


def test_input_shape_override_and_output_selection(sample_onnx, tmp_path):
    out = tmp_path / "o.onnx"
    r = cli("convert", sample_onnx, "-o", out, "--input", "image:2,3,32,32",
            "--output", "logits", "--verify")
    assert r.returncode == 0, r.stderr
    proto = onnx.load(out)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 32, 32]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert "Softmax" not in {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize("args, needle", [
    (["--input", "nope:1,3,32,32"], "the model's inputs are image"),
    (["--input", "image:1,3,32"], "rank 4"),
    (["--output", "nothing"], "does not compute"),
])
def test_bad_io_options_are_one_line_errors(sample_onnx, tmp_path, args, needle):
    r = cli("convert", sample_onnx, "-o", tmp_path / "o.onnx", *args)
    assert r.returncode == 2 and needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.onnx").exists()


def _bad_files(tmp_path, sample_onnx):
    data = sample_onnx.read_bytes()
    files = {
        "truncated": (tmp_path / "truncated.onnx", data[: len(data) // 2]),
        "empty": (tmp_path / "empty.onnx", b""),
        "wrong-format": (tmp_path / "notes.onnx", b'{"this": "is json, not a model"}\n'),
        "random-bytes": (tmp_path / "random.bin",
                         np.random.default_rng(7).integers(0, 256, 5000, np.uint8).tobytes()),
        "missing": (tmp_path / "missing.onnx", None),
    }
    for path, content in files.values():
        if content is not None:
            path.write_bytes(content)
    return files


@pytest.mark.parametrize("kind", ["truncated", "empty", "wrong-format", "random-bytes", "missing"])
@pytest.mark.parametrize("command", ["convert", "inspect"])
def test_bad_input_gives_one_line_error_exit_2_and_no_output(sample_onnx, tmp_path, kind, command):
    path, _ = _bad_files(tmp_path, sample_onnx)[kind]
    out = tmp_path / "out.onnx"
    args = [command, path] + (["-o", out] if command == "convert" else [])
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert str(path) in lines[0] and lines[0].startswith("modelport: error:")
    assert not out.exists()
    leftovers = [p for p in os.listdir(tmp_path) if ".modelport-tmp-" in p]
    assert leftovers == []


def test_debug_shows_the_traceback(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    r = cli("convert", empty, "-o", tmp_path / "o.onnx", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_progress_draws_on_a_terminal_and_is_silent_otherwise():
    class Tty:
        def __init__(self, tty):
            self.tty, self.text = tty, ""

        def isatty(self):
            return self.tty

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    for tty in (True, False):
        stream = Tty(tty)
        p = Progress(stream=stream)
        p.stage("writing model.onnx", total_bytes=2_000_000)
        p.advance(1_000_000)
        p.done()
        assert ("writing model.onnx" in stream.text) is tty
    quiet = Tty(True)
    p = Progress(enabled=False, stream=quiet)
    p.stage("x")
    p.done()
    assert quiet.text == ""


@pytest.mark.parametrize("kind", ["truncated", "empty", "random-bytes", "missing"])
def test_verify_with_a_bad_converted_file_is_a_one_line_error(sample_onnx, tmp_path, kind):
    path, _ = _bad_files(tmp_path, sample_onnx)[kind]
    r = cli("verify", sample_onnx, path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and str(path) in r.stderr


def test_corrupted_models_never_crash(sample_onnx, tmp_path, capsys):
    """Truncations and byte flips anywhere in the file: exit 0 or 2, never an internal error."""
    from modelport.cli import main

    data = sample_onnx.read_bytes()
    rng = np.random.default_rng(11)
    variants = [data[:n] for n in rng.integers(1, len(data), 12)]
    for _ in range(12):
        flipped = bytearray(data)
        for i in rng.integers(0, len(data), 4):
            flipped[i] ^= 0xFF
        variants.append(bytes(flipped))
    for i, content in enumerate(variants):
        src = tmp_path / f"v{i}.onnx"
        src.write_bytes(content)
        code = 0
        try:
            main(["convert", str(src), "-o", str(tmp_path / f"o{i}.onnx"), "--quiet"])
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code in (0, 2), err
        assert "internal error" not in err and "Traceback" not in err


def test_input_option_parsing():
    from modelport.cli import _parse_inputs
    from modelport.errors import InputSpecError

    assert _parse_inputs(("x:1,3,224,224",)) == ({"x": [1, 3, 224, 224]}, {})
    assert _parse_inputs(("ids:batch,128:int64",)) == ({"ids": ["batch", 128]}, {"ids": "int64"})
    assert _parse_inputs(("in:0:1x4",)) == ({"in:0": [1, 4]}, {})
    with pytest.raises(InputSpecError):
        _parse_inputs(("1,3,224",))


def test_json_mode_puts_stdout_back_after_an_in_process_call(tmp_path):
    """`--json` points file descriptor 1 at stderr while a command runs, so that nothing a
    library prints can corrupt the report; a caller running main() in-process gets its stdout
    back afterwards (a later CliRunner call would otherwise see no output)."""
    import onnx
    from onnx import TensorProto, helper

    import modelport.cli as cli_module

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    before = os.fstat(1)
    try:
        cli_module.main(["inspect", str(path), "--json"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    after = os.fstat(1)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
    assert cli_module._json_out is None
