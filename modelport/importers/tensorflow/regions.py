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

from modelport.protowire import encode_field

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
    """(field number, wire type, value, start of the field's tag, end of the field): value
    is an int for varints, (start, end) of the payload for length-delimited fields, None for
    fixed-size ones."""
    pos = start
    while pos < end:
        at = pos
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _Malformed
            value = (pos, pos + n)
            pos += n
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        else:  # groups (3, 4) are not in these messages
            raise _Malformed
        if pos > end:
            raise _Malformed
        yield field, wire, value, at, pos


def _tensor_content(buf, start: int, end: int, current):
    for field, wire, value, _, _ in _fields(buf, start, end):
        if field == 4:
            if wire != 2:
                raise _Malformed
            current = value
    return current


def _attr_tensor(buf, start: int, end: int, state):
    """Merge one AttrValue occurrence into ``state`` = (is tensor, content range)."""
    is_tensor, content = state
    for field, wire, value, _, _ in _fields(buf, start, end):
        if field == 8:
            if wire != 2:
                raise _Malformed
            if not is_tensor:
                is_tensor, content = True, None
            content = _tensor_content(buf, *value, content)
        elif field in _ATTR_ONEOF:
            is_tensor, content = False, None
    return is_tensor, content


def _node(buf, start: int, end: int):
    """``(name, content range, stripped NodeDef bytes or None)`` of a Const node with
    tensor content, else None. The stripped bytes are the node without its content, where the
    node has the one simple shape a Const's value takes (one ``value`` entry, whose AttrValue
    is one tensor holding one ``tensor_content``); other nodes are parsed as they are."""
    name = op = None
    value_state = None  # the "value" attr: (is tensor, content range)
    value_entries = []  # (entry field start, entry end, entry payload range)
    for field, wire, value, at, _ in _fields(buf, start, end):
        if wire != 2:
            continue
        if field == 1:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8")
        elif field == 2:
            op = bytes(buf[value[0]:value[1]]).decode("utf-8")
        elif field == 5:
            key, state = None, (False, None)  # a map entry: key and value (fresh)
            for f, w, v, _, _ in _fields(buf, *value):
                if w != 2:
                    continue
                if f == 1:
                    key = bytes(buf[v[0]:v[1]])
                elif f == 2:
                    state = _attr_tensor(buf, *v, state)
            if key == b"value":
                value_state = state
                value_entries.append((at, value[1], value))
    if op != "Const" or name is None or value_state is None or not value_state[0]:
        return None
    content = value_state[1]
    if content is None or content[1] <= content[0]:
        return None
    return name, content, _stripped(buf, start, end, value_entries, content)


def _stripped(buf, start, end, entries, content) -> bytes | None:
    if len(entries) != 1:
        return None
    entry_at, entry_end, (es, ee) = entries[0]
    fields = list(_fields(buf, es, ee))
    values = [v for f, w, v, _, _ in fields if f == 2]
    if len(values) != 1 or any(f not in (1, 2) or w != 2 for f, w, _, _, _ in fields):
        return None
    (av,) = values
    inner = list(_fields(buf, *av))
    if len(inner) != 1 or inner[0][0] != 8 or inner[0][1] != 2:
        return None
    ts, te = inner[0][2]
    pieces = [(f, v, at) for f, w, v, at, _ in _fields(buf, ts, te) if f == 4]
    if len(pieces) != 1 or pieces[0][1] != content:
        return None
    content_at = pieces[0][2]
    tensor = bytes(buf[ts:content_at]) + bytes(buf[content[1]:te])
    entry = encode_field(1, b"value") + encode_field(2, encode_field(8, tensor))
    return bytes(buf[start:entry_at]) + bytes(buf[entry_end:end]) + encode_field(5, entry)


def scan(buf) -> tuple[dict[str, tuple[int, int]], bytes | None]:
    """For a binary GraphDef held in ``buf`` (a memoryview): ``{node name: (start, end)}`` of
    the ``tensor_content`` of its large top-level Const nodes, and the GraphDef's bytes with
    those contents left out (what to parse instead of the whole file). ``({}, None)`` if the
    file is not as expected or a large Const has another shape: the whole file is parsed."""
    regions: dict[str, tuple[int, int]] = {}
    out = bytearray()
    try:
        for field, wire, value, at, field_end in _fields(buf, 0, len(buf)):
            if field == 1 and wire == 2 and value[1] - value[0] >= MIN_NODE_BYTES:
                try:
                    found = _node(buf, *value)
                except (_Malformed, UnicodeDecodeError):
                    return {}, None
                if found is not None:
                    name, content, stripped = found
                    if stripped is None:
                        return {}, None
                    regions[name] = content
                    out += encode_field(1, stripped)
                    continue
            out += buf[at:field_end]
    except _Malformed:
        return {}, None
    if not regions:
        return {}, None
    return regions, bytes(out)


def const_regions(buf) -> dict[str, tuple[int, int]]:
    """The regions of :func:`scan` alone."""
    return scan(buf)[0]
