"""PyTorch format declarations. Nothing here imports torch: detection runs on every command.

Three formats share one loader:

- ``torch-export``: ``.pt2`` archives written by ``torch.export.save`` (a zip whose members sit
  under ``<archive>/models/``, ``<archive>/data/weights/`` and ``<archive>/archive_format``);
- ``torchscript``: archives written by ``torch.jit.save`` (a zip with ``<archive>/code/`` and
  ``<archive>/constants.pkl``);
- ``pytorch``: a Python entry point ``package.module:factory`` returning an ``nn.Module``
  (optionally with a ``state_dict`` file through ``--weights``), or a ``torch.save`` pickle
  (zip with ``<archive>/data.pkl`` and no ``code/``, or the legacy pickle with torch's magic
  number). A pickle holding a whole module is only loaded with ``--trust-code``.
"""

from __future__ import annotations

import os
import re
import zipfile

from modelport.importers.registry import FormatSpec

# torch.save's legacy (non-zip) format: pickle protocol 2, then the magic number
# 0x1950a86a20f9469cfc6c as a 10-byte long.
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
ZIP_MAGIC = b"PK\x03\x04"
ENTRY_POINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def archive_kind(path: str, head: bytes) -> str | None:
    """'export', 'torchscript', 'pickle' or None, from the zip's member names (or legacy magic)."""
    if head.startswith(LEGACY_MAGIC):
        return "pickle"
    if not head.startswith(ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
            RuntimeError):  # what zipfile raises on a corrupt directory: not an archive
        return None
    inner = {"/".join(n.split("/")[1:]) for n in names}
    if "archive_format" in inner or any(n.startswith("models/") for n in inner):
        return "export"
    if "constants.pkl" in inner or any(n.startswith("code/") for n in inner):
        return "torchscript"
    if "data.pkl" in inner:
        return "pickle"
    return None


def is_entry_point(path: str) -> bool:
    return bool(ENTRY_POINT.match(path)) and not os.path.exists(path)


def _detect_export(path: str, head: bytes) -> int:
    return 95 if archive_kind(path, head) == "export" else 0


def _detect_torchscript(path: str, head: bytes) -> int:
    return 95 if archive_kind(path, head) == "torchscript" else 0


def _detect_pytorch(path: str, head: bytes) -> int:
    if is_entry_point(path):
        return 50
    if archive_kind(path, head) == "pickle":
        return 90
    return 0


_COMMON = dict(
    load="modelport.importers.pytorch.load:load",
    load_modules=(("torch", "pytorch"),),
    reference="modelport.convert.runners.pytorch:reference",
    reference_modules=(("torch", "pytorch"),),
    code_check="modelport.importers.pytorch.safety:check",
)

FORMATS = [
    FormatSpec(
        name="pytorch",
        description="PyTorch module (entry point package.module:factory, state_dict or pickle)",
        extensions=(".pt", ".pth"),
        detection="'package.module:factory' entry point; zip with data.pkl and no code/, "
                  "or torch's legacy pickle magic",
        detect=_detect_pytorch,
        reference_name="PyTorch eager",
        options=frozenset({"weights", "trust_code", "input_dtypes", "dynamic"}),
        **_COMMON,
    ),
    FormatSpec(
        name="torchscript",
        description="TorchScript archive (torch.jit.save)",
        extensions=(".pt", ".pth", ".ts", ".torchscript"),
        detection="zip with code/ and constants.pkl",
        detect=_detect_torchscript,
        reference_name="PyTorch TorchScript interpreter",
        # --trust-code: a TorchScript archive is a program; running it (verify) needs consent
        options=frozenset({"trust_code", "input_dtypes", "dynamic"}),
        **_COMMON,
    ),
    FormatSpec(
        name="torch-export",
        description="torch.export archive (torch.export.save)",
        extensions=(".pt2",),
        detection="zip with models/ and archive_format (torch.export layout)",
        detect=_detect_export,
        reference_name="PyTorch (torch.export.load(...).module())",
        # --trust-code: lets torch.export.load unpickle what its safe loader refuses
        options=frozenset({"trust_code", "input_dtypes", "dynamic"}),
        **_COMMON,
    ),
]
