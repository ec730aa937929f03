"""MXNet symbol JSON (``-symbol.json``), current and legacy.

Current files (MXNet >= 0.9, NNVM): ``{"nodes": [{"op", "name", "attrs"|"attr"|"param",
"inputs": [[node, output, version], ...]}], "arg_nodes", "node_row_ptr", "heads",
"attrs": {"mxnet_version": ...}}``. Legacy files (0.8 era) have ``param`` (the operator's
parameters) and ``attr`` (user attributes such as ``ctx_group``/``lr_mult``) as separate
dicts, ``backward_source_id``, and two-element input references; the upgrade MXNet does on
load merges ``param`` into the attributes, which is what is done here.

Parameter values are strings in MXNet's own syntax (``"(3, 3)"``, ``"True"``, ``"None"``);
:class:`Attrs` parses them.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from typing import Any

from modelport.errors import InvalidModelError

# User/training attributes that never change inference numbers.
_USER_ATTRS = {"ctx_group", "lr_mult", "wd_mult", "force_mirroring", "__lr_mult__",
               "__wd_mult__", "__force_mirroring__", "__ctx_group__", "__init__", "__dtype__",
               "__storage_type__", "__profiler_scope__", "__layout__"}


class BadNodeError(Exception):
    """A node whose parameters or shapes make no sense (a malformed or inconsistent file).

    Translators raise it; the importer reports it against the file and the node (exit 2).
    Any other exception from a translator is a bug of ours (exit 3)."""


class Attrs:
    """An operator's parameters, parsed from MXNet's string syntax on demand."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = {str(k): v for k, v in raw.items()}

    def __contains__(self, key: str) -> bool:
        return key in self.raw and str(self.raw[key]) != "None"

    def str(self, key: str, default: str | None = None) -> str | None:
        v = self.raw.get(key)
        if v is None or str(v) == "None":
            return default
        return str(v)

    def bool(self, key: str, default: bool = False) -> bool:
        v = self.str(key)
        if v is None:
            return default
        low = v.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise BadNodeError(f"parameter {key}={v!r} is not a boolean")

    def int(self, key: str, default: int | None = None) -> int | None:
        v = self.str(key)
        return default if v is None else _number(key, v, lambda t: int(float(t)))

    def required_int(self, key: str) -> int:
        """A parameter the operator cannot do without (``num_filter``...)."""
        v = self.int(key)
        if v is None:
            raise BadNodeError(f"required parameter {key!r} is missing")
        return v

    def float(self, key: str, default: float | None = None) -> float | None:
        v = self.str(key)
        return default if v is None else _number(key, v, float)

    def ints(self, key: str, default: tuple[int, ...] = ()) -> tuple[int, ...]:
        v = self.str(key)
        if v is None:
            return tuple(default)
        value = _literal(key, v)
        if value is None:
            return tuple(default)
        return _number(key, v, lambda _: _int_tuple(value, -1))

    def optional_ints(self, key: str) -> tuple[int | None, ...]:
        """A tuple that may hold ``None`` entries (``slice`` begin/end)."""
        v = self.str(key)
        if v is None:
            return ()
        value = _literal(key, v)
        return _number(key, v, lambda _: _int_tuple(value, None))


def _int_tuple(value: Any, none: int | None) -> tuple[int | None, ...]:
    if isinstance(value, (int, float)):
        return (int(value),)
    return tuple(none if x is None else int(x) for x in value)


def _number(key: str, text: str, parse):
    """``parse(text)``, a malformed value reported as the file's problem."""
    try:
        return parse(text)
    except (ValueError, TypeError, OverflowError):
        raise BadNodeError(f"parameter {key}={text!r} is not a valid value") from None


def _literal(key: str, text: str) -> Any:
    t = text.strip()
    if t in ("", "()", "[]"):
        return ()
    t = t.replace("L", "") if t.endswith("L)") else t  # Python 2 longs: "(3L, 3L)"
    try:
        return ast.literal_eval(t)
    except (ValueError, SyntaxError):
        # "(1,3,None)" and similar already parse; anything else is a plain word list
        parts = [p.strip() for p in t.strip("()[]").split(",") if p.strip()]
        return _number(key, text,
                       lambda _: tuple(None if p == "None" else int(float(p)) for p in parts))


