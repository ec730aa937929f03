"""Reading TensorFlow files: binary and text GraphDefs, SavedModels (directory or
``saved_model.pb``) with their variables, into one :class:`Source` the importer walks.

A SavedModel's serving signature names the inputs (graph Placeholders) and outputs (outputs
of a ``StatefulPartitionedCall`` of the signature function). That call's last inputs are the
variables the function captures; the SavedModel's object graph says which object each capture
is (``concrete_functions[f].bound_inputs``), and the checkpoint's own object graph gives that
object's checkpoint key.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from modelport.errors import InvalidModelError, printable
from modelport.importers.files import read_bytes
from modelport.importers.registry import LoadOptions
from modelport.importers.tensorflow._pb import modelport_tf_pb2 as pb
from modelport.importers.tensorflow.bundle import Checkpoint
from modelport.importers.tensorflow.regions import scan
from modelport.importers.tensorflow.tensors import shape_of

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Nodes that are never a model output even when nothing consumes them.
_NOT_OUTPUTS = {
    "NoOp", "Const", "Placeholder", "PlaceholderWithDefault", "Assert", "VarHandleOp",
    "VariableV2", "Variable", "AssignVariableOp", "Assign", "VarIsInitializedOp", "SaveV2",
    "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "IsVariableInitialized",
    "ReadVariableOp", "Print", "PrintV2", "ReadFile",
}


@dataclasses.dataclass
class TensorRef:
    name: str  # the ONNX name: the tensor name without ":0", or the signature key
    tensor: str  # the TensorFlow tensor name ("node" / "node:1")
    dtype: int = 1
    shape: list[int | str] | None = None


@dataclasses.dataclass(frozen=True)
class Resource:
    """A variable handle (VarHandleOp): its checkpoint key and a readable name."""

    key: str
    name: str = ""


@dataclasses.dataclass
class Source:
    path: str
    kind: str  # "GraphDef" or "SavedModel"
    name: str
    nodes: dict[str, Any]
    functions: dict[str, Any]
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    checkpoint: Checkpoint | None = None
    variables_prefix: str | None = None
    var_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    # Large Consts of a memory-mapped GraphDef: node name -> byte range of tensor_content
    # (those nodes were parsed without it: their value is read from the mapping)
    regions: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    mapping: Any = None  # the Mapping those ranges are in

    def resource(self, node) -> Resource:
        nd = node.nd
        shared = nd.attr["shared_name"].s.decode() if "shared_name" in nd.attr else ""
        local = nd.name
        key = self.var_keys.get(local)
        if key is None and self.checkpoint is not None:
            for candidate in (shared, local):
                if candidate and candidate in self.checkpoint:
                    key = candidate
                    break
        if key is None:
            if self.checkpoint is None and self.kind == "SavedModel":
                raise InvalidModelError(f"variable {local!r} cannot be read: "
                                        f"{self.variables_prefix}", path=self.path)
            if self.checkpoint is None:
                raise InvalidModelError(
                    f"node {local!r} is a variable and there are no variables to read it from "
                    "(freeze the graph, or convert the SavedModel directory)", path=self.path)
            raise InvalidModelError(f"variable {local!r} has no value in the checkpoint "
                                    f"{self.variables_prefix}", path=self.path)
        return Resource(key, shared or local)


def looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    printable = sum(1 for c in head if 32 <= c < 127 or c in (9, 10, 13))
    return printable >= 0.95 * len(head)


def _parse(message, data: bytes, path: str, what: str):
    if looks_like_text(data[:4096]):
        try:
            text_format.Parse(data.decode("utf-8", "replace"), message,
                              allow_unknown_field=True)
        except text_format.ParseError as exc:
            raise InvalidModelError(f"is not a valid text {what}: {printable(str(exc))}",
                                    path=path) from None
        return message
    return _parse_binary(message, data, path, what)


def _parse_binary(message, data, path: str, what: str):
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidModelError(f"cannot parse as a {what} (truncated or corrupt?): {exc}",
                                path=path) from None
    return message


MAP_MIN_BYTES = 1 << 24


def _map_binary_graphdef(path: str) -> mmap.mmap | None:
    """A large binary GraphDef file memory-mapped; None for anything else (small files, text,
    SavedModels, files that cannot be opened: those are read whole, with the usual checks).
    The protobuf parser copies what it keeps, so parsing from the mapping spares reading the
    whole file into memory first (a frozen ResNet-50 is 100 MB)."""
    try:
        if os.path.getsize(path) < MAP_MIN_BYTES:
            return None
        with open(path, "rb") as f:
            head = f.read(4096)
            if looks_like_text(head) or is_saved_model(head) or head.isspace():
                return None
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None


def saved_model_file(path: str) -> str | None:
    """The saved_model.pb(txt) of a SavedModel directory, or None."""
    if os.path.isdir(path):
        for name in ("saved_model.pb", "saved_model.pbtxt"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
    return None


def is_saved_model(data: bytes) -> bool:
    from modelport.importers.tensorflow.format import looks_like_saved_model

    head = data[:4096]
    if looks_like_text(head):
        return b"meta_graphs" in head or b"saved_model_schema_version" in head
    return looks_like_saved_model(head)


def read_source(path: str, options: LoadOptions) -> Source:
    path = os.fspath(path)
    if os.path.isdir(path):
        pb_file = saved_model_file(path)
        if pb_file is None:
            raise InvalidModelError("is a directory without saved_model.pb (not a SavedModel)",
                                    path=path)
        return read_saved_model(pb_file, read_bytes(pb_file), options)
    if not os.path.exists(path):
        raise InvalidModelError("no such file", path=path)
    mapped = _map_binary_graphdef(path)
    regions: dict[str, tuple[int, int]] = {}
    if mapped is not None:
        try:
            with memoryview(mapped) as view:
                # the large weights stay in the file; the rest (a few MB) is parsed
                regions, stripped = scan(view)
                graph = _parse_binary(pb.GraphDef(), view if stripped is None else stripped,
                                      path, "TensorFlow GraphDef")
        finally:
            if not regions:
                mapped.close()
    else:
        data = read_bytes(path)
        if is_saved_model(data):
            return read_saved_model(path, data, options)
        graph = _parse(pb.GraphDef(), data, path, "TensorFlow GraphDef")
    if not len(graph.node):
        if regions:
            mapped.close()
        raise InvalidModelError("is a GraphDef without nodes", path=path)
    source = graphdef_source(path, graph, options)
    if regions:
        source.regions, source.mapping = regions, Mapping(mapped)
    return source


class Mapping:
    """The memory-mapped GraphDef file that lazy weights read (see :mod:`.regions`); closed
    by the pipeline after export (``graph_ir.close_sources``)."""

    def __init__(self, mm: mmap.mmap) -> None:
        self.mm = mm

    def close(self) -> None:
        try:
            self.mm.close()
        except BufferError:  # an array still views it: the mapping goes with the last one
            pass


def _tensor_name(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def _override(ref: TensorRef, options: LoadOptions) -> TensorRef:
    for key in (ref.name, ref.tensor, _tensor_name(ref.tensor), ref.tensor + ":0"):
        if key in options.input_shapes:
            ref.shape = list(options.input_shapes[key])
        if key in options.input_dtypes:
            from modelport.importers.tensorflow import dtypes

            wanted = options.input_dtypes[key]
            ref.dtype = next((k for k, v in dtypes.NAMES.items() if v == wanted), ref.dtype)
    return ref


def _dims(shape: list[int] | None) -> list[int | str] | None:
    return None if shape is None else list(shape)


def graphdef_source(path: str, graph, options: LoadOptions) -> Source:
    nodes = {nd.name: nd for nd in graph.node}
    if len(nodes) != len(graph.node):
        raise InvalidModelError("has several nodes of the same name", path=path)
    inputs: list[TensorRef] = []
    named = set()
    for spec in options.input_shapes:
        node = spec.rpartition(":")[0] if spec.rpartition(":")[2].isdigit() else spec
        if node in nodes and nodes[node].op not in ("Placeholder",):
            inputs.append(TensorRef(_tensor_name(spec), spec, nodes[node].attr["T"].type or 1
                                    if "T" in nodes[node].attr else 1))
            named.add(node)
    for nd in graph.node:
        if nd.op == "Placeholder" and nd.name not in named:
            shape = shape_of(nd.attr["shape"].shape) if "shape" in nd.attr else None
            inputs.append(TensorRef(nd.name, nd.name, nd.attr["dtype"].type or 1, _dims(shape)))
    unknown = [s for s in options.input_shapes
               if s not in nodes and _tensor_name(s) not in nodes
               and s.rpartition(":")[0] not in nodes]
    if unknown:
        raise InvalidModelError(f"--input {unknown[0]!r}: the graph has no such tensor",
                                path=path)
    inputs = [_override(t, options) for t in inputs]

    if options.outputs:
        outputs = []
        for name in options.outputs:
            tensor = _tensor_name(name)
            node = tensor.rpartition(":")[0] if tensor.rpartition(":")[2].isdigit() else tensor
            if node not in nodes:
                raise InvalidModelError(f"--output {name!r}: the graph has no such node",
                                        path=path)
            outputs.append(TensorRef(tensor, tensor))
    else:
        consumed = set()
        for nd in graph.node:
            for ref in nd.input:
                consumed.add(ref.lstrip("^").rpartition(":")[0] if ":" in ref
                             else ref.lstrip("^"))
        outputs = [TensorRef(nd.name, nd.name) for nd in graph.node
                   if nd.name not in consumed and nd.op not in _NOT_OUTPUTS]
        if not outputs:
            raise InvalidModelError("the graph has no outputs (every node is consumed); name "
                                    "them with --output", path=path)
    functions = {f.signature.name: f for f in graph.library.function}
    return Source(path, "GraphDef", Path(path).stem, nodes, functions, inputs, outputs)


def read_saved_model(path: str, data: bytes, options: LoadOptions) -> Source:
    sm = _parse(pb.SavedModel(), data, path, "SavedModel")
    if not len(sm.meta_graphs):
        raise InvalidModelError("is a SavedModel without meta graphs", path=path)
    mg = next((m for m in sm.meta_graphs if "serve" in m.meta_info_def.tags), sm.meta_graphs[0])
    sigs = {k: v for k, v in mg.signature_def.items() if not k.startswith("__")}
    wanted = options.extra.get("signature")
    if wanted is None:
        if "serving_default" in sigs:
            wanted = "serving_default"
        elif len(sigs) == 1:
            wanted = next(iter(sigs))
        elif not sigs:
            raise InvalidModelError("the SavedModel has no signatures (save it with "
                                    "signatures=..., or freeze the function)", path=path)
        else:
            raise InvalidModelError(f"the SavedModel has several signatures ({', '.join(sorted(sigs))}); "
                                    "choose one with --signature NAME", path=path)
    if wanted not in sigs:
        raise InvalidModelError(f"the SavedModel has no signature {wanted!r} (it has "
                                f"{', '.join(sorted(sigs)) or 'none'})", path=path)
    sig = sigs[wanted]
    graph = mg.graph_def
    nodes = {nd.name: nd for nd in graph.node}
    inputs = []
    for key in sorted(sig.inputs):
        info = sig.inputs[key]
        shape = shape_of(info.tensor_shape) if info.HasField("tensor_shape") else None
        inputs.append(_override(TensorRef(key, _tensor_name(info.name), info.dtype or 1,
                                          _dims(shape)), options))
    keys = sorted(sig.outputs)
    if options.outputs:
        unknown = [o for o in options.outputs if o not in sig.outputs]
        if unknown:
            raise InvalidModelError(f"--output {unknown[0]!r}: signature {wanted!r} has outputs "
                                    f"{', '.join(keys)}", path=path)
        keys = list(options.outputs)
    outputs = [TensorRef(k, _tensor_name(sig.outputs[k].name)) for k in keys]
    functions = {f.signature.name: f for f in graph.library.function}

    # Variables: <dir>/variables/variables.{index,data-*}
    base = Path(path).parent
    prefix = str(base / "variables" / "variables")
    checkpoint = None
    if os.path.isfile(prefix + ".index"):
        checkpoint = Checkpoint(prefix)
    elif any(nd.op in ("VarHandleOp", "VariableV2") for nd in graph.node):
        checkpoint = None  # reported if a variable is actually read
    source = Source(path, "SavedModel", base.name or Path(path).stem, nodes, functions, inputs,
                    outputs, checkpoint, prefix + ".index")
    if checkpoint is not None:
        source.var_keys = _variable_keys(mg, checkpoint)
    elif any(nd.op in ("VarHandleOp", "VariableV2") for nd in graph.node):
        source.variables_prefix = (f"{prefix}.index is missing: a saved_model.pb keeps its "
                                   "weights in the variables/ folder next to it")
    return source


def _variable_keys(mg, checkpoint: Checkpoint) -> dict[str, str]:
    """Main-graph variable node name -> checkpoint key, through the two object graphs."""
    if OBJECT_GRAPH_KEY not in checkpoint:
        return {}
    try:
        graph = pb.TrackableObjectGraph()
        graph.ParseFromString(checkpoint.read(OBJECT_GRAPH_KEY).item())
    except Exception:
        return {}
    keys_of_node = {}
    for i, obj in enumerate(graph.nodes):
        for attr in obj.attributes:
            if attr.name == "VARIABLE_VALUE":
                keys_of_node[i] = attr.checkpoint_key
    out: dict[str, str] = {}
    functions = mg.object_graph_def.concrete_functions
    for nd in mg.graph_def.node:
        if nd.op not in ("PartitionedCall", "StatefulPartitionedCall"):
            continue
        cf = functions.get(nd.attr["f"].func.name)
        if cf is None or not len(cf.bound_inputs):
            continue
        data_inputs = [r for r in nd.input if not r.startswith("^")]
        captured = data_inputs[-len(cf.bound_inputs):]
        for ref, node_id in zip(captured, cf.bound_inputs):
            if node_id in keys_of_node:
                out.setdefault(_tensor_name(ref), keys_of_node[node_id])
    return out
