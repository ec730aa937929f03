"""Atomic output files: a conversion either leaves complete outputs or nothing at all.

Outputs are written into a temporary folder beside the destination and moved into place only
when everything succeeded. An existing output is never replaced unless ``force`` is given,
and a failed or interrupted conversion removes what it wrote.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

from modelport.errors import ExportError, OutputExistsError

TEMP_MARK = ".modelport-tmp-"


def check_writable(paths: Sequence[str], force: bool) -> None:
    for path in paths:
        if os.path.isdir(path):
            raise OutputExistsError("is a directory; give a file name for the output", path=path)
        if os.path.exists(path) and not force:
            raise OutputExistsError("already exists; pass --force to overwrite it", path=path)


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str], *, force: bool = False) -> Iterator[dict[str, str]]:
    """Yield {final path: temporary path}; on success move each into place, in order."""
    paths = [os.path.abspath(p) for p in paths]
    check_writable(paths, force)
    directory = os.path.dirname(paths[0])
    try:
        os.makedirs(directory, exist_ok=True)
        tmpdir = tempfile.mkdtemp(prefix="." + os.path.basename(paths[0]) + TEMP_MARK, dir=directory)
    except OSError as exc:
        raise ExportError(f"cannot write here: {exc.strerror}", path=paths[0]) from exc
    try:
        temps = {p: os.path.join(tmpdir, os.path.basename(p)) for p in paths}
        yield temps
        # Commit only now: everything was written and checked.
        check_writable(paths, force)
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
