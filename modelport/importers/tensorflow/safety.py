"""The TensorFlow code check: what in a graph would act outside the tensors when TensorFlow
runs it for verification.

modelport's importer reads a GraphDef or SavedModel as data and runs nothing. Verification
runs it in TensorFlow, and a TensorFlow graph is a program: ops can write and read files
(``WriteFile``, ``ReadFile``, ``MatchingFiles``, ``Save``), call Python (``PyFunc``,
``EagerPyFunc``), map arbitrary files into memory (``ImmutableConst``), dump tensors
(``Debug*``), write summaries or print to a file (``PrintV2`` with a ``file://`` stream). A
hostile file only has to hang one of them on a control dependency of an output.

The rule (:func:`check`, the ``code_check`` of the TensorFlow FormatSpec; with ``run=True``
only, and lifted by ``--trust-code``) is an allow-list on what TensorFlow will run, plus a
deny-list on the rest of the file:

1. **Run set.** Every main-graph node reachable, through data *and* control inputs, from the
   outputs being verified (the signature's, or the GraphDef's as the importer picks them) and
   from a SavedModel's init signature (``__saved_model_init_op``); every function named by any
   function attribute of those nodes (calls, ``While``/``If`` bodies...), transitively, with
   *all* the nodes of each such function (TensorFlow keeps a function's stateful nodes even
   when its outputs do not need them). Each of these ops must be one the importer translates,
   a structural op (constants, placeholders, identities, calls, variables, asserts) or
   control flow; anything else is refused, named.
2. **Restore set.** What the SavedModel's ``saver_def.restore_op_name`` reaches (TensorFlow runs
   it to load a TF 1 SavedModel's variables): the run-set rule plus the checkpoint-reading ops
   (``RestoreV2``, ``AssignVariableOp``, ``StringJoin``, ``ShardedFilename``...).
3. **Everything else** (a SavedModel's save function, other signatures, unused functions of the
   library) is never run by verification, but a side-effect op (the deny-list) is refused
   there too, except the saver's own ``SaveV2`` / ``MergeV2Checkpoints`` /
   ``ShardedFilename`` / ``StringJoin``: a TF 1 SavedModel's init ops live in a collection this
   reader does not parse, so the deny-list is the guard for parts whose role is unknown.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from modelport.errors import UnsafeModelError

# Ops that do nothing outside the tensors, whether or not the importer translates them.
STRUCTURAL = frozenset({
    "Const", "Placeholder", "PlaceholderWithDefault", "NoOp", "Identity", "IdentityN",
    "StopGradient", "PreventGradient", "PartitionedCall", "StatefulPartitionedCall",
    "VarHandleOp", "VariableV2", "Variable", "ReadVariableOp", "VarIsInitializedOp",
    "IsVariableInitialized", "Assert", "CheckNumerics", "Print", "PrintV2", "EnsureShape",
    "_Arg", "_Retval", "StringFormat",
})
# What a saver's restore path runs besides structural ops: reads of the model's own checkpoint.
RESTORE = frozenset({
    "RestoreV2", "AssignVariableOp", "Assign", "StringJoin", "ShardedFilename", "Pack",
    "AssignVariableXlaConcatND", "MergeV2Checkpoints",
})
# The saver's write path: legitimate in a SavedModel, outside what verification runs.
SAVER = frozenset({"SaveV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin",
                   "RestoreV2"})
# Side effects outside the tensors: files, Python, summaries, debugging taps, I/O pipelines.
DENY = frozenset({
    "WriteFile", "ReadFile", "MatchingFiles", "DeleteFile", "PyFunc", "PyFuncStateless",
    "EagerPyFunc", "ImmutableConst", "Save", "SaveSlices", "SaveV2", "Restore", "RestoreSlice",
    "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "Copy", "CopyHost",
})
DENY_PATTERN = re.compile(r"File|Summary|Debug|PyFunc|Reader|Dataset|Iterator|Checkpoint|"
                          r"^Write|^Save|^Restore|Rpc|RPC|Socket|Exec|Collective|^_?Send|"
                          r"^_?Recv|Queue|Stage|Barrier|^_")


def _names(attrs) -> list[str]:
    """Function names in a node's attributes, nested NameAttrLists included."""
    out: list[str] = []
    for value in attrs.values():
        kind = value.WhichOneof("value")
        funcs = [value.func] if kind == "func" else list(value.list.func) if kind == "list" else []
        for fn in funcs:
            if fn.name:
                out.append(fn.name)
            out += _names(fn.attr)
    return out


def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def side_effect(nd) -> bool:
    op = nd.op
    if op == "PrintV2":
        stream = nd.attr["output_stream"].s if "output_stream" in nd.attr else b""
        return stream.startswith(b"file")
    return op in DENY or bool(DENY_PATTERN.search(op)) and op not in STRUCTURAL


