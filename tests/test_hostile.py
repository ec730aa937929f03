"""Hostile model files: no code stored in a model runs without --trust-code, nothing is clobbered.

Each hostile file carries a payload that would create a marker (a pickle whose ``__reduce__``
calls ``os.mkdir``, a Lambda whose bytecode does, a module that does on import, a TorchScript
program that writes a file). Every command that opens a model (``convert``, ``convert
--verify``, ``verify``, ``inspect``, and ``batch``) is tried on every file: exit 2, one line naming the file,
the marker absent, an existing output (``--force``) and the ONNX given to ``verify`` unchanged.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
from onnx import TensorProto, helper

from modelport.cli import main

MARKER = "PWNED"
PRECIOUS = b"precious: must survive"


class Payload:
    """Unpickling this creates the marker directory."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def run_cli(args: list[str], capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    try:
        main([*args, "-q"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def tiny_onnx(path: str) -> str:
    w = onnx.numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


# -- building the hostile files ----------------------------------------------------------------
def _keras2_lambda_files(folder: str, marker: str) -> dict[str, str]:
    """tf_keras .h5 files whose Lambda bytecode creates ``marker`` when Keras rebuilds them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras
    evil = eval(f"lambda t: (__import__('os').makedirs({marker!r}, exist_ok=True), t)[1]")
    files = {}
    i = tf_keras.Input((4,), name="x")
    files["keras2_lambda.h5"] = tf_keras.Model(
        i, tf_keras.layers.Lambda(evil, name="evil")(tf_keras.layers.Dense(3, name="d")(i)))
    i = tf_keras.Input((2, 4), name="x")
    files["keras2_timedistributed_lambda.h5"] = tf_keras.Model(
        i, tf_keras.layers.TimeDistributed(tf_keras.layers.Lambda(evil, name="evil"),
                                           name="td")(i))
    inner_in = tf_keras.Input((4,), name="inner_x")
    inner = tf_keras.Model(inner_in, tf_keras.layers.Lambda(evil, name="evil")(inner_in),
                           name="inner")
    i = tf_keras.Input((4,), name="x")
    files["keras2_nested_lambda.h5"] = tf_keras.Model(i, inner(tf_keras.layers.Dense(4)(i)))
    paths = {}
    for name, model in files.items():
        paths[name] = os.path.join(folder, name)
        model.save(paths[name])
    shutil.rmtree(marker, ignore_errors=True)  # building the models ran the lambda
    return paths


def _keras_foreign_module(folder: str, module_name: str, *, in_layer: bool) -> str:
    """A tf_keras .keras archive (tf_keras imports any module its config names) pointing at
    ``module_name``: as a layer's module/registered_name/class_name, or as an initializer."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras
    i = tf_keras.Input((4,), name="x")
    model = tf_keras.Model(i, tf_keras.layers.Dense(3, name="d")(i))
    good = os.path.join(folder, f"good_{module_name}.keras")
    model.save(good)
    path = os.path.join(folder, f"foreign_{module_name}_{'layer' if in_layer else 'init'}.keras")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                dense = next(x for x in config["config"]["layers"] if x["class_name"] == "Dense")
                if in_layer:  # tf_keras imports the module of the model object itself
                    config.update(module=module_name, class_name="Evil", registered_name="Evil")
                    dense.update(module=module_name, class_name="Evil", registered_name="Evil")
                else:
                    dense["config"]["kernel_initializer"] = {
                        "module": module_name, "class_name": "system",
                        "config": {"command": "mkdir PWNED"}, "registered_name": "system"}
                data = json.dumps(config).encode()
            dst.writestr(info, data)
    return path


def _pt2_with_pickle(folder: str, marker: str) -> str:
    import torch

    class Small(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            return torch.relu(self.fc(x))

    good = os.path.join(folder, "good.pt2")
    torch.export.save(torch.export.export(Small(), (torch.randn(2, 3),)), good)
    path = os.path.join(folder, "crafted_pickle.pt2")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data/sample_inputs/model.pt"):
                data = pickle.dumps(Payload(marker))
            dst.writestr(info, data)
    return path


def _pt2_with_foreign_target(folder: str) -> str:
    good = os.path.join(folder, "good.pt2")
    path = os.path.join(folder, "foreign_target.pt2")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if "/models/" in info.filename and info.filename.endswith(".json"):
                data = data.replace(b"torch.ops.aten.relu.default",
                                    b"torch.serialization.os.mkdir")
            dst.writestr(info, data)
    return path


def _torchscript(folder: str, marker: str) -> str:
    import torch

    from tests.hostile_modules import WritesFile

    path = os.path.join(folder, "program.ts.pt")
    torch.jit.save(torch.jit.script(WritesFile(marker)), path)
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("hostile"))
    marker = os.path.join(folder, MARKER)
    files: dict[str, str] = {}
    files.update(_keras2_lambda_files(folder, marker))
    sys_module = "mp_evil_import_side_effect"
    with open(os.path.join(folder, f"{sys_module}.py"), "w") as f:
        f.write(f"import os\nos.makedirs({marker!r}, exist_ok=True)\n"
                "class Evil:\n    pass\n")
    files["keras_foreign_module.keras"] = _keras_foreign_module(folder, sys_module,
                                                                in_layer=True)
    files["crafted_pickle.pt2"] = _pt2_with_pickle(folder, marker)
    files["foreign_target.pt2"] = _pt2_with_foreign_target(folder)
    files["program.ts.pt"] = _torchscript(folder, marker)
    import torch

    files["legacy.pt"] = os.path.join(folder, "legacy.pt")
    torch.save(Payload(marker), files["legacy.pt"], _use_new_zipfile_serialization=False)
    files["zip_pickle.pt"] = os.path.join(folder, "zip_pickle.pt")
    torch.save(Payload(marker), files["zip_pickle.pt"])
    for suffix in (".h5", ".onnx", ".caffemodel", ".keras", ".pt2"):
        for kind, blob in (("raw", pickle.dumps(Payload(marker))),):
            files[f"{kind}_pickle{suffix}"] = os.path.join(folder, f"{kind}_pickle{suffix}")
            with open(files[f"{kind}_pickle{suffix}"], "wb") as f:
                f.write(blob)
    legacy_as_h5 = os.path.join(folder, "legacy_pickle.h5")
    shutil.copy(files["legacy.pt"], legacy_as_h5)
    files["legacy_pickle.h5"] = legacy_as_h5
    assert not os.path.exists(marker)
    return folder, marker, files, sys_module


ROUTES = ["keras2_lambda.h5", "keras2_timedistributed_lambda.h5", "keras2_nested_lambda.h5",
          "keras_foreign_module.keras", "crafted_pickle.pt2", "foreign_target.pt2",
          "program.ts.pt", "legacy.pt", "zip_pickle.pt", "raw_pickle.h5", "raw_pickle.onnx",
          "raw_pickle.caffemodel", "raw_pickle.keras", "raw_pickle.pt2", "legacy_pickle.h5"]
COMMANDS = ["convert", "convert --verify", "verify", "inspect"]


@pytest.mark.parametrize("route", ROUTES)
def test_no_command_runs_code_in_hostile_file(hostile, route, capsys, monkeypatch):
    folder, marker, files, sys_module = hostile
    monkeypatch.syspath_prepend(folder)  # the side-effect module would be importable
    path = files[route]
    before = open(path, "rb").read()
    out = os.path.join(folder, "out.onnx")
    converted = tiny_onnx(os.path.join(folder, "converted.onnx"))
    converted_bytes = open(converted, "rb").read()
    torch_input = ["--input", "x:2,3"] if route.endswith((".pt", ".pt2")) else []
    for command in COMMANDS:
        with open(out, "wb") as f:
            f.write(PRECIOUS)
        if command == "verify":
            args = ["verify", path, converted]
        elif command == "inspect":
            args = ["inspect", path]
        else:
            args = ["convert", path, "-o", out, "--force", *command.split()[1:]]
        code, err = run_cli(args + torch_input, capsys)
        what = f"{command} {route}: exit {code}, stderr {err}"
        assert code == 2, what
        assert len(err) == 1 and path in err[0] and "Traceback" not in err[0], what
        assert not os.path.exists(marker), f"{what}: the payload ran"
        assert sys_module not in __import__("sys").modules, what
        assert open(out, "rb").read() == PRECIOUS, f"{what}: output clobbered"
        assert open(converted, "rb").read() == converted_bytes, what
        assert open(path, "rb").read() == before, what
        assert not [n for n in os.listdir(folder) if ".modelport-tmp-" in n], what


def test_refusals_name_the_code_and_trust_code(hostile, capsys):
    folder, marker, files, _ = hostile
    converted = tiny_onnx(os.path.join(folder, "converted2.onnx"))
    expected = {
        "keras2_lambda.h5": r"Lambda layer 'evil'",
        "keras2_timedistributed_lambda.h5": r"Lambda layer 'td/evil'",
        "keras2_nested_lambda.h5": r"Lambda layer 'inner/evil'",
        "keras_foreign_module.keras": r"'Evil' from module 'mp_evil_import_side_effect'",
    }
    import re

    for route, pattern in expected.items():
        code, err = run_cli(["verify", files[route], converted], capsys)
        assert code == 2 and re.search(pattern, err[0]) and "--trust-code" in err[0], err
    code, err = run_cli(["inspect", files["program.ts.pt"], "--input", "x:2,3"], capsys)
    assert "TorchScript archive, which is a program" in err[0] and "--trust-code" in err[0]
    code, err = run_cli(["inspect", files["foreign_target.pt2"]], capsys)
    assert "torch.serialization.os.mkdir" in err[0] and "not operators" in err[0], err
    code, err = run_cli(["inspect", files["legacy.pt"], "--input", "x:2,3"], capsys)
    assert "posix.mkdir" in err[0] or "nt.mkdir" in err[0], err


def test_keras_foreign_initializer_converts_but_is_not_verified(tmp_path, capsys):
    """An object pointing at os.system where the importer never looks: conversion runs
    nothing and works; verification (Keras would import and call it) is refused."""
    path = _keras_foreign_module(str(tmp_path), "os", in_layer=False)
    out = str(tmp_path / "out.onnx")
    code, err = run_cli(["convert", path, "-o", out, "--verify"], capsys)
    assert code == 2 and "'system' from module 'os'" in err[0], err
    assert not os.path.exists(out)
    code, err = run_cli(["convert", path, "-o", out], capsys)
    assert code == 0, err
    code, err = run_cli(["verify", path, out], capsys)
    assert code == 2 and "--trust-code" in err[0], err
    assert not (tmp_path / "PWNED").exists()


def test_trust_code_runs_a_lambda_for_verification(tmp_path, capsys):
    """With a registered translation the .h5 converts without running anything; verification
    needs --trust-code (tf_keras runs the Lambda) and then works, running the payload."""
    from modelport.importers.keras import keras_layer

    marker = str(tmp_path / MARKER)
    path = _keras2_lambda_files(str(tmp_path), marker)["keras2_lambda.h5"]

    @keras_layer("Lambda:evil", replace=True)
    def identity(ctx, layer, inputs):
        (x,) = inputs
        return x

    try:
        out = str(tmp_path / "lambda.onnx")
        code, err = run_cli(["convert", path, "-o", out], capsys)
        assert code == 0 and not os.path.exists(marker), err
        code, err = run_cli(["verify", path, out], capsys)
        assert code == 2 and not os.path.exists(marker), err
        code, err = run_cli(["verify", path, out, "--trust-code"], capsys)
        assert code == 0, err
        assert os.path.exists(marker)  # --trust-code really ran the file's code
    finally:
        keras_layer._table.pop("Lambda:evil", None)


def test_trust_code_converts_a_legacy_pickled_module(tmp_path, capsys):
    import torch

    from tests.hostile_modules import Doubler

    path = str(tmp_path / "module_legacy.pt")
    torch.save(Doubler(), path, _use_new_zipfile_serialization=False)
    out = str(tmp_path / "doubler.onnx")
    code, err = run_cli(["convert", path, "-o", out, "--input", "x:2,3", "--verify"], capsys)
    assert code == 2 and "--trust-code" in err[0] and not os.path.exists(out), err
    code, err = run_cli(["convert", path, "-o", out, "--input", "x:2,3", "--verify",
                         "--trust-code"], capsys)
    assert code == 0, err
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    (y,) = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(y, 2 * x, rtol=1e-6)


def test_trust_code_converts_torchscript(tmp_path, capsys):
    import torch

    from tests.hostile_modules import Doubler

    path = str(tmp_path / "doubler.ts.pt")
    torch.jit.save(torch.jit.script(Doubler()), path)
    out = str(tmp_path / "ts.onnx")
    code, err = run_cli(["convert", path, "-o", out, "--input", "x:2,3", "--verify"], capsys)
    assert code == 2 and "TorchScript" in err[0] and not os.path.exists(out), err
    code, err = run_cli(["convert", path, "-o", out, "--input", "x:2,3", "--verify",
                         "--trust-code"], capsys)
    assert code == 0, err


def test_routes_are_real_with_trust_code(tmp_path, capsys, monkeypatch):
    """The same files do run their payload when the user says --trust-code: the refusals
    above guard real routes, not imagined ones."""
    folder = str(tmp_path)
    marker = os.path.join(folder, MARKER)
    name = "mp_evil_import_trusted"
    with open(os.path.join(folder, f"{name}.py"), "w") as f:
        f.write(f"import os\nos.makedirs({marker!r}, exist_ok=True)\nclass Evil:\n    pass\n")
    monkeypatch.syspath_prepend(folder)
    path = _keras_foreign_module(folder, name, in_layer=True)
    converted = tiny_onnx(os.path.join(folder, "c.onnx"))
    code, err = run_cli(["verify", path, converted, "--trust-code"], capsys)
    assert code == 2 and os.path.exists(marker), err  # tf_keras imported the module
    shutil.rmtree(marker)
    program = _torchscript(folder, marker)
    run_cli(["inspect", program, "--input", "x:2,3", "--trust-code"], capsys)
    assert os.path.exists(marker)  # tracing the TorchScript program ran it


# -- files on disk -----------------------------------------------------------------------------
def test_outputs_that_are_not_regular_files_are_never_replaced(tmp_path, capsys):
    import stat

    src = tiny_onnx(str(tmp_path / "m.onnx"))
    fifo = str(tmp_path / "pipe.onnx")
    os.mkfifo(fifo)
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    for target, kind in (("/dev/null", stat.S_ISCHR), (fifo, stat.S_ISFIFO),
                         (str(folder), stat.S_ISDIR)):
        for extra in ([], ["--verify"]):
            code, err = run_cli(["convert", src, "-o", target, "--force", *extra], capsys)
            assert code == 2 and len(err) == 1 and target in err[0], err
            assert kind(os.stat(target).st_mode), f"{target} was replaced"
    assert not [n for n in os.listdir(tmp_path) if ".modelport-tmp-" in n]


def test_output_is_never_the_source_or_its_weights(tmp_path, capsys):
    src = tiny_onnx(str(tmp_path / "m.onnx"))
    original = open(src, "rb").read()
    os.symlink(src, tmp_path / "link.onnx")
    os.link(src, tmp_path / "hard.onnx")
    for out in (src, str(tmp_path / "link.onnx"), str(tmp_path / "hard.onnx")):
        code, err = run_cli(["convert", src, "-o", out, "--force"], capsys)
        assert code == 2 and "is the source model" in err[0], err
        assert open(src, "rb").read() == original
    # an ONNX source whose weights live in an external file: that file is protected too
    model = onnx.load(src)
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.weights", size_threshold=0)
    weights = str(tmp_path / "ext.weights")
    before = open(weights, "rb").read()
    code, err = run_cli(["convert", str(tmp_path / "ext.onnx"), "-o", weights, "--force"], capsys)
    assert code == 2 and "is the source model or a file it reads" in err[0], err
    assert open(weights, "rb").read() == before
    # --weights of a source (here a Caffe-style companion given to an ONNX source is ignored,
    # so use the PyTorch entry point route, whose --weights is a state_dict)
    import torch
    sd = str(tmp_path / "sd.pt")
    from tests.importers.pytorch.helpers import ENTRY, eager, shapes_at

    torch.save(eager("two_in_out").state_dict(), sd)
    sd_bytes = open(sd, "rb").read()
    shapes = [f"{k}:{','.join(map(str, v))}" for k, v in shapes_at("two_in_out", 1).items()]
    code, err = run_cli(["convert", ENTRY.format("two_in_out"), "--weights", sd, "-o", sd,
                         "--force", *[a for s in shapes for a in ("--input", s)]], capsys)
    assert code == 2 and "is the source model or a file it reads" in err[0], err
    assert open(sd, "rb").read() == sd_bytes


def test_verified_output_appears_only_after_a_pass(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    from modelport.convert import pipeline

    src = tiny_onnx(str(tmp_path / "m.onnx"))
    out = str(tmp_path / "out.onnx")
    real = pipeline.verify_model
    seen = []

    def watching(source, converted, **kwargs):
        seen.append((os.path.exists(out), os.path.basename(os.path.dirname(converted))))
        return real(source, converted, **kwargs)

    monkeypatch.setattr(pipeline, "verify_model", watching)
    code, err = run_cli(["convert", src, "-o", out, "--verify"], capsys)
    assert code == 0 and os.path.exists(out), err
    assert seen and seen[0][0] is False and ".modelport-tmp-" in seen[0][1]  # verified the temp

    def failing(source, converted, **kwargs):
        return SimpleNamespace(passed=False, verified=True, converted=converted,
                               table=lambda: "FAIL",
                               to_dict=lambda: {"passed": False})

    with open(out, "wb") as f:
        f.write(PRECIOUS)
    monkeypatch.setattr(pipeline, "verify_model", failing)
    code, err = run_cli(["convert", src, "-o", out, "--verify", "--force"], capsys)
    assert code == 1 and "was not written" in err[-1] and "--keep-failed" in err[-1], err
    assert open(out, "rb").read() == PRECIOUS  # the old file stays; no failed model replaces it
    os.unlink(out)
    code, err = run_cli(["convert", src, "-o", out, "--verify"], capsys)
    assert code == 1 and not os.path.exists(out)
    code, err = run_cli(["convert", src, "-o", out, "--verify", "--keep-failed"], capsys)
    assert code == 1 and onnx.load(out).graph.node, err  # kept on request, exit 1 still

    def interrupted(source, converted, **kwargs):
        raise KeyboardInterrupt

    os.unlink(out)
    monkeypatch.setattr(pipeline, "verify_model", interrupted)
    code, err = run_cli(["convert", src, "-o", out, "--verify"], capsys)
    assert code == 130 and not os.path.exists(out), err
    assert not [n for n in os.listdir(tmp_path) if ".modelport-tmp-" in n]


def test_stale_temporary_outputs_are_swept_but_not_live_ones(tmp_path, capsys):
    import fcntl
    import time

    from modelport.exporters.atomic import LOCK_NAME, STALE_AFTER_S

    src = tiny_onnx(str(tmp_path / "m.onnx"))
    old = time.time() - STALE_AFTER_S - 60

    def temp_dir(name: str, age: float, *, lock: bool) -> str:
        path = tmp_path / f".out.onnx.modelport-tmp-{name}"
        path.mkdir()
        (path / "out.onnx").write_bytes(b"partial")
        if lock:
            (path / LOCK_NAME).write_text("12345\n")
        for p in (path / "out.onnx", path / LOCK_NAME, path):
            if p.exists():
                os.utime(p, (age, age))
        return str(path)

    dead = temp_dir("dead", old, lock=True)  # killed run: lock file, nobody holds it
    unlocked_old = temp_dir("nolock", old, lock=False)  # an older version's folder
    young = temp_dir("young", time.time(), lock=True)  # may be a run that is starting
    live = temp_dir("live", old, lock=True)  # old but a live process holds its lock
    fd = os.open(os.path.join(live, LOCK_NAME), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, err = run_cli(["convert", src, "-o", str(tmp_path / "other.onnx")], capsys)
        assert code == 0, err
    finally:
        os.close(fd)
    assert not os.path.exists(dead) and not os.path.exists(unlocked_old)
    assert os.path.exists(young) and os.path.exists(live)


def test_batch_runs_no_code_from_any_hostile_file(hostile, tmp_path):
    """`batch` converts and verifies each model in a child process: every hostile file is that
    model's error (exit 2 for the batch), nothing runs, nothing is written for it. The manifest
    sits beside the files, so the side-effect module is importable from the children."""
    import subprocess
    import sys

    folder, marker, files, _ = hostile
    manifest = os.path.join(folder, "hostile.toml")
    with open(manifest, "w") as f:
        for i, route in enumerate(ROUTES):
            f.write(f'[[model]]\nname = "m{i}"\nsource = {json.dumps(files[route])}\n')
            if route.endswith((".pt", ".pt2")):
                f.write('input = ["x:2,3"]\n')
    out = tmp_path / "onnx"
    report = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "modelport", "batch", manifest, "--out-dir",
                        str(out), "--jobs", "2", "--json", str(report)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 2, r.stdout + r.stderr
    doc = json.loads(report.read_text())
    by_name = {m["name"]: m for m in doc["models"]}
    for i, route in enumerate(ROUTES):
        m = by_name[f"m{i}"]
        assert m["status"] == "error", (route, m)
        assert "Traceback" not in m["error"] and files[route] in m["error"], (route, m)
    assert not os.path.exists(marker), "a payload ran under batch"
    assert not out.exists() or not list(out.glob("*.onnx")), "an output was written"


# -- TensorFlow graphs: ops with side effects --------------------------------------------------

def _tf_graph_writing_file(folder: str, marker: str, *, in_function: bool = False) -> str:
    """A frozen GraphDef whose output y = Identity(x) has a control dependency on a WriteFile
    that writes ``marker`` (in the main graph, or inside a called function)."""
    from modelport.importers.tensorflow._pb import modelport_tf_pb2 as pb

    def const_string(node, value: bytes) -> None:
        node.op = "Const"
        node.attr["dtype"].type = 7  # DT_STRING
        node.attr["value"].tensor.dtype = 7
        node.attr["value"].tensor.string_val.append(value)

    g = pb.GraphDef()
    x = g.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    for d in (2, 3):
        x.attr["shape"].shape.dim.add(size=d)
    body = g.node
    if in_function:
        fn = g.library.function.add()
        fn.signature.name = "side_effect"
        body = fn.node_def
        call = g.node.add(name="call", op="StatefulPartitionedCall")
        call.attr["f"].func.name = "side_effect"
        call.attr["Tin"].list.SetInParent()
        call.attr["Tout"].list.SetInParent()
    const_string(body.add(name="filename"), marker.encode())
    const_string(body.add(name="contents"), b"pwned")
    refs = ["filename:output:0", "contents:output:0"] if in_function else ["filename", "contents"]
    body.add(name="write", op="WriteFile", input=refs)
    y = g.node.add(name="y", op="Identity", input=["x", "^call" if in_function else "^write"])
    y.attr["T"].type = 1
    path = os.path.join(folder, "writes_file_fn.pb" if in_function else "writes_file.pb")
    with open(path, "wb") as f:
        f.write(g.SerializeToString())
    return path


@pytest.mark.parametrize("in_function", [False, True])
def test_tensorflow_graph_with_side_effect_ops_is_not_run(tmp_path, capsys, in_function):
    folder = str(tmp_path)
    marker = os.path.join(folder, MARKER)
    path = _tf_graph_writing_file(folder, marker, in_function=in_function)
    converted = os.path.join(folder, "converted.onnx")
    # Conversion reads the graph as data: fine, and runs nothing.
    code, err = run_cli(["convert", path, "-o", converted], capsys)
    assert code == 0 and not os.path.exists(marker), err
    for args in (["verify", path, converted],
                 ["convert", path, "-o", os.path.join(folder, "o.onnx"), "--verify"]):
        code, err = run_cli(args, capsys)
        assert code == 2 and len(err) == 1 and path in err[0], err
        assert "WriteFile" in err[0] and "--trust-code" in err[0], err
        assert not os.path.exists(marker), f"{args}: the WriteFile ran"
    assert not os.path.exists(os.path.join(folder, "o.onnx"))
    # The route is real: trusted, TensorFlow runs the graph and the file is written.
    code, err = run_cli(["verify", path, converted, "--trust-code"], capsys)
    assert code == 0 and os.path.exists(marker), err


def test_tensorflow_code_check_passes_a_plain_saved_model(tmp_path, capsys):
    """A SavedModel's saver functions (SaveV2, RestoreV2, MergeV2Checkpoints...) are not
    what verification runs: a plain Keras SavedModel verifies without --trust-code."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = tf.Variable(rng.standard_normal((3, 2)).astype(np.float32))

    class M(tf.Module):
        def __init__(self):
            self.w = w

        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32)])
        def __call__(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, self.w))}

    folder = str(tmp_path / "sm")
    m = M()
    tf.saved_model.save(m, folder, signatures=m.__call__)
    from modelport.importers.registry import LoadOptions
    from modelport.importers.tensorflow.safety import findings

    assert findings(folder, LoadOptions()) == {}
    code, err = run_cli(["convert", folder, "-o", str(tmp_path / "m.onnx"), "--verify"], capsys)
    assert code == 0, err
