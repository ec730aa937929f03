"""Safety scans of HDF5 files, run before libhdf5 (through h5py) reads them.

Two kinds of corrupt structure make libhdf5 hang or crash instead of failing: a global heap
collection whose free-space object is wrong (it loops forever reading a variable-length string
such as a Keras ``model_config``) and a variable-length datatype that is neither a string nor
a sequence (it crashes converting an attribute). Both are found by scanning the file's bytes
for their signatures; :func:`prescan` lets the command line start that scan before it imports
the converter. This module imports nothing beyond the standard library (and NumPy, once, to
find an address).
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Iterator
from typing import Any

from modelport.errors import InvalidModelError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class _Background:
    """``fn(*args)`` in a daemon thread of its own, started at once; :meth:`result` waits for
    it and raises what it raised."""

    def __init__(self, name: str, fn: Any, *args: Any) -> None:
        import threading

        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                        name=name)
        self._thread.start()

    def _run(self, fn: Any, args: tuple) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # handed to the thread that asks for the result
            self._failure.append(exc)

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> None:
        self._thread.join()
        if self._failure:
            raise self._failure[0]


def _scan_open_file(f: Any, path: str) -> None:
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as region:
        _both_scans(region, path)


def _scan_and_close(f: Any, path: str) -> None:
    with f:
        _scan_open_file(f, path)


def check_hdf5_file(f: Any, path: str) -> None:
    """Both scans of the open file ``f`` (``path`` names it in errors), or the wait for the
    early scans :func:`prescan` started on this very file."""
    early = _take_prescan(path, os.fstat(f.fileno()))
    if early is not None:
        early.result()
    else:
        _scan_open_file(f, path)


_PRESCANS: dict[str, tuple[tuple, _Background]] = {}


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def prescan(path: str) -> None:
    """Start the safety scans of ``path`` now, in a background thread, if it is an HDF5 file
    large enough for them to matter: the command line calls this before it imports the
    converter, so that the scans (which release the GIL) overlap those imports. Opening the
    same, unchanged file later waits for them instead of scanning again. Anything unusual
    (not a regular file, unreadable, no ``memmem``) just leaves the scans for later."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return  # (opening a named pipe would wait for a writer)
        f = open(path, "rb")
    except (OSError, ValueError):
        return
    try:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size < _PARALLEL_MIN_BYTES or \
                _memmem() is None or f.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
            f.close()
            return
    except OSError:
        f.close()
        return
    finish_prescans()
    # NumPy (which finds the mapped file's address) is imported here, in the calling thread:
    # the converter imports it first thing anyway, and two threads importing the same
    # package at once is best avoided.
    import numpy  # noqa: F401

    _PRESCANS[os.path.abspath(path)] = (
        _identity(st), _Background("modelport-hdf5-prescan", _scan_and_close, f, path))


def _take_prescan(path: str, st: os.stat_result) -> _Background | None:
    """The early scans of this very file (same device, inode, size and modification time),
    if there were any; early scans of a file that has changed since are waited for and
    dropped."""
    entry = _PRESCANS.pop(os.path.abspath(path), None)
    if entry is None:
        return None
    identity, early = entry
    if identity != _identity(st):
        early.wait()
        return None
    return early


def finish_prescans() -> None:
    """Wait for (and forget) early scans that nothing used: the command ends with no thread
    of its own still running."""
    while _PRESCANS:
        _, (_, early) = _PRESCANS.popitem()
        early.wait()


def _both_scans(region: Any, source: str) -> None:
    """The two scans of a whole file, side by side where the search releases the GIL (the
    C library's ``memmem``): the heap scan in a second thread, the type scan in this one.
    When both refuse, the heap scan's refusal is raised, as when they run one after the
    other."""
    if _memmem() is None or len(region) < _PARALLEL_MIN_BYTES:
        check_global_heaps(region, source)
        check_vlen_types(region, source)
        return
    heaps = _Background("modelport-hdf5-scan", check_global_heaps, region, source)
    try:
        check_vlen_types(region, source)
    except InvalidModelError:
        heaps.result()  # a heap refusal comes first, as when the scans run one after the other
        raise
    finally:
        heaps.wait()  # the region stays mapped until both scans have finished
    heaps.result()


# Below this size the second thread costs more than it saves.
_PARALLEL_MIN_BYTES = 1 << 22


# A variable-length datatype message (class 9, versions 1-4) of the size HDF5 writes (16 bytes:
# length, heap address, index): class-and-version byte, bit field (its first nibble says sequence
# (0) or string (1)), two more bit-field bytes, then the size 16. The scan looks for the fixed
# five-byte tail with ``find`` (memchr speed: 0.06 s over a 100 MB file, where a regular
# expression that starts with a byte class takes 0.65 s) and checks the three bytes before it.
_VLEN_TAIL = b"\x00\x10\x00\x00\x00"
_VLEN_CLASS_VERSION = frozenset((0x19, 0x29, 0x39, 0x49))


