"""Reading a model file whole, with the project's one-line errors for the usual failures."""

from __future__ import annotations

from modelport.errors import InvalidModelError


def read_bytes(path: str) -> bytes:
    """The file's bytes; InvalidModelError naming the file when it cannot be read or holds
    nothing but white space."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InvalidModelError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if not data.strip():
        raise InvalidModelError("file is empty", path=path)
    return data
