"""Converting PyTorch sources and comparing the ONNX results with PyTorch eager.

The quick tests here cover each source kind on the CNN and the two-input model; the full
model × source-kind matrix is in test_matrix.py (marked slow).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import modelport
from modelport.errors import (
    InputSpecError,
    InvalidModelError,
    MissingDependencyError,
    UnsafeModelError,
    UnsupportedOpsError,
)
from modelport.importers.registry import LoadOptions
from tests.importers.pytorch.helpers import (
    ENTRY,
    compare_with_eager,
    eager,
    shapes_at,
    write_source,
)
from tests.importers.pytorch.models import TwoInOut, _seeded

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return str(tmp_path_factory.mktemp("torch"))


@pytest.fixture(scope="module")
def cnn_dynamic(folder):
    """The CNN from its entry point with a dynamic batch, verified per layer."""
    out = os.path.join(folder, "cnn_entry.onnx")
    result = modelport.convert(ENTRY.format("cnn"), out, verify=True, per_layer=True,
                               input_shapes=shapes_at("cnn", 1), dynamic=["batch"])
    return out, result


def test_entry_point_dynamic_batch_matches_eager(cnn_dynamic):
    out, result = cnn_dynamic
    assert result.passed, result.report.table()
    assert result.report.reference.startswith("PyTorch 2.")
    proto = onnx.load(out)
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    compare_with_eager(out, eager("cnn"), "cnn", batches=(2, 5))


def test_weights_keep_parameter_paths(cnn_dynamic):
    out, _ = cnn_dynamic
    proto = onnx.load(out)
    names = {t.name for t in proto.graph.initializer}
    assert {"stem.0.weight", "fc.weight", "fc.bias"} <= names, sorted(names)
    keys = {p.key for n in proto.graph.node for p in n.metadata_props}
    assert "modelport.source" in keys and "pkg.torch.onnx.stack_trace" not in keys, keys


def test_per_layer_compares_submodules(cnn_dynamic):
    _, result = cnn_dynamic
    layers = {c.name for c in result.report.layers}
    assert {"block1.bn1", "block2", "fc"} <= layers, layers
    assert all(c.passed for c in result.report.layers)
    assert result.report.first_diverging_layer is None


def test_nodes_record_module_paths(cnn_dynamic):
    from modelport.graph_ir.source import SOURCE_KEY

    model = modelport.load(ENTRY.format("cnn"), input_shapes=shapes_at("cnn", 1))
    sources = {n.metadata_props[SOURCE_KEY] for n in model.graph}
    assert "block1.conv1" in sources and "fc" in sources, sources
    assert all(s for s in sources)


def test_per_layer_names_first_diverging_submodule(folder):
    """Break one convolution's weights in the ONNX file: the report names that submodule."""
    out = os.path.join(folder, "cnn_O0.onnx")
    modelport.convert(ENTRY.format("cnn"), out, level=0, input_shapes=shapes_at("cnn", 1))
    proto = onnx.load(out)
    for tensor in proto.graph.initializer:
        if tensor.name == "block2.conv1.weight":
            w = onnx.numpy_helper.to_array(tensor).copy()
            w[0] += 0.5
            tensor.CopyFrom(onnx.numpy_helper.from_array(w, tensor.name))
    broken = os.path.join(folder, "cnn_broken.onnx")
    onnx.save(proto, broken)
    report = modelport.verify(ENTRY.format("cnn"), broken, per_layer=True,
                              input_shapes=shapes_at("cnn", 1))
    assert not report.passed
    assert report.first_diverging_layer == "block2.conv1"
    ok = {c.name: c.passed for c in report.layers}
    assert ok["block1.bn2"] and not ok["block2.conv1"]


def test_pt2_two_inputs_tuple_output_dynamic(folder):
    src, options, module = write_source("pt2", "two_in_out", folder)
    out = os.path.join(folder, "two.onnx")
    result = modelport.convert(src, out, verify=True, per_layer=True, dynamic=["batch"],
                               **options)
    assert result.passed, result.report.table()
    assert result.format == "torch-export"
    assert [c.name for c in result.report.outputs] == ["output_0", "output_1"]
    assert {"conv", "bn", "vec", "cls"} & {c.name for c in result.report.layers}
    compare_with_eager(out, module, "two_in_out", batches=(1, 3))