class _Scan:
    def __init__(self, nodes: dict, functions: dict) -> None:
        self.nodes = nodes
        self.functions = functions
        self.found: dict[str, list[str]] = {}

    def report(self, nd, where: str) -> None:
        self.found.setdefault(nd.op, []).append(where + nd.name)

    def reach(self, roots: list[str]) -> tuple[set[str], set[str]]:
        """Main-graph nodes reachable from ``roots`` and the functions they call (transitively,
        with every node of each function)."""
        seen: set[str] = set()
        stack = [r for r in roots if r in self.nodes]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack += [n for n in map(_node_name, self.nodes[name].input)
                      if n in self.nodes and n not in seen]
        fns: set[str] = set()
        pending = [f for n in seen for f in _names(self.nodes[n].attr)]
        while pending:
            fname = pending.pop()
            if fname in fns or fname not in self.functions:
                continue
            fns.add(fname)
            for nd in self.functions[fname].node_def:
                pending += _names(nd.attr)
        return seen, fns

    def allow(self, nodes: set[str], fns: set[str], extra: frozenset[str], known) -> None:
        def ok(nd) -> bool:
            return (not side_effect(nd) or nd.op in extra) and (
                nd.op in known or nd.op in STRUCTURAL or nd.op in extra)

        for name in nodes:
            if not ok(self.nodes[name]):
                self.report(self.nodes[name], "")
        for fname in fns:
            for nd in self.functions[fname].node_def:
                if not ok(nd):
                    self.report(nd, f"{fname}/")

    def deny(self, skip_nodes: set[str], skip_fns: set[str]) -> None:
        for name, nd in self.nodes.items():
            if name not in skip_nodes and side_effect(nd) and nd.op not in SAVER:
                self.report(nd, "")
        for fname, fn in self.functions.items():
            if fname in skip_fns:
                continue
            for nd in fn.node_def:
                if side_effect(nd) and nd.op not in SAVER:
                    self.report(nd, f"{fname}/")


def _saved_model_roots(path: str) -> tuple[list[str], list[str]]:
    """(init-op roots, restore roots) of a SavedModel's serving meta graph."""
    from modelport.importers.files import read_bytes
    from modelport.importers.tensorflow._pb import modelport_tf_pb2 as pb
    from modelport.importers.tensorflow.source import _parse, saved_model_file

    pb_file = saved_model_file(path) or path
    sm = _parse(pb.SavedModel(), read_bytes(pb_file), pb_file, "SavedModel")
    mg = next((m for m in sm.meta_graphs if "serve" in m.meta_info_def.tags), sm.meta_graphs[0])
    init = [_node_name(info.name) for key, sig in mg.signature_def.items()
            if key.startswith("__") for info in sig.outputs.values()]
    restore = [_node_name(n) for n in (mg.saver_def.restore_op_name,
                                       mg.saver_def.filename_tensor_name) if n]
    return init, restore


def findings(path: str, options: Any) -> dict[str, list[str]]:
    """Op name -> the nodes holding it that TensorFlow must not run without --trust-code."""
    from modelport.importers.tensorflow.load import normalize_names
    from modelport.importers.tensorflow.source import read_source
    from modelport.importers.tensorflow.table import CONTROL_FLOW, tf_op

    opts = normalize_names(copy.deepcopy(options))
    source = read_source(path, opts)
    scan = _Scan(source.nodes, source.functions)
    known = set(tf_op.names()) | CONTROL_FLOW
    roots = [_node_name(t.tensor) for t in source.outputs]
    init: list[str] = []
    restore: list[str] = []
    if source.kind == "SavedModel":
        init, restore = _saved_model_roots(path)
    run_nodes, run_fns = scan.reach(roots + init + [_node_name(t.tensor)
                                                    for t in source.inputs])
    scan.allow(run_nodes, run_fns, frozenset(), known)
    restore_nodes, restore_fns = scan.reach(restore)
    restore_nodes -= run_nodes
    restore_fns -= run_fns
    scan.allow(restore_nodes, restore_fns, RESTORE, known)
    scan.deny(run_nodes | restore_nodes, run_fns | restore_fns)
    return scan.found


def check(path: str, options: Any, *, run: bool) -> None:
    if not run or getattr(options, "trust_code", False):
        return
    found = findings(os.fspath(path), options)
    if not found:
        return
    parts = []
    for op in sorted(found):
        where = found[op]
        shown = ", ".join(repr(w) for w in where[:2]) + (
            f" and {len(where) - 2} more" if len(where) > 2 else "")
        parts.append(f"{op} ({shown})")
    raise UnsafeModelError(
        f"holds ops that TensorFlow would run with effects beyond computing tensors, or that "
        f"modelport cannot vouch for: {'; '.join(parts)}; verification runs the graph in "
        "TensorFlow, so pass --trust-code only if you trust the file's origin", path=path)
