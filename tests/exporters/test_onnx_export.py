"""The ONNX exporter: checked, shape-annotated, deterministic, external data, atomic."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import modelport
from modelport.errors import ExportError, OutputExistsError
from modelport.exporters import onnx as onnx_exporter
from modelport.graph_ir import GraphBuilder, lazy_tensor
from tests.oracles import assert_close, run_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_export_passes_full_checker_and_stores_inferred_shapes(sample_onnx, tmp_path):
    out = tmp_path / "out.onnx"
    modelport.convert(sample_onnx, out, level=0)
    onnx.checker.check_model(str(out), full_check=True)
    proto = onnx.load(out)
    shaped = {vi.name: [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]
              for vi in proto.graph.value_info}
    intermediates = [o for n in proto.graph.node for o in n.output
                     if o not in {x.name for x in proto.graph.output}]
    assert intermediates and all(name in shaped for name in intermediates)
    assert shaped["gap"] == ["batch", 32, 1, 1]


def _convert_in_subprocess(src, out, hashseed):
    env = dict(os.environ, PYTHONHASHSEED=str(hashseed))
    subprocess.run([sys.executable, "-m", "modelport", "convert", str(src), "-o", str(out),
                    "--quiet"], check=True, env=env, cwd=ROOT)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def test_converting_twice_gives_identical_bytes(sample_onnx, tmp_path):
    first = _convert_in_subprocess(sample_onnx, tmp_path / "a.onnx", 1)
    second = _convert_in_subprocess(sample_onnx, tmp_path / "b.onnx", 2)
    assert first == second


def test_streamed_file_equals_what_onnx_would_write(sample_onnx, tmp_path):
    model = modelport.load(sample_onnx)
    out = tmp_path / "streamed.onnx"
    modelport.save(model, out)
    streamed = onnx.load(out)
    reference = ir.serde.serialize_model(model)
    assert [n.SerializeToString() for n in streamed.graph.node] == [
        n.SerializeToString() for n in reference.graph.node]
    ours = {t.name: onnx.numpy_helper.to_array(t) for t in streamed.graph.initializer}
    theirs = {t.name: onnx.numpy_helper.to_array(t) for t in reference.graph.initializer}
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])


def _dense_model(rows, cols, read=None):
    b = GraphBuilder("dense")
    x = b.input("x", np.float32, [1, rows])
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((rows, cols)).astype(np.float32)
    w = b.initializer("w", lazy_tensor(read or (lambda: weight), np.float32, (rows, cols)))
    with b.layer("dense"):
        y = b.op("MatMul", x, w)
    b.output(y, "y")
    return b.build(), weight


def test_external_data_when_weights_exceed_the_threshold(tmp_path):
    model, weight = _dense_model(64, 64)
    out = tmp_path / "m.onnx"
    result = onnx_exporter.export(model, out, external_threshold=1000)
    assert result.external_data == str(tmp_path / "m.onnx.data")
    assert os.path.getsize(tmp_path / "m.onnx.data") >= weight.nbytes
    assert os.path.getsize(out) < weight.nbytes
    x = np.ones((1, 64), np.float32)
    assert_close(run_onnx(out, {"x": x})["y"], x @ weight, rtol=1e-5, atol=1e-5)


def test_no_external_data_under_the_threshold(tmp_path):
    model, _ = _dense_model(64, 64)
    result = onnx_exporter.export(model, tmp_path / "m.onnx")
    assert result.external_data is None
    assert not (tmp_path / "m.onnx.data").exists()


@pytest.mark.slow
def test_models_over_2gb_use_external_data_automatically(tmp_path):
    rows, cols = 1024, 540 * 1024  # 2.26 GB of float32
    model, _ = _dense_model(rows, cols, read=lambda: np.full((rows, cols), 0.5, np.float32))
    out = tmp_path / "big.onnx"
    result = onnx_exporter.export(model, out)
    assert result.external_data is not None
    assert os.path.getsize(out) < 1_000_000
    x = np.ones((1, rows), np.float32)
    got = run_onnx(out, {"x": x})["y"]
    assert got.shape == (1, cols) and np.allclose(got, 0.5 * rows)


def _leftovers(directory):
    return sorted(p for p in os.listdir(directory) if p != "sample.onnx")


def test_existing_output_is_never_replaced_without_force(sample_onnx, tmp_path):
    out = tmp_path / "out.onnx"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        modelport.convert(sample_onnx, out)
    assert out.read_bytes() == b"precious"
    modelport.convert(sample_onnx, out, force=True)
    onnx.checker.check_model(str(out))


def test_failed_export_leaves_no_file(sample_onnx, tmp_path, monkeypatch):
    model = modelport.load(sample_onnx)

    def broken_check(*args, **kwargs):
        raise onnx.checker.ValidationError("simulated checker failure")

    monkeypatch.setattr(onnx.checker, "check_model", broken_check)
    with pytest.raises(ExportError, match="simulated checker failure"):
        modelport.save(model, tmp_path / "out.onnx")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("force", [False, True])
def test_interrupted_export_leaves_no_file_and_keeps_the_old_one(
        sample_onnx, tmp_path, monkeypatch, force):
    out = tmp_path / "out.onnx"
    if force:
        out.write_bytes(b"old")
    real = onnx_exporter.write_model

    def interrupted(model, f, on_tensor=None):
        real(model, f)
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_exporter, "write_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        modelport.convert(sample_onnx, out, force=force)
    assert _leftovers(tmp_path) == (["out.onnx"] if force else [])
    if force:
        assert out.read_bytes() == b"old"


def test_opset_conversion(sample_onnx, tmp_path):
    out = tmp_path / "o18.onnx"
    result = modelport.convert(sample_onnx, out, opset=18, verify=True)
    assert result.opset == 18 and result.report.passed
    assert {o.domain: o.version for o in onnx.load(out).opset_import}[""] == 18


def test_onnx_source_with_external_data_converts_to_a_self_contained_file(tmp_path):
    model, weight = _dense_model(64, 64)
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    onnx_exporter.export(model, src_dir / "m.onnx", external_data=True)
    assert (src_dir / "m.onnx.data").exists()
    out = tmp_path / "out.onnx"
    result = modelport.convert(src_dir / "m.onnx", out, verify=True)
    assert result.report.passed and result.external_data is None
    proto = onnx.load(out, load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    (src_dir / "m.onnx.data").unlink()  # the converted file must not need it
    x = np.ones((1, 64), np.float32)
    assert_close(run_onnx(out, {"x": x})["y"], x @ weight, rtol=1e-5, atol=1e-5)


def test_models_are_checked_without_holding_their_weights(tmp_path, monkeypatch):
    checked = []
    real = onnx.checker.check_model

    def spy(model, *args, **kwargs):
        checked.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnx.checker, "check_model", spy)
    model, weight = _dense_model(64, 64)
    out = tmp_path / "m.onnx"
    onnx_exporter.export(model, out)
    assert len(checked) == 1 and isinstance(checked[0], onnx.ModelProto)
    assert not checked[0].graph.initializer  # the check saw no large weight's bytes
    assert [i.name for i in checked[0].graph.input] == ["x", "w"]
    x = np.ones((1, 64), np.float32)
    assert_close(run_onnx(out, {"x": x})["y"], x @ weight, rtol=1e-5, atol=1e-5)

    b = GraphBuilder("bad")
    x_in = b.input("x", np.float32, [1, 4])
    w = b.initializer("w", np.ones((4, 4), np.float32))
    b.output(b.op("MatMul", x_in, w, transA=1), "y")  # MatMul has no attribute transA
    with pytest.raises(ExportError, match="checker"):
        onnx_exporter.export(b.build(), tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int8, np.uint16, np.int64, np.bool_,
                                   "bfloat16"])
def test_every_element_type_is_written_exactly(tmp_path, dtype):
    import ml_dtypes

    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    values = (np.random.default_rng(2).standard_normal((3, 5)) * 50).astype(np_dtype)
    b = GraphBuilder("types")
    x = b.input("x", np.float32, [1])
    w = b.initializer("w", ir.Tensor(values))
    b.output(b.op("Identity", w), "y")
    b.output(b.op("Identity", x), "x_out")
    onnx_exporter.export(b.build(), tmp_path / "t.onnx")
    saved = onnx.numpy_helper.to_array(onnx.load(tmp_path / "t.onnx").graph.initializer[0])
    assert saved.dtype == values.dtype
    np.testing.assert_array_equal(saved, values)


def _many_weights_model(n, read):
    b = GraphBuilder("many")
    x = b.input("x", np.float32, [1, 16])
    for i in range(n):
        w = b.initializer(f"w{i}", lazy_tensor(lambda i=i: read(i), np.float32, (16, 16)))
        x = b.op("MatMul", x, w)
    b.output(x, "y")
    return b.build()


def _weight(i):
    return np.random.default_rng(i).standard_normal((16, 16)).astype(np.float32)


def test_reading_the_next_weight_while_writing_gives_the_same_bytes(tmp_path, monkeypatch):
    import threading

    from modelport.exporters import _protowire

    reads = []

    def read(i):
        reads.append((i, threading.current_thread().name))
        return _weight(i)

    paths = {}
    for ahead in (False, True):
        reads.clear()
        # forced both ways, whatever this machine's CPU count
        monkeypatch.setattr(_protowire, "_AHEAD_MIN_BYTES", 0 if ahead else 1 << 62)
        monkeypatch.setattr(_protowire.os, "sched_getaffinity", lambda _pid: {0, 1},
                            raising=False)
        paths[ahead] = tmp_path / f"ahead{ahead}.onnx"
        onnx_exporter.export(_many_weights_model(6, read), paths[ahead])
        assert [i for i, _ in reads] == list(range(6))  # each weight read once, in order
        workers = {name for _, name in reads if name != threading.current_thread().name}
        assert bool(workers) == ahead
    assert paths[True].read_bytes() == paths[False].read_bytes()
    assert not any(t.name.startswith("modelport-read") for t in threading.enumerate())
    x = np.random.default_rng(9).standard_normal((1, 16)).astype(np.float32)
    want = x
    for i in range(6):
        want = want @ _weight(i)
    assert_close(run_onnx(paths[True], {"x": x})["y"], want, rtol=1e-4, atol=1e-4)


def test_a_failed_read_in_the_second_thread_fails_the_export(tmp_path, monkeypatch):
    import threading

    from modelport.errors import InvalidModelError
    from modelport.exporters import _protowire

    monkeypatch.setattr(_protowire, "_AHEAD_MIN_BYTES", 0)
    monkeypatch.setattr(_protowire.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)

    def read(i):
        if i == 3:
            raise InvalidModelError("weight 3 is cut short", path="src.h5")
        return _weight(i)

    with pytest.raises(InvalidModelError, match="weight 3 is cut short"):
        onnx_exporter.export(_many_weights_model(6, read), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    assert not any(t.name.startswith("modelport-read") for t in threading.enumerate())