def check_vlen_types(data: Any, path: str) -> None:
    """Refuse variable-length datatypes that are neither sequences nor strings: libhdf5
    crashes (SIGSEGV) converting such an attribute (``weight_names``, ``layer_names``) when
    h5py reads it. The pattern is 8 bytes long; weights match it by chance about once in 2^50
    positions."""
    for i in _find_all(data, _VLEN_TAIL, 3, len(data)):
        start = i - 3
        if data[start] in _VLEN_CLASS_VERSION and data[start + 2] <= 0x0F \
                and data[start + 1] & 0x0F > 1:
            raise InvalidModelError(f"has a corrupt HDF5 datatype at byte {start} "
                                    "(a variable-length type that is neither a string nor a "
                                    "sequence)", path=path)


_SCAN_WINDOW = 1 << 24


def _find_all(data: Any, needle: bytes, first: int, stop: int) -> Iterator[int]:
    """Every start of ``needle`` in ``data[first:stop]`` (overlapping ones too), in order.

    ``data`` (bytes or a memory map) must stay open while the iterator is used. A
    memory-mapped file is scanned 16 MB at a time and each window's pages are handed back
    once scanned, so that scanning a 500 MB file does not make it all resident in this
    process (its peak RSS would otherwise count the whole file)."""
    release = getattr(data, "madvise", None) if hasattr(mmap, "MADV_DONTNEED") else None
    memmem = _memmem()
    base = _address(data) if memmem is not None else None
    page = mmap.PAGESIZE
    pos = first
    while pos < stop:
        end = min(stop, pos + _SCAN_WINDOW + len(needle) - 1)
        if base is None:
            i = data.find(needle, pos, end)
            while i >= 0:
                yield i
                i = data.find(needle, i + 1, end)
        else:
            i = pos
            while end - i >= len(needle):
                hit = memmem(base + i, end - i, needle, len(needle))
                if not hit:
                    break
                yield hit - base
                if getattr(data, "closed", False):
                    return  # closed by the caller while we were suspended: stop reading it
                i = hit - base + 1
        done = min(stop, pos + _SCAN_WINDOW) // page * page
        if release is not None and done > pos // page * page:
            release(mmap.MADV_DONTNEED, pos // page * page, done - pos // page * page)
        pos += _SCAN_WINDOW


_MEMMEM: list = []


def _memmem() -> Any:
    """The C library's ``memmem`` through ctypes, or None where there is none (Windows).

    It finds these needles about twice as fast as ``bytes.find``/``mmap.find`` and, being a
    foreign call, releases the GIL, so that the two scans of a file can run side by side."""
    if not _MEMMEM:
        fn = None
        try:
            import ctypes

            fn = ctypes.CDLL(None).memmem
            fn.restype = ctypes.c_void_p
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
        except (ImportError, OSError, AttributeError, TypeError):
            fn = None
        _MEMMEM.append(fn)
    return _MEMMEM[0]


def _address(data: Any) -> int | None:
    """The address of ``data``'s first byte. The NumPy view that finds it is dropped at
    once: holding it would keep a memory map from being closed (BufferError)."""
    import numpy as np

    try:
        view = np.frombuffer(data, np.uint8)
    except (TypeError, ValueError):
        return None
    if not len(view):
        return None
    address = view.ctypes.data
    del view
    return address


_GCOL_V1 = b"GCOL\x01\x00\x00\x00"


def check_global_heaps(data: Any, path: str, first: int = 0, stop: int | None = None) -> None:
    """Walk every global heap collection ("GCOL", where HDF5 keeps variable-length strings
    such as ``model_config``): each object must fit in its collection and the free-space
    object must cover the rest. libhdf5 spins forever on a collection whose free-space
    object has size 0, so such a file is refused here, before h5py touches it."""
    n = len(data) if stop is None else stop
    # The signature and version 1 with its three reserved bytes: an 8-byte needle lets find()
    # skip further at each step than "GCOL" alone (about 40% faster over 100 MB of weights).
    for i in _find_all(data, _GCOL_V1, first, n):
        if i + 16 <= n:
            size = int.from_bytes(data[i + 8:i + 16], "little")
            end = i + size
            if size >= 4096 and end <= n:
                p = i + 16
                while p + 16 <= end:
                    index = int.from_bytes(data[p:p + 2], "little")
                    osize = int.from_bytes(data[p + 8:p + 16], "little")
                    if index == 0:
                        if osize != end - p:
                            raise InvalidModelError(
                                f"has a corrupt HDF5 global heap at byte {i} (free space of "
                                f"{osize} bytes where {end - p} remain)", path=path)
                        break
                    p += 16 + (osize + 7) // 8 * 8
                    if p > end:
                        raise InvalidModelError(
                            f"has a corrupt HDF5 global heap at byte {i} (an object runs past "
                            "the collection)", path=path)
