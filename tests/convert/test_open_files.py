"""Source files opened while importing are closed when the conversion ends."""

import json
import os

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import modelport
from modelport.errors import ModelportError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
H5 = os.path.join(ROOT, "tests", "fixtures", "theano", "k2_cnn_last.h5")


def _open_fds(path: str) -> list[str]:
    want = os.path.realpath(path)
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")) == want:
                fds.append(fd)
        except OSError:
            pass
    return fds


def test_keras_hdf5_closed_after_convert_and_weights_intact(tmp_path):
    assert h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE) == []
    out = tmp_path / "o.onnx"
    modelport.convert(H5, str(out))
    assert h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE) == []
    assert _open_fds(H5) == []
    # The weights were read before the files closed: the output computes with them.
    proto = onnx.load(str(out))
    with h5py.File(H5, "r") as f:
        stored = []
        f["model_weights"].visititems(
            lambda _n, o: stored.append(np.asarray(o)) if isinstance(o, h5py.Dataset) else None)
    inits = [np.asarray(onnx.numpy_helper.to_array(t)) for t in proto.graph.initializer]
    for w in stored:
        assert any(i.size == w.size and np.array_equal(np.sort(i.ravel()), np.sort(w.ravel()))
                   for i in inits), w.shape
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(
        [d.dim_value or 1 for d in proto.graph.input[0].type.tensor_type.shape.dim]
    ).astype(np.float32)
    assert np.isfinite(sess.run(None, {proto.graph.input[0].name: x})[0]).all()


def test_keras_hdf5_closed_when_the_import_fails(tmp_path):
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {
            "name": "s", "layers": [
                {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape":
                                                        [None, 4], "dtype": "float32"}},
                {"class_name": "NoSuchLayer", "config": {"name": "odd"}}]}})
        f.create_group("model_weights")
    with pytest.raises(ModelportError, match="NoSuchLayer"):
        modelport.convert(str(bad), str(tmp_path / "o.onnx"))
    assert h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE) == []
    assert _open_fds(str(bad)) == []


def test_load_keeps_the_files_open_for_its_lazy_weights(tmp_path):
    # A library user's model still reads its weights; close_sources releases them.
    from modelport.graph_ir import close_sources

    model = modelport.load(H5)
    assert len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)) == 1
    modelport.save(model, str(tmp_path / "o.onnx"))
    close_sources(model)
    assert h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE) == []
