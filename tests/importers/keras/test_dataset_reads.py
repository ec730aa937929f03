"""Whole-dataset reads that bypass h5py give exactly what h5py reads, and fall back to h5py
wherever the bytes are not stored plainly."""

import os

import h5py
import numpy as np
import pytest

from modelport.errors import InvalidModelError
from modelport.importers.keras.model import Dataset, _raw_fd

PLAIN = {
    "f32": np.float32, "f16": np.float16, "f64": np.float64, "be_f32": ">f4",
    "i64": np.int64, "u8": np.uint8, "bool": np.bool_,
}


@pytest.fixture
def weights_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "w.h5"
    arrays = {}
    with h5py.File(path, "w") as f:
        for name, dtype in PLAIN.items():
            a = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
            f.create_dataset(f"g/{name}", data=a)
            arrays[name] = a
        arrays["scalar"] = np.float32(2.5)
        f.create_dataset("g/scalar", data=arrays["scalar"])
        arrays["empty"] = np.zeros((0, 4), np.float32)
        f.create_dataset("g/empty", data=arrays["empty"])
        arrays["chunked"] = rng.standard_normal((64, 64)).astype(np.float32)
        f.create_dataset("g/chunked", data=arrays["chunked"], chunks=(16, 16))
        arrays["gzip"] = rng.standard_normal((64, 64)).astype(np.float32)
        f.create_dataset("g/gzip", data=arrays["gzip"], compression="gzip")
    return path, arrays


def test_plain_datasets_are_read_directly_and_equal_h5py(weights_file):
    path, arrays = weights_file
    with h5py.File(path, "r") as f:
        fd = _raw_fd(f)
        assert fd is not None  # the default driver on a local file
        for name, want in arrays.items():
            ds = Dataset(f[f"g/{name}"], str(path), fd)
            direct = name in PLAIN or name == "scalar"
            assert (ds._offset is not None) == direct, name
            got = ds[()]
            assert np.asarray(got).dtype == np.asarray(f[f"g/{name}"][()]).dtype, name
            np.testing.assert_array_equal(got, f[f"g/{name}"][()], err_msg=name)
            np.testing.assert_array_equal(got, want, err_msg=name)
            if direct:
                assert got.flags.writeable and got.flags.owndata  # not a view of anything
            if ds.ndim:  # a partial read goes through h5py
                np.testing.assert_array_equal(ds[1:2], f[f"g/{name}"][1:2])


def test_without_a_descriptor_h5py_reads_everything(weights_file):
    path, arrays = weights_file
    with h5py.File(path, "r") as f:
        ds = Dataset(f["g/f32"], str(path))
        assert ds._offset is None
        np.testing.assert_array_equal(ds[()], arrays["f32"])


def test_data_cut_short_after_opening_is_a_corrupt_file(weights_file):
    path, _ = weights_file
    with h5py.File(path, "r") as f:
        ds = Dataset(h5py.h5d.open(f["g"].id, b"f64"), str(path), _raw_fd(f), "/g/f64")
        os.truncate(path, ds._offset + 8)
        with pytest.raises(InvalidModelError, match=r"cannot read /g/f64 \(truncated") as exc:
            ds[()]
        assert str(path) in str(exc.value)


def test_a_read_after_the_file_closed_is_refused_not_read_from_a_reused_descriptor(
        weights_file, tmp_path):
    path, _ = weights_file
    f = h5py.File(path, "r")
    ds = Dataset(f["g/f32"], str(path), _raw_fd(f))
    f.close()
    other = open(tmp_path / "other.bin", "wb+")  # may well get the closed descriptor's number
    try:
        with pytest.raises(InvalidModelError, match="was closed"):
            ds[()]
    finally:
        other.close()
