"""Protocol Buffers wire format, the few pieces this project reads and writes by hand.

Used where going through generated message classes would cost a copy of the weights
(streaming an ONNX file out, walking a caffemodel in place) or where only the first bytes of
a file are at hand (format detection). Facts of the encoding: a key is
``(field_number << 3) | wire_type``; wire types 0 varint, 1 fixed64, 2 length-delimited,
5 fixed32; varints are little-endian groups of 7 bits, at most 10 bytes.
"""

from __future__ import annotations

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_key(field: int, wire_type: int = LEN) -> bytes:
    return encode_varint((field << 3) | wire_type)


def encode_field(field: int, payload: bytes) -> bytes:
    """A length-delimited field: key, length, payload."""
    return encode_key(field, LEN) + encode_varint(len(payload)) + payload


def decode_varint(buf, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``buf[pos]``; ValueError if malformed.

    ``buf`` may be bytes, a memoryview or an mmap.
    """
    result = shift = 0
    end = len(buf)
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
    raise ValueError("truncated varint")
