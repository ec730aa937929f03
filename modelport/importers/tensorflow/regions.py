"""Where the large constants of a binary GraphDef lie in the file.

A frozen graph keeps its weights as ``Const`` nodes whose ``value`` tensor holds the bytes in
``tensor_content``. The protobuf parser copies every byte of the file, and each read of that
field copies it again; for a 100 MB ResNet-50 that is two copies more than needed. This module
walks the protobuf wire format of the (memory-mapped) file, without copying, and finds for each
large top-level ``Const`` node the byte range its ``tensor_content`` occupies; the importer
then reads the weight from the mapping itself, once, when the exporter asks for it.

The walk follows the parser's rules, so that it finds exactly the bytes the parsed message
holds: the last occurrence of a scalar field wins, repeated occurrences of a message field
merge, a map entry replaces an earlier one with the same key, and setting another member of
``AttrValue``'s ``value`` oneof clears the tensor. Anything it does not expect (a malformed
varint, a group, a length past the end) stops the walk of that node: the importer then reads
that constant from the parsed message, with the usual checks.

Field numbers (facts of TensorFlow's format, as in ``modelport_tf.proto``): GraphDef.node = 1;
NodeDef.name = 1, .op = 2, .attr = 5 (map entry: key = 1, value = 2); AttrValue.tensor = 8
(other ``value`` members 1-7, 9, 10); TensorProto.tensor_content = 4.
"""

from __future__ import annotations

# NodeDefs shorter than this are not looked into: their constants are small enough to be
# decoded while translating anyway.
MIN_NODE_BYTES = 1 << 12

_ATTR_ONEOF = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 10})


class _Malformed(Exception):
    pass


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value): an int for varints, (start, end) for
    length-delimited fields, None for fixed-size ones."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _Malformed
            yield field, wire, (pos, pos + n)
            pos += n
        elif wire == 1:
            pos += 8
            yield field, wire, None
        elif wire == 5:
            pos += 4
            yield field, wire, None
        else:  # groups (3, 4) are not in these messages
            raise _Malformed
    if pos != end:
        raise _Malformed


def _tensor_content(buf, start: int, end: int, current):
    for field, wire, value in _fields(buf, start, end):
        if field == 4:
            if wire != 2:
                raise _Malformed
            current = value
    return current


def _attr_tensor(buf, start: int, end: int, state):
    """Merge one AttrValue occurrence into ``state`` = (is tensor, content range)."""
    is_tensor, content = state
    for field, wire, value in _fields(buf, start, end):
        if field == 8:
            if wire != 2:
                raise _Malformed
            if not is_tensor:
                is_tensor, content = True, None
            content = _tensor_content(buf, *value, content)
        elif field in _ATTR_ONEOF:
            is_tensor, content = False, None
    return is_tensor, content


def _node(buf, start: int, end: int) -> tuple[str, tuple[int, int]] | None:
    name = op = None
    value_state = None  # the "value" attr: (is tensor, content range)
    for field, wire, value in _fields(buf, start, end):
        if wire != 2:
            continue
        if field == 1:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8")
        elif field == 2:
            op = bytes(buf[value[0]:value[1]]).decode("utf-8")
        elif field == 5:
            key, state = None, (False, None)  # a map entry: key and value (fresh)
            for f, w, v in _fields(buf, *value):
                if w != 2:
                    continue
                if f == 1:
                    key = bytes(buf[v[0]:v[1]])
                elif f == 2:
                    state = _attr_tensor(buf, *v, state)
            if key == b"value":
                value_state = state
    if op != "Const" or name is None or value_state is None or not value_state[0]:
        return None
    content = value_state[1]
    if content is None or content[1] <= content[0]:
        return None
    return name, content


def const_regions(buf) -> dict[str, tuple[int, int]]:
    """``{node name: (start, end)}`` of the ``tensor_content`` of the large top-level Const
    nodes of a binary GraphDef held in ``buf`` (a memoryview); empty if the file is not as
    expected."""
    regions: dict[str, tuple[int, int]] = {}
    end = len(buf)
    try:
        for field, wire, value in _fields(buf, 0, end):
            if field != 1 or wire != 2 or value[1] - value[0] < MIN_NODE_BYTES:
                continue
            try:
                found = _node(buf, *value)
            except (_Malformed, UnicodeDecodeError):
                continue
            if found is not None:
                regions[found[0]] = found[1]
    except _Malformed:
        return {}
    return regions
