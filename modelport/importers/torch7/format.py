"""Torch7 format declaration: a ``torch.save`` file recognised by its first object."""

from __future__ import annotations

import re
import struct

from modelport.importers.registry import FormatSpec

_NAME = re.compile(rb"^[A-Za-z_][\w.]*$")
_KNOWN_PREFIXES = (b"nn.", b"cudnn.", b"cunn.", b"fbcunn.", b"nngraph.", b"torch.", b"dpnn.",
                   b"rnn.")


def _binary_class(head: bytes) -> bytes | None:
    """The class name of a binary file's first object (a Torch object with index 1)."""
    if len(head) < 12:
        return None
    tag, index = struct.unpack_from("<ii", head, 0)
    if tag != 4 or index != 1:
        return None
    pos = 8
    (n,) = struct.unpack_from("<i", head, pos)
    if not 0 < n <= 200 or pos + 4 + n > len(head):
        return None
    text = head[pos + 4:pos + 4 + n]
    pos += 4 + n
    if text.startswith(b"V "):
        if not text[2:].isdigit() or pos + 4 > len(head):
            return None
        (n,) = struct.unpack_from("<i", head, pos)
        if not 0 < n <= 200 or pos + 4 + n > len(head):
            return None
        text = head[pos + 4:pos + 4 + n]
    return text if _NAME.match(text) else None


_ASCII = re.compile(rb"^4\n1\n(?:\d+\nV \d+\n)?\d+\n([A-Za-z_][\w.]*)\n")


def detect(path: str, head: bytes) -> int:
    lower = path.lower()
    suffix = lower.endswith((".t7", ".net", ".th", ".t7b"))
    name = _binary_class(head)
    if name is None:
        m = _ASCII.match(head)
        name = m.group(1) if m else None
    if name is not None:
        if name.startswith(_KNOWN_PREFIXES):
            return 95 if suffix else 85
        return 60 if suffix else 0
    # A table at the root (a checkpoint {model=..., opt=...}): weaker evidence.
    if len(head) >= 12 and struct.unpack_from("<ii", head, 0) == (3, 1) and \
            any(p in head for p in _KNOWN_PREFIXES[:5]):
        return 70 if suffix else 40
    if head.startswith(b"3\n1\n") and any(p in head for p in _KNOWN_PREFIXES[:5]):
        return 70 if suffix else 40
    return 0


FORMAT = FormatSpec(
    name="torch7",
    description="Torch7 model (torch.save .t7)",
    extensions=(".t7", ".net", ".th"),
    detection="torch.save object stream: type tag 4, index 1, 'V 1', an nn./nngraph. class "
    "(binary with 8- or 4-byte longs, or ASCII)",
    detect=detect,
    load="modelport.importers.torch7.load:load",
    reference="modelport.convert.runners.torch7_opencv:reference",
    reference_name="OpenCV DNN 4.x (readNetFromTorch)",
    reference_modules=(("cv2", "torch7"),),
    options=frozenset(),  # a .t7 file holds its weights; its layout is NCHW
)
