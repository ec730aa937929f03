"""The HDF5 safety scans find every occurrence, across the windows they scan a file in."""

import mmap
import shutil
import sys
from pathlib import Path

import pytest

from modelport.errors import InvalidModelError
from modelport.importers import hdf5_scan as scan
from modelport.importers.keras import model as keras_files


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
        assert scan._memmem() is not None or sys.platform == "win32"
    else:
        monkeypatch.setattr(scan, "_MEMMEM", [None])
    return request.param


@pytest.mark.parametrize("window", [7, 64, 4096])
def test_windowed_search_finds_what_a_plain_search_finds(monkeypatch, tmp_path, window, search):
    monkeypatch.setattr(scan, "_SCAN_WINDOW", window)
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
            assert list(scan._find_all(region, needle, first, stop)) == want
            assert list(scan._find_all(data, needle, first, stop)) == want


def test_bad_vlen_type_is_found_past_the_first_window(monkeypatch, tmp_path):
    monkeypatch.setattr(scan, "_SCAN_WINDOW", 4096)
    data = bytearray(20000)
    data[10000:10008] = b"\x19\x0f\x00\x00\x10\x00\x00\x00"  # class 9 v1, neither kind
    data[5000:5008] = b"\x19\x01\x00\x00\x10\x00\x00\x00"  # a string: fine
    path = tmp_path / "bad.h5"
    path.write_bytes(bytes(data))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as region:
        with pytest.raises(InvalidModelError, match="at byte 10000"):
            scan.check_vlen_types(region, str(path))


REGRESSIONS = Path(__file__).resolve().parents[2] / "fuzz" / "regressions"


@pytest.mark.parametrize("name,why", [
    ("keras-h5-67604870df.h5", "global heap"),
    ("keras-k2-h5-5e4e8c7d2f.h5", "global heap"),
    ("keras1-h5-7259fcd509.h5", "datatype"),
])
def test_the_two_scans_side_by_side_refuse_what_they_refuse_one_after_the_other(
        monkeypatch, tmp_path, search, name, why):
    # Large files scan in two threads; these small ones are made to as well.
    monkeypatch.setattr(scan, "_PARALLEL_MIN_BYTES", 0)
    path = tmp_path / name
    shutil.copy(REGRESSIONS / name, path)
    with pytest.raises(InvalidModelError, match=f"has a corrupt HDF5 {why}"):
        keras_files._open_h5(str(path))


def test_a_sound_file_passes_both_scans_side_by_side(monkeypatch, tmp_path, search):
    import h5py
    import numpy as np

    monkeypatch.setattr(scan, "_PARALLEL_MIN_BYTES", 0)
    path = tmp_path / "ok.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = "{}" * 5000  # a variable-length string in a global heap
        f.create_dataset("w", data=np.random.default_rng(0).standard_normal(1 << 16))
    h = keras_files._open_h5(str(path))
    try:
        assert h.attrs["model_config"] == "{}" * 5000
    finally:
        h.close()


def _big_h5(path, config="{}"):
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = config
        f.create_dataset("w", data=np.random.default_rng(0).standard_normal(1 << 16))


def test_early_scans_are_used_by_the_open_that_follows(monkeypatch, tmp_path):
    monkeypatch.setattr(scan, "_PARALLEL_MIN_BYTES", 0)
    path = tmp_path / "ok.h5"
    _big_h5(path)
    calls = []
    real = scan._both_scans
    monkeypatch.setattr(scan, "_both_scans", lambda *a: calls.append(a[1]) or real(*a))
    scan.prescan(str(path))
    h = keras_files._open_h5(str(path))
    h.close()
    assert calls == [str(path)]  # scanned once, early, not again on opening
    assert not scan._PRESCANS


@pytest.mark.parametrize("name,why", [
    ("keras-h5-67604870df.h5", "global heap"),
    ("keras1-h5-7259fcd509.h5", "datatype"),
])
def test_a_refusal_found_early_is_raised_by_the_open(monkeypatch, tmp_path, name, why):
    monkeypatch.setattr(scan, "_PARALLEL_MIN_BYTES", 0)
    path = tmp_path / name
    shutil.copy(REGRESSIONS / name, path)
    scan.prescan(str(path))
    with pytest.raises(InvalidModelError, match=f"has a corrupt HDF5 {why}"):
        keras_files._open_h5(str(path))


def test_a_file_changed_after_its_early_scans_is_scanned_again(monkeypatch, tmp_path):
    monkeypatch.setattr(scan, "_PARALLEL_MIN_BYTES", 0)
    path = tmp_path / "m.h5"
    _big_h5(path)
    scan.prescan(str(path))
    for _identity, early in scan._PRESCANS.values():
        early.wait()  # (a mapped file cut short under a running scan is a SIGBUS)
    shutil.copy(REGRESSIONS / "keras-h5-67604870df.h5", path)  # changed: a corrupt heap now
    with pytest.raises(InvalidModelError, match="has a corrupt HDF5 global heap"):
        keras_files._open_h5(str(path))
    assert not scan._PRESCANS


def test_early_scans_nothing_used_are_waited_for(monkeypatch, tmp_path):
    import threading

    monkeypatch.setattr(scan, "_PARALLEL_MIN_BYTES", 0)
    path = tmp_path / "m.h5"
    _big_h5(path)
    scan.prescan(str(path))
    scan.prescan(str(tmp_path))  # a folder: ignored
    scan.prescan(str(tmp_path / "missing.h5"))
    scan.finish_prescans()
    assert not scan._PRESCANS
    assert not any(t.name == "modelport-hdf5-prescan" for t in threading.enumerate())


def test_the_command_line_scans_a_large_hdf5_source_early(monkeypatch, tmp_path):
    from modelport.cli import main

    monkeypatch.setattr(scan, "_PARALLEL_MIN_BYTES", 0)
    started = []
    real = scan.prescan
    monkeypatch.setattr(scan, "prescan", lambda p: started.append(p) or real(p))
    path = tmp_path / "keras-h5-67604870df.h5"
    shutil.copy(REGRESSIONS / path.name, path)
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(path), "-o", str(tmp_path / "out.onnx")])
    assert exc.value.code == 2
    assert started == [str(path)] and not scan._PRESCANS
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("parallel", [False, True])
def test_a_file_both_scans_refuse_gets_the_heap_refusal_either_way(monkeypatch, parallel):
    monkeypatch.setattr(scan, "_PARALLEL_MIN_BYTES", 0 if parallel else 1 << 62)
    data = bytearray(20000)
    # a global heap collection of 4096 bytes whose free-space object (index 0) is too small
    data[0:16] = b"GCOL\x01\x00\x00\x00" + (4096).to_bytes(8, "little")
    data[24:32] = (5).to_bytes(8, "little")
    data[10000:10008] = b"\x19\x0f\x00\x00\x10\x00\x00\x00"  # and a bad vlen type
    with pytest.raises(InvalidModelError, match="corrupt HDF5 global heap at byte 0"):
        scan._both_scans(bytes(data), "both.h5")