def test_torchscript_takes_wrapper_route_at_fixed_batch(folder, capfd):
    src, options, module = write_source("script", "cnn", folder)
    out = os.path.join(folder, "cnn_ts.onnx")
    given = copy.deepcopy(options)
    mine = LoadOptions(**options)
    result = modelport.convert(src, out, verify=True, options=mine)
    assert result.passed, result.report.table()
    assert result.format == "torchscript"
    # The route fixed the input sizes; the caller's options stay as they were given.
    assert options == given and mine == LoadOptions(**given)
    # The route is a note of the result, not a line the importer prints (--json, --quiet hold).
    assert "TorchScript route" not in capfd.readouterr().err
    route = [line for line in result.notes if "TorchScript route:" in line]
    assert len(route) == 1 and "wrapper module + torch.export" in route[0]
    assert "fixed shapes x 1x3x16x16" in route[0]
    proto = onnx.load(out)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    names = {t.name for t in proto.graph.initializer}
    assert {"stem.0.weight", "fc.weight"} <= names, sorted(names)
    compare_with_eager(out, module, "cnn", batches=(1,))
    with pytest.raises(InputSpecError, match="not available for TorchScript"):
        modelport.verify(src, out, per_layer=True, **options)
    # On the command line the note goes to stderr, and into the report with --json only.
    from modelport.cli import main

    shape_flags = [f for name, dims in options["input_shapes"].items()
                   for f in ("--input", f"{name}:{','.join(map(str, dims))}")]
    for flags in (["--json"], []):
        capfd.readouterr()
        try:
            main(["convert", src, "-o", os.path.join(folder, "cli.onnx"), "--force",
                  "--trust-code", *shape_flags, *flags])
        except SystemExit as exc:
            assert not exc.code
        got = capfd.readouterr()
        if flags:
            assert "route" not in got.err
            assert "fixed shapes" in json.loads(got.out)["notes"][0]
        else:
            assert f"modelport: {src}: TorchScript route: wrapper" in got.err


def test_torchscript_dynamic_batch_takes_legacy_route(folder, capfd):
    src, options, module = write_source("trace", "cnn", folder)
    out = os.path.join(folder, "cnn_ts_dynamic.onnx")
    result = modelport.convert(src, out, verify=True, dynamic=["batch"], **options)
    assert result.passed, result.report.table()
    route = [line for line in result.notes if "route:" in line]
    assert len(route) == 1 and "legacy TorchScript exporter" in route[0], route
    assert "keeps the dynamic dims" in route[0]
    proto = onnx.load(out)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {"block1.conv1.weight", "fc.weight"} <= {t.name for t in proto.graph.initializer}
    compare_with_eager(out, module, "cnn", batches=(2, 3))


def test_torchscript_dynamic_transformer_falls_back_to_fixed_batch(folder, capfd):
    src, options, module = write_source("script", "attention", folder)
    out = os.path.join(folder, "attention_ts.onnx")
    result = modelport.convert(src, out, verify=True, dynamic=["batch"], **options)
    assert result.passed, result.report.table()
    route = [line for line in result.notes if "route:" in line]
    assert len(route) == 1 and "wrapper module + torch.export; fixed shapes" in route[0]
    assert "legacy (dynamic): " in route[0]  # the failure that made it fall back
    assert onnx.load(out).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    compare_with_eager(out, module, "attention", batches=(1,))


@pytest.mark.parametrize("route", ["ts2ep", "legacy"])
def test_torchscript_fallback_routes(folder, route):
    src, options, module = write_source("trace", "two_in_out", folder)
    out = os.path.join(folder, f"two_{route}.onnx")
    opts = LoadOptions(input_shapes=options["input_shapes"], trust_code=True,
                       extra={"torchscript_route": route})
    result = modelport.convert(src, out, verify=True, options=opts)
    assert result.passed, result.report.table()
    compare_with_eager(out, module, "two_in_out", batches=(1,))