@dataclasses.dataclass
class Node:
    index: int
    op: str
    name: str
    attrs: Attrs
    inputs: list[tuple[int, int]]
    user: dict[str, str]

    @property
    def is_variable(self) -> bool:
        return self.op == "null"


@dataclasses.dataclass
class Symbol:
    nodes: list[Node]
    heads: list[tuple[int, int]]
    arg_nodes: list[int]
    version: int | None
    legacy: bool


def read_symbol(path: str) -> Symbol:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelError(f"is not a readable MXNet symbol JSON: {exc}", path=path) from None
    return parse_symbol(data, path)


def parse_symbol(data: Any, path: str = "<symbol>") -> Symbol:
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise InvalidModelError("is not an MXNet symbol JSON (no 'nodes' list)", path=path)
    raw_nodes = data["nodes"]
    legacy = any("backward_source_id" in n or "param" in n for n in raw_nodes
                 if isinstance(n, dict))
    version = None
    top_attrs = data.get("attrs") or {}
    if isinstance(top_attrs, dict) and "mxnet_version" in top_attrs:
        mv = top_attrs["mxnet_version"]
        try:
            version = int(mv[1] if isinstance(mv, list) else mv)
        except (TypeError, ValueError, IndexError):
            version = None
    nodes = []
    for i, n in enumerate(raw_nodes):
        if not isinstance(n, dict) or "op" not in n or "name" not in n:
            raise InvalidModelError(f"node {i} has no 'op'/'name'", path=path)
        params: dict[str, Any] = {}
        user: dict[str, str] = {}
        # current: "attrs" (>= 1.0) or "attr" (0.9-0.12) hold both; legacy: "param" + "attr"
        for key in ("param", "attr", "attrs"):
            block = n.get(key) or {}
            if not isinstance(block, dict):
                raise InvalidModelError(f"node {n['name']!r}: '{key}' is not an object",
                                        path=path)
            for k, v in block.items():
                if k in _USER_ATTRS or (k.startswith("__") and k.endswith("__")) or \
                        k.endswith(("_lr_mult", "_wd_mult")):
                    user[k] = str(v)
                elif key == "attr" and legacy:
                    user[k] = str(v)  # legacy "attr" holds only user attributes
                else:
                    params[k] = v
        raw_inputs = n.get("inputs", [] if n["op"] == "null" else None)
        if not isinstance(raw_inputs, list):  # MXNet writes "inputs" for every operator
            raise InvalidModelError(f"node {n['name']!r} has no 'inputs' list", path=path)
        inputs = []
        for ref in raw_inputs:
            if not isinstance(ref, (list, tuple)) or len(ref) < 2:
                raise InvalidModelError(f"node {n['name']!r} has a malformed input {ref!r}",
                                        path=path)
            src, out = int(ref[0]), int(ref[1])
            if not 0 <= src < i:
                raise InvalidModelError(
                    f"node {n['name']!r} reads node {src}, which does not come before it",
                    path=path)
            inputs.append((src, out))
        nodes.append(Node(i, str(n["op"]), str(n["name"]), Attrs(params), inputs, user))
    heads = [(int(h[0]), int(h[1])) for h in data.get("heads", [])]
    if not heads:
        raise InvalidModelError("the symbol has no heads (outputs)", path=path)
    for h, _ in heads:
        if not 0 <= h < len(nodes):
            raise InvalidModelError(f"head refers to node {h}, which does not exist", path=path)
    arg_nodes = [int(a) for a in data.get("arg_nodes", [])]
    return Symbol(nodes, heads, arg_nodes, version, legacy)


def looks_like_symbol(head: bytes) -> bool:
    text = head.lstrip()
    if not text.startswith(b"{"):
        return False
    has_nodes = b'"nodes"' in text
    has_marks = any(k in head for k in (b'"arg_nodes"', b'"heads"', b'"node_row_ptr"',
                                        b'"backward_source_id"'))
    has_op = b'"op"' in head
    return has_nodes and (has_marks or has_op)
