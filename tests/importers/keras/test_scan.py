"""The HDF5 safety scans find every occurrence, across the windows they scan a file in."""

import mmap
import shutil
import sys
from pathlib import Path

import pytest

from modelport.errors import InvalidModelError
from modelport.importers.keras import model as keras_model


def _plain(data: bytes, needle: bytes, first: int, stop: int) -> list[int]:
    found, i = [], data.find(needle, first, stop)
    while i >= 0:
        found.append(i)
        i = data.find(needle, i + 1, stop)
    return found


@pytest.fixture(params=["memmem", "find"])
def search(request, monkeypatch):
    """Both searches: the C library's memmem (through ctypes) and Python's find (where there
    is no memmem)."""
    if request.param == "memmem":
        assert keras_model._memmem() is not None or sys.platform == "win32"
    else:
        monkeypatch.setattr(keras_model, "_MEMMEM", [None])
    return request.param


@pytest.mark.parametrize("window", [7, 64, 4096])
def test_windowed_search_finds_what_a_plain_search_finds(monkeypatch, tmp_path, window, search):
    monkeypatch.setattr(keras_model, "_SCAN_WINDOW", window)
    needle = b"\x00\x10\x00\x00\x00"
    data = bytearray(b"\x7f" * 20000)
    # at window boundaries, straddling them, overlapping each other, at both ends
    for pos in (0, 3, 60, 62, 63, 64, 4093, 4095, 4096, 9000, 9001, 19995):
        data[pos:pos + len(needle)] = needle
    data = bytes(data)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as region:
        for first, stop in ((0, len(data)), (3, len(data)), (61, 9004)):
            want = _plain(data, needle, first, stop)
            assert list(keras_model._find_all(region, needle, first, stop)) == want
            assert list(keras_model._find_all(data, needle, first, stop)) == want


def test_bad_vlen_type_is_found_past_the_first_window(monkeypatch, tmp_path):
    monkeypatch.setattr(keras_model, "_SCAN_WINDOW", 4096)
    data = bytearray(20000)
    data[10000:10008] = b"\x19\x0f\x00\x00\x10\x00\x00\x00"  # class 9 v1, neither kind
    data[5000:5008] = b"\x19\x01\x00\x00\x10\x00\x00\x00"  # a string: fine
    path = tmp_path / "bad.h5"
    path.write_bytes(bytes(data))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as region:
        with pytest.raises(InvalidModelError, match="at byte 10000"):
            keras_model.check_vlen_types(region, str(path))


REGRESSIONS = Path(__file__).resolve().parents[2] / "fuzz" / "regressions"


@pytest.mark.parametrize("name,why", [
    ("keras-h5-67604870df.h5", "global heap"),
    ("keras-k2-h5-5e4e8c7d2f.h5", "global heap"),
    ("keras1-h5-7259fcd509.h5", "datatype"),
])
def test_the_two_scans_side_by_side_refuse_what_they_refuse_one_after_the_other(
        monkeypatch, tmp_path, search, name, why):
    # Large files scan in two threads; these small ones are made to as well.
    monkeypatch.setattr(keras_model, "_PARALLEL_MIN_BYTES", 0)
    path = tmp_path / name
    shutil.copy(REGRESSIONS / name, path)
    with pytest.raises(InvalidModelError, match=f"has a corrupt HDF5 {why}"):
        keras_model._open_h5(str(path))


def test_a_sound_file_passes_both_scans_side_by_side(monkeypatch, tmp_path, search):
    import h5py
    import numpy as np

    monkeypatch.setattr(keras_model, "_PARALLEL_MIN_BYTES", 0)
    path = tmp_path / "ok.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = "{}" * 5000  # a variable-length string in a global heap
        f.create_dataset("w", data=np.random.default_rng(0).standard_normal(1 << 16))
    h = keras_model._open_h5(str(path))
    try:
        assert h.attrs["model_config"] == "{}" * 5000
    finally:
        h.close()
