"""Atomic output files: a conversion either leaves complete outputs or nothing at all.

Outputs are written into a temporary folder beside the destination
(``.<name>.modelport-tmp-XXXX/``) and moved into place only when everything succeeded,
verification included when it was asked for (the exporter's ``before_commit``). An existing
output is never replaced unless ``force`` is given; a failed or interrupted conversion removes
what it wrote.

What is never replaced, even with ``force``: anything but a regular file (a directory, a device
such as ``/dev/null``, a FIFO, a socket), and the source model itself or any file it reads
(its weights), whatever name reaches it (symlink, hard link).

A run killed outright (SIGKILL, power loss) cannot clean up. Its temporary folder holds a lock
file that the run keeps locked while it lives (``flock``; the kernel drops the lock when the
process dies); the next run writing into the same folder removes temporary folders that are
older than :data:`STALE_AFTER_S` and whose lock nobody holds, so a concurrent run's folder is
never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence

from modelport.errors import ExportError, OutputExistsError

TEMP_MARK = ".modelport-tmp-"
LOCK_NAME = ".lock"
STALE_AFTER_S = 10 * 60  # a temporary folder this old and unlocked belongs to a dead run
STALE_UNLOCKABLE_S = 24 * 3600  # where locks cannot be tested (no fcntl): only after a day

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def check_writable(paths: Sequence[str], force: bool, *, sources: Iterable[str] = ()) -> None:
    """Refuse outputs that must not be written: see the module docstring."""
    protected = {i for i in map(_file_id, sources) if i is not None}
    for path in paths:
        try:
            st = os.stat(path)  # follows symlinks: what the name reaches
        except (FileNotFoundError, NotADirectoryError):
            continue  # missing (or a dangling symlink, which is replaced, not followed)
        except OSError as exc:
            raise ExportError(f"cannot check the output: {exc.strerror or exc}",
                              path=path) from exc
        if stat.S_ISDIR(st.st_mode):
            raise OutputExistsError("is a directory; give a file name for the output", path=path)
        if not stat.S_ISREG(st.st_mode):
            raise OutputExistsError(
                "is not a regular file (a device, FIFO or socket); modelport writes only "
                "regular files and never replaces anything else, even with --force", path=path)
        if (st.st_dev, st.st_ino) in protected:
            raise OutputExistsError(
                "is the source model or a file it reads (its weights); refusing to overwrite "
                "it, even with --force: give another output name", path=path)
        if not force:
            raise OutputExistsError("already exists; pass --force to overwrite it", path=path)


def _lock_state(lock_path: str) -> bool | None:
    """True when a live process holds ``lock_path``, False when nobody does, None if unknown."""
    if fcntl is None:
        return None
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing releases the lock we may have taken
    return False


def sweep_stale(directory: str, *, now: float | None = None) -> list[str]:
    """Remove temporary outputs of dead runs in ``directory``; returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(".") or TEMP_MARK not in name:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        lock = os.path.join(path, LOCK_NAME)
        if stat.S_ISDIR(st.st_mode):
            try:
                newest = max([st.st_mtime] + [os.lstat(os.path.join(path, n)).st_mtime
                                              for n in os.listdir(path)])
            except OSError:
                continue
            held = _lock_state(lock) if os.path.exists(lock) else False
            limit = STALE_UNLOCKABLE_S if held is None else STALE_AFTER_S
            if held or now - newest < limit:
                continue
            shutil.rmtree(path, ignore_errors=True)
        elif stat.S_ISREG(st.st_mode):
            if now - st.st_mtime < STALE_UNLOCKABLE_S:
                continue
            with contextlib.suppress(OSError):
                os.unlink(path)
        else:
            continue
        removed.append(path)
    return removed


def _hold_lock(tmpdir: str) -> int | None:
    if fcntl is None:
        return None
    fd = os.open(os.path.join(tmpdir, LOCK_NAME), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str], *, force: bool = False,
                   sources: Iterable[str] = ()) -> Iterator[dict[str, str]]:
    """Yield {final path: temporary path}; on success move each into place, in order.

    ``sources``: files the conversion reads, which are never overwritten.
    """
    paths = [os.path.abspath(p) for p in paths]
    sources = list(sources)
    check_writable(paths, force, sources=sources)
    directory = os.path.dirname(paths[0])
    try:
        os.makedirs(directory, exist_ok=True)
        sweep_stale(directory)
        tmpdir = tempfile.mkdtemp(prefix="." + os.path.basename(paths[0]) + TEMP_MARK, dir=directory)
    except OSError as exc:
        raise ExportError(f"cannot write here: {exc.strerror}", path=paths[0]) from exc
    lock = _hold_lock(tmpdir)
    try:
        temps = {p: os.path.join(tmpdir, os.path.basename(p)) for p in paths}
        yield temps
        # Commit only now: everything was written and checked.
        check_writable(paths, force, sources=sources)
        for final, temp in temps.items():
            if force:
                os.replace(temp, final)
            else:
                try:
                    os.link(temp, final)  # fails if `final` appeared meanwhile: never clobber
                except FileExistsError:
                    raise OutputExistsError(
                        "already exists; pass --force to overwrite it", path=final
                    ) from None
                except OSError:
                    os.rename(temp, final)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if lock is not None:
            os.close(lock)