def test_state_dict_weights_with_entry_point(folder):
    src, options, module = write_source("state_dict", "two_in_out", folder)
    out = os.path.join(folder, "two_sd.onnx")
    result = modelport.convert(src, out, verify=True, opset=17, **options)
    assert result.passed, result.report.table()
    assert result.opset == 17  # down from the exporter's 18 (ReduceMean's axes input)
    assert {o.domain: o.version for o in onnx.load(out).opset_import}[""] == 17
    compare_with_eager(out, module, "two_in_out", batches=(1,))
    # the factory's own weights differ: the file's weights were really used
    with pytest.raises(AssertionError):
        compare_with_eager(out, eager("two_in_out"), "two_in_out", batches=(1,))


def test_state_dict_that_does_not_fit(folder):
    path = os.path.join(folder, "wrong.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(InvalidModelError, match="missing .*unexpected fc.weight"):
        modelport.load(ENTRY.format("two_in_out"), input_shapes=shapes_at("two_in_out", 1),
                       weights=path)


def test_pickled_module_needs_trust_code(folder):
    module = _seeded(TwoInOut(), 11)
    path = os.path.join(folder, "full.pt")
    torch.save(module, path)
    with pytest.raises(UnsafeModelError, match="--trust-code.*state_dict"):
        modelport.load(path, input_shapes=shapes_at("two_in_out", 1))
    out = os.path.join(folder, "full.onnx")
    result = modelport.convert(path, out, verify=True, trust_code=True,
                               input_shapes=shapes_at("two_in_out", 1))
    assert result.passed
    compare_with_eager(out, module, "two_in_out", batches=(1,))


def test_state_dict_given_as_source_points_to_entry_points(folder):
    path = os.path.join(folder, "only_weights.pth")
    torch.save(eager("two_in_out").state_dict(), path)
    with pytest.raises(InvalidModelError, match="package.module:factory --weights"):
        modelport.load(path, input_shapes=shapes_at("two_in_out", 1))


def test_missing_input_shape_is_explained():
    with pytest.raises(InputSpecError, match="--input image:"):
        modelport.load(ENTRY.format("two_in_out"), input_shapes={})
    with pytest.raises(InputSpecError, match="forward\\(\\) takes image, vector"):
        modelport.load(ENTRY.format("two_in_out"), input_shapes={"img": [1, 3, 8, 8],
                                                                 "vector": [1, 5]})


def test_unsupported_operator_is_named(capsys):
    from modelport.cli import main

    with pytest.raises(UnsupportedOpsError, match="aten.linalg_eig"):
        modelport.load(ENTRY.format("Broken"), input_shapes={"x": [3, 3]})
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", ENTRY.format("Broken"), "--input", "x:3,3", "-o", "/dev/null/x.onnx",
              "-q"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "aten.linalg_eig" in err[0], err
    # --debug re-raises with the exporter's own exception in the chain
    with pytest.raises(UnsupportedOpsError) as info:
        main(["convert", ENTRY.format("Broken"), "--input", "x:3,3", "-o", "/dev/null/x.onnx",
              "-q", "--debug"])
    assert info.value.__cause__ is not None


def test_torch_export_failure_is_one_line(capsys):
    from modelport.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["convert", ENTRY.format("DataDependent"), "--input", "x:2,3", "-o",
              "/dev/null/x.onnx"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines  # the exporter's graph dumps do not reach the user
    assert "torch.export failed" in lines[0] and "data-dependent" in lines[0]
    assert captured.out == ""


def test_without_torch_formats_and_pt2_say_which_extra(folder, monkeypatch, capsys):
    from modelport.cli import main
    from modelport.importers import registry

    src, _, _ = write_source("pt2", "two_in_out", folder)
    real = registry._installed
    monkeypatch.setattr(registry, "_installed", lambda m: m != "torch" and real(m))
    main(["formats"])
    text = capsys.readouterr().out
    assert "torch-export" in text and "needs modelport[pytorch]" in text
    with pytest.raises(MissingDependencyError, match=r"pip install 'modelport\[pytorch\]'"):
        modelport.load(src)


def test_cli_subprocess_entry_point(folder):
    """The console entry resolves package.module:factory from the working directory."""
    out = os.path.join(folder, "cli_two.onnx")
    proc = subprocess.run(
        [sys.executable, "-m", "modelport", "convert", ENTRY.format("two_in_out"),
         "--input", "image:1,3,8,8", "--input", "vector:1,5", "-o", out, "--verify", "-q"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout
    compare_with_eager(out, eager("two_in_out"), "two_in_out", batches=(1,))


def test_named_dynamic_dim(folder):
    """--input x:batch,seq,8 makes both dims symbolic; checked at two sizes of each."""
    out = os.path.join(folder, "encoder_seq.onnx")
    modelport.convert(ENTRY.format("encoder"), out, input_shapes={"x": ["batch", "seq", 8]},
                      dynamic=["batch"])
    dims = onnx.load(out).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[:2]] == ["batch", "seq"]
    import onnxruntime as ort

    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    module = eager("encoder")
    for b, t in ((1, 3), (4, 9)):
        x = np.random.default_rng(b).standard_normal((b, t, 8)).astype(np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-3, atol=1e-4)


def test_integer_inputs_through_input_dtypes(folder):
    from tests.importers.pytorch.models import tagger

    out = os.path.join(folder, "tagger.onnx")
    result = modelport.convert(ENTRY.format("tagger"), out, verify=True, per_layer=True,
                               input_shapes={"ids": [1, 5]}, input_dtypes={"ids": "int64"})
    assert result.passed, result.report.table()
    assert {c.name for c in result.report.layers} == {"embed", "fc"}
    import onnxruntime as ort

    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(3).integers(0, 10, size=(1, 5))
    with torch.no_grad():
        want = tagger()(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(session.run(None, {"ids": ids})[0], want, rtol=1e-3, atol=1e-4)


def test_entry_point_and_weights_errors(folder):
    with pytest.raises(InvalidModelError, match="cannot be called without arguments"):
        modelport.load("tests.importers.pytorch.models:_seeded", input_shapes={"x": [1]})
    with pytest.raises(InvalidModelError, match="has no attribute 'nothing'"):
        modelport.load("tests.importers.pytorch.models:nothing", input_shapes={"x": [1]})
    with pytest.raises(InvalidModelError, match="cannot import module"):
        modelport.load("no_such_package.models:cnn", input_shapes={"x": [1]})
    src, _, _ = write_source("pt2", "two_in_out", folder)
    with pytest.raises(InputSpecError, match="--weights .it holds its own weights"):
        modelport.load(src, weights=src)


def test_without_torch_really_installed(folder):
    """A child process where importing torch fails: formats and a .pt2 say which extra."""
    src, _, _ = write_source("pt2", "two_in_out", folder)
    blocker = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from modelport.cli import main\n"
        "main(sys.argv[1:])\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    formats = subprocess.run([sys.executable, "-c", blocker, "formats"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    assert formats.returncode == 0, formats.stderr
    line = [ln for ln in formats.stdout.splitlines() if "verify against PyTorch (torch.export" in ln]
    assert line and "needs modelport[pytorch]" in line[0], formats.stdout
    out = os.path.join(folder, "no_torch.onnx")
    convert = subprocess.run([sys.executable, "-c", blocker, "convert", src, "-o", out], cwd=ROOT,
                             env=env, capture_output=True, text=True)
    assert convert.returncode == 2
    err = convert.stderr.strip().splitlines()
    assert len(err) == 1 and "pip install 'modelport[pytorch]'" in err[0], err
    assert not os.path.exists(out)


def test_cli_input_dtype_for_integer_inputs(folder):
    import subprocess
    import sys

    out = os.path.join(folder, "tagger_cli.onnx")
    r = subprocess.run([sys.executable, "-m", "modelport", "convert",
                        ENTRY.format("tagger"), "--input", "ids:1,5:int64", "-o", out,
                        "--verify", "--json"], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                           os.path.dirname(os.path.abspath(__file__))))))
    assert r.returncode == 0, r.stderr
    import json

    report = json.loads(r.stdout)
    assert report["passed"] and report["report"]["inputs"] == {"ids": [1, 5]}
