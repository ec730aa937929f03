"""Export a PyTorch source with ``torch.export`` + the dynamo-based ``torch.onnx`` exporter and
hand the resulting onnx_ir model to the pipeline.

The exporter runs with ``optimize=False``: constant folding, fusions and clean-up are done by
modelport's own pass manager (``-O`` levels), like for every other format. The IR comes out at
the exporter's native opset (18); ``--opset 17`` converts it after optimisation.

TorchScript archives take the first route that works (see docs/formats/pytorch.md and
:func:`script_attempts`):

- ``wrapper``: an ``nn.Module`` that calls the loaded ScriptModule, traced by ``torch.export``
  (non-strict). Converts every test model, at the fixed ``--input`` shapes: the interpreter
  makes every size concrete.
- ``ts2ep``: ``torch._export.converter.TS2EPConverter`` (TorchScript graph → ExportedProgram),
  fixed shapes.
- ``legacy``: the deprecated TorchScript-based ``torch.onnx.export(..., dynamo=False)``; the only
  route that keeps dynamic dims, so it comes first when ``--dynamic`` is given, and last
  otherwise. Fails on transformers and attention.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator
from typing import Any

import onnx_ir as ir
import torch

from modelport.errors import InputSpecError, InvalidModelError, UnsupportedOpsError, first_line
from modelport.graph_ir.metadata import FIXED_INPUT_SHAPES_META, NOTES_META, SOURCE_KEY
from modelport.graph_ir.metadata import PYTORCH_ROUTE_KEY as ROUTE_KEY
from modelport.importers.pytorch.sources import (
    TorchSource,
    open_source,
    output_names,
)
from modelport.importers.registry import LoadOptions

ONNX_OPSET = 18  # the exporter's native opset; the exporter's own down-conversion is fragile
NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
ROOT = "(root)"
# Exporter metadata not kept in the output: stack traces and FX node text (local file paths and
# source code, different on every machine) and the namespace string (name_scopes and
# class_hierarchy, which are kept, say the same).
DROPPED_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node", "namespace")

aten = torch.ops.aten


def load(path: str, options: LoadOptions) -> ir.Model:
    source = open_source(path, options)
    if source.kind == "torchscript":
        model, route = _export_torchscript(source, options)
    else:
        program = source.module if source.kind == "export" else _torch_export(source)
        model = _to_onnx(program, source)
        route = "torch.export" if source.kind == "module" else "torch.export.load"
    _name_inputs_outputs(model, source)
    _drop_default_attributes(model)
    _name_packed_weights(model)
    _set_sources(model)
    model.metadata_props[ROUTE_KEY] = route
    return model


# -- torch.export and torch.onnx ---------------------------------------------------------------
def _dynamic_shapes(source: TorchSource) -> dict[str, Any] | None:
    if not source.symbolic:
        return None
    dims: dict[str, Any] = {}
    spec = {}
    for name in source.input_names:
        spec[name] = {i: dims.setdefault(d, torch.export.Dim(_identifier(d)))
                      for i, d in source.symbolic.get(name, {}).items()} or None
    return spec


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident[:1].isalpha() or ident[:1] == "_" else f"d_{ident}"


def _torch_export(source: TorchSource) -> torch.export.ExportedProgram:
    module = source.module
    kwargs = dict(zip(source.input_names, source.example_inputs))
    try:
        with _quiet():
            return torch.export.export(module, (), kwargs=kwargs,
                                       dynamic_shapes=_dynamic_shapes(source), strict=False)
    except Exception as exc:
        raise _export_error(exc, source, "torch.export") from exc


def _to_onnx(program: torch.export.ExportedProgram, source: TorchSource) -> ir.Model:
    try:
        with _quiet():
            onnx_program = torch.onnx.export(program, (), dynamo=True, optimize=False,
                                             opset_version=ONNX_OPSET, verbose=False)
    except Exception as exc:
        raise _export_error(exc, source, "torch.onnx") from exc
    model = onnx_program.model
    _rename_dims(model, program, source)
    return model


def _rename_dims(model: ir.Model, program: torch.export.ExportedProgram,
                 source: TorchSource) -> None:
    """The exporter names symbolic dims after torch's symbols (``s77``): use the user's names."""
    from torch.export.graph_signature import InputKind

    user = [s.arg.name for s in program.graph_signature.input_specs
            if s.kind == InputKind.USER_INPUT]
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    mapping: dict[str, str] = {}
    for arg, name in zip(user, source.input_names):
        fake = placeholders[arg].meta.get("val")
        if not isinstance(fake, torch.Tensor):
            continue
        for i, d in enumerate(fake.shape):
            wanted = source.symbolic.get(name, {}).get(i)
            if isinstance(d, torch.SymInt) and wanted:
                mapping.setdefault(str(d.node.expr), wanted)
    if not mapping:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b")

    def rename(value: ir.Value | None) -> None:
        if value is None or value.shape is None:
            return
        dims = list(value.shape.dims)
        new = [ir.SymbolicDim(pattern.sub(lambda m: mapping[m.group(1)], d.value))
               if isinstance(d, ir.SymbolicDim) and d.value else d for d in dims]
        if new != dims:
            value.shape = ir.Shape(new)

    for value in [*model.graph.inputs, *model.graph.outputs]:
        rename(value)
    for node in model.graph.all_nodes():
        for value in node.outputs:
            rename(value)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints progress and graphs and logs warnings (e.g. about torchvision):
    none of it reaches the user, whose errors come as one line (the chain with --debug)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export",
                                               "torch._dynamo", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        sink = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_OP_PATTERNS = (
    re.compile(r"OpOverload\(op='([\w.]+)'(?:, overload='(\w+)')?"),
    re.compile(r"\b(aten::\w+|aten\.\w+(?:\.\w+)?|prim::\w+)"),
)


def _export_error(exc: Exception, source: TorchSource, stage: str) -> Exception:
    """One line naming the operator PyTorch's exporter stopped at; the chain keeps the rest."""
    text = _exception_text(exc)
    op = None
    for pattern in _OP_PATTERNS:
        match = pattern.search(text)
        if match:
            op = match.group(1)
            break
    if "No ONNX function found" in text or "Unsupported FX nodes" in text:
        node = re.search(r"Error when translating node %(\w+)", text)
        return UnsupportedOpsError(
            {op or "unknown operator": [node.group(1)] if node else []}, path=source.path,
            kind="PyTorch operator",
            hint="PyTorch's ONNX exporter has no translation for it; rerun with --debug for "
                 "the full error")
    if "Constraints violated" in text:
        dims = ", ".join(sorted({d for v in source.symbolic.values() for d in v.values()}))
        return InputSpecError(
            f"{source.path}: the model fixes the size of the dynamic dim(s) {dims} "
            f"({_torch_message(text)}); drop --dynamic or make the code shape-generic")
    where = f" at {op}" if op else ""
    return InvalidModelError(
        f"{stage} failed{where}: {type(exc).__name__}: {_torch_message(text)}; "
        "rerun with --debug for the full error", path=source.path)


def _exception_text(exc: BaseException) -> str:
    parts = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def _torch_message(text: str) -> str:
    return first_line(text, "no message", skip=("Traceback", "[torch.onnx]"))[:300]


# -- TorchScript -------------------------------------------------------------------------------
class _CallScript(torch.nn.Module):
    """Calls a loaded ScriptModule so that torch.export traces through its interpreter.

    The ScriptModule is deliberately not registered as a submodule: its parameters are plain
    tensors, which torch.export would reject as state; unregistered, they are lifted as
    constants and renamed back to their parameter paths afterwards."""

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        super().__init__()
        object.__setattr__(self, "script", script)

    def forward(self, *args):
        return self.script(*args)


def _decompose_convolution(input, weight, bias, stride, padding, dilation, transposed,
                           output_padding, groups, *_flags):
    # torch.jit.trace records aten::_convolution (with cuDNN flags) which the ONNX exporter
    # lacks; the flags do not change the result.
    return aten.convolution.default(input, weight, bias, stride, padding, dilation, transposed,
                                    output_padding, groups)


_SCRIPT_DECOMPOSITIONS = {aten._convolution.default: _decompose_convolution}


ROUTES = ("wrapper", "ts2ep", "legacy")
ROUTE_OPTION = "torchscript_route"  # LoadOptions.extra key: try only this route


def script_attempts(dynamic: bool, only: str | None = None) -> list[tuple[str, bool]]:
    """(route, keeps dynamic dims) in the order they are tried.

    With dynamic dims asked for, the legacy exporter comes first: it is the only route that
    keeps them (tracing the wrapper through the interpreter specialises every size). Otherwise
    the wrapper, which converts every test model, comes first; the legacy exporter is last.
    """
    order = ([("legacy", True), ("wrapper", False), ("ts2ep", False)] if dynamic else
             [("wrapper", False), ("ts2ep", False), ("legacy", False)])
    if only:
        order = [a for a in order if a[0] == only]
        if dynamic and only != "legacy":
            order = [(only, False)]
    return order


def _export_torchscript(source: TorchSource, options: LoadOptions) -> tuple[ir.Model, str]:
    only = options.extra.get(ROUTE_OPTION)
    if only is not None and only not in ROUTES:
        raise InputSpecError(f"unknown TorchScript route {only!r}; known: {', '.join(ROUTES)}")
    failures: list[str] = []
    for route, dynamic in script_attempts(bool(source.symbolic), only):
        try:
            model = _SCRIPT_ROUTES[route](source, dynamic)
        except Exception as exc:
            failures.append(f"{route}{' (dynamic)' if dynamic else ''}: {_short(exc)}")
            continue
        cost = "keeps the dynamic dims" if dynamic else "fixed shapes " + _shape_text(source)
        # Reported through the pipeline (ConvertResult.notes), not printed here; the sizes a
        # fixed route traced go to the pipeline too, which applies them to its own copy of the
        # options (the caller's stay as given).
        note = _route_note(route, cost, failures)
        model.meta[NOTES_META] = [note]
        if not dynamic:
            model.meta[FIXED_INPUT_SHAPES_META] = _fixed_shapes(source)
        return model, note
    raise InvalidModelError(
        "no route converts this TorchScript module (" + "; ".join(failures) + "); rerun with "
        "--debug, or export the original nn.Module with torch.export.save", path=source.path)


def _fixed_shapes(source: TorchSource) -> dict[str, list[int]]:
    """A fixed-shape route traced the user's own sizes: no dim stays symbolic."""
    return {name: list(tensor.shape)
            for name, tensor in zip(source.input_names, source.fixed_inputs)}


def _wrapper(source: TorchSource, dynamic: bool) -> ir.Model:
    # ``dynamic`` is not offered: the interpreter specialises every size it computes, so
    # torch.export reports the dims as constant ("Constraints violated") on every model tried.
    with _quiet():
        program = torch.export.export(_CallScript(source.module), source.fixed_inputs,
                                      strict=False)
        program = program.run_decompositions(_SCRIPT_DECOMPOSITIONS)
    model = _to_onnx(program, source)
    _rename_lifted(model, program, source.module)
    return model


def _ts2ep(source: TorchSource, dynamic: bool) -> ir.Model:
    from torch._export.converter import TS2EPConverter

    with _quiet():
        program = TS2EPConverter(source.module, source.fixed_inputs).convert()
        program = program.run_decompositions(_SCRIPT_DECOMPOSITIONS)
    model = _to_onnx(program, source)
    _rename_lifted(model, program, source.module)
    return model


def _legacy(source: TorchSource, dynamic: bool) -> ir.Model:
    buffer = io.BytesIO()
    axes = {name: dict(dims) for name, dims in source.symbolic.items()} if dynamic else None
    args = source.example_inputs if dynamic else source.fixed_inputs
    with _quiet():
        torch.onnx.export(source.module, args, buffer, dynamo=False, do_constant_folding=False,
                          input_names=source.input_names, opset_version=ONNX_OPSET,
                          dynamic_axes=axes)
    import onnx

    model = ir.serde.deserialize_model(onnx.load_from_string(buffer.getvalue()))
    _lift_parameter_constants(model, source.module)
    return model


def _lift_parameter_constants(model: ir.Model, script: Any) -> None:
    """The legacy exporter embeds a scripted module's parameters as Constant nodes: make those
    whose values equal a parameter initializers named after it."""
    import numpy as np

    by_shape: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for name, tensor in list(script.named_parameters()) + list(script.named_buffers()):
        array = tensor.detach().cpu().numpy()
        by_shape.setdefault((array.shape, array.dtype.str), []).append((name, array))
    graph = model.graph
    for node in list(graph):
        if node.op_type != "Constant" or "value" not in node.attributes:
            continue
        tensor = node.attributes["value"].as_tensor()
        if not tensor.dtype.is_floating_point() or tensor.size < 2:
            continue  # shape vectors and scalars would match by accident
        array = tensor.numpy()
        matches = [name for name, candidate in by_shape.get((array.shape, array.dtype.str), [])
                   if np.array_equal(candidate, array)]
        if not matches or matches[0] in graph.initializers:
            continue
        value = ir.Value(name=matches[0], type=ir.TensorType(tensor.dtype),
                         shape=ir.Shape(array.shape), const_value=ir.Tensor(array,
                                                                            name=matches[0]))
        graph.register_initializer(value)
        node.outputs[0].replace_all_uses_with(value)
        graph.remove(node, safe=True)


_SCRIPT_ROUTES = {"wrapper": _wrapper, "ts2ep": _ts2ep, "legacy": _legacy}


_ROUTE_NAMES = {"wrapper": "wrapper module + torch.export", "ts2ep": "TS2EPConverter",
                "legacy": "legacy TorchScript exporter (deprecated)"}


def _route_note(route: str, cost: str, failures: list[str]) -> str:
    line = f"TorchScript route: {_ROUTE_NAMES[route]}; {cost}"
    if failures:
        line += " [earlier routes failed: " + "; ".join(failures) + "]"
    return line


def _shape_text(source: TorchSource) -> str:
    return ", ".join(f"{n} {'x'.join(map(str, t.shape))}"
                     for n, t in zip(source.input_names, source.fixed_inputs))


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_torch_message(_exception_text(exc))[:160]}"


def _rename_lifted(model: ir.Model, program: torch.export.ExportedProgram, script: Any) -> None:
    """Name weights the tracer lifted as constants after the ScriptModule's parameter paths."""
    by_storage: dict[tuple, str] = {}
    for name, tensor in list(script.named_parameters()) + list(script.named_buffers()):
        by_storage.setdefault(_tensor_key(tensor), name)
    renames = {}
    for name, tensor in program.constants.items():
        if isinstance(tensor, torch.Tensor):
            target = by_storage.get(_tensor_key(tensor))
            if target:
                renames[name] = target
    for name, tensor in program.state_dict.items():
        target = by_storage.get(_tensor_key(tensor))
        if target and target != name:
            renames[name] = target
    taken = set(model.graph.initializers)
    for old, new in renames.items():
        value = model.graph.initializers.get(old)
        if value is None or new in taken:
            continue
        taken.discard(old)
        value.name = new
        if value.const_value is not None:
            value.const_value.name = new
        taken.add(new)


def _tensor_key(tensor: torch.Tensor) -> tuple:
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
            tuple(tensor.stride()), tensor.dtype)


def _name_packed_weights(model: ir.Model) -> None:
    """Name values computed from parameters alone after those parameters.

    The exporter re-packs some parameters with nodes that constant folding later turns into
    new weights named after the computing value (``val_42``): an LSTM's gates reordered and
    its two biases concatenated, a Linear weight transposed for MatMul. Naming the value
    ``lstm.weight_ih_l0.Concat`` or ``out.weight.Transpose`` keeps the parameter path visible
    in the converted file. Values that also depend on a graph input are left alone.
    """
    graph = model.graph
    taken = {v.name for v in graph.inputs} | set(graph.initializers)
    taken |= {v.name for n in graph.all_nodes() for v in n.outputs if v is not None}
    outputs = set(map(id, graph.outputs))
    params: dict[int, frozenset[str] | None] = {}  # value id -> parameters; None: not constant

    def sources(value: ir.Value | None) -> frozenset[str] | None:
        if value is None:
            return frozenset()
        if id(value) in params:
            return params[id(value)]
        if value.name in graph.initializers:
            tensor = value.const_value
            floating = tensor is not None and tensor.dtype.is_floating_point()
            return frozenset([value.name]) if floating else frozenset()
        return None  # a graph input, or a value from a subgraph's scope

    for node in graph:
        found: set[str] = set()
        constant = True
        if node.op_type in ("Shape", "Size"):  # sizes, not data: count as constants here
            for value in node.outputs:
                params[id(value)] = frozenset()
            continue
        for value in node.inputs:
            got = sources(value)
            if got is None:
                constant = False
                break
            found |= got
        for value in node.outputs:
            if value is not None:
                params[id(value)] = frozenset(found) if constant else None
        if not constant or not found or node.op_type == "Constant":
            continue
        base = f"{_joined(sorted(found))}.{node.op_type}"
        for i, value in enumerate(node.outputs):
            if value is None or id(value) in outputs:
                continue
            name = base if i == 0 else f"{base}:{i}"
            if name in taken:
                continue
            taken.discard(value.name)
            value.name = name
            taken.add(name)


def _joined(names: list[str]) -> str:
    """``gru.bias_ih_l0`` and ``gru.bias_hh_l0`` -> ``gru.bias_hh_l0+bias_ih_l0``."""
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(names)
    prefix = prefix[:prefix.rfind(".") + 1]
    return prefix + "+".join(n[len(prefix):] for n in names)


def _drop_default_attributes(model: ir.Model) -> None:
    """The exporter writes ``noop_with_empty_axes=0`` (the default) on Reduce* nodes; ONNX's
    version converter keeps it when going down to opset 17, where the attribute does not exist
    and the checker rejects it. Dropping the default-valued attribute changes nothing."""
    for node in model.graph.all_nodes():
        if node.domain in ("", "ai.onnx") and node.op_type.startswith("Reduce"):
            attr = node.attributes.get("noop_with_empty_axes")
            if attr is not None and attr.value == 0:
                del node.attributes["noop_with_empty_axes"]


# -- naming ------------------------------------------------------------------------------------
def _name_inputs_outputs(model: ir.Model, source: TorchSource) -> None:
    """ONNX inputs take forward()'s argument names; outputs are output, output_0, output_1...

    The reference runner uses the same names, so verification can pair them."""
    graph = model.graph
    inputs = [v for v in graph.inputs if v.name not in graph.initializers]
    if len(inputs) != len(source.input_names):
        raise InvalidModelError(
            f"the exported graph has {len(inputs)} inputs, forward() takes "
            f"{len(source.input_names)} ({', '.join(source.input_names)})", path=source.path)
    wanted = list(zip(inputs, source.input_names))
    outs = output_names(len(graph.outputs))
    wanted += [(v, n) for v, n in zip(graph.outputs, outs)]
    names = {v.name for n in graph for v in n.outputs if v is not None}
    names |= {v.name for v in graph.inputs} | set(graph.initializers)
    for value, name in wanted:
        if value.name == name:
            continue
        if name in names:  # an unrelated value holds the name: move it aside
            clash = _find_value(graph, name)
            if clash is not None and clash is not value:
                clash.name = f"{name}__{len(names)}"
                names.add(clash.name)
        value.name = name
        names.add(name)


def _find_value(graph: ir.Graph, name: str) -> ir.Value | None:
    for v in graph.inputs:
        if v.name == name:
            return v
    if name in graph.initializers:
        return graph.initializers[name]
    for node in graph:
        for v in node.outputs:
            if v is not None and v.name == name:
                return v
    return None


# -- source layers -----------------------------------------------------------------------------
def _scopes(node: ir.Node) -> list[str]:
    text = node.metadata_props.get(NAME_SCOPES_KEY)
    if not text:
        return _legacy_scopes(node.name or "")
    try:
        scopes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    if not isinstance(scopes, list) or not scopes or scopes[0] != "":
        return []  # nodes the exporter adds outside any module (runtime asserts)
    return [str(s) for s in scopes]


def _legacy_scopes(name: str) -> list[str]:
    """The legacy exporter names nodes ``/block1/conv1/Conv``: the same scopes, in a name."""
    parts = [p for p in name.split("/") if p]
    if not name.startswith("/") or not parts:
        return []
    modules = [".".join(parts[:i]) for i in range(1, len(parts))]
    return ["", *modules, parts[-1]]


def _set_sources(model: ir.Model) -> None:
    """Record each node's module path in ``modelport.source``.

    A node whose output is what module M returns (the single value leaving M's scope) is
    labelled ``M`` itself (the innermost such module), so that the last node labelled ``M`` in
    the graph computes M's output and per-layer verification compares like with like. Every
    other node is labelled ``M/op`` with M its innermost module (``(root)/op`` outside any
    submodule); those labels name the layer but are not compared on their own.
    """
    graph = model.graph
    nodes = list(graph)
    chains: dict[int, list[str]] = {}
    ops: dict[int, str] = {}
    for node in nodes:
        scopes = _scopes(node)
        chains[id(node)] = scopes[1:-1]  # module paths, outermost first
        ops[id(node)] = scopes[-1] if scopes else node.op_type
    members: dict[str, set[int]] = {}
    for node in nodes:
        for module in chains[id(node)]:
            members.setdefault(module, set()).add(id(node))
    outputs_of_graph = set(map(id, graph.outputs))
    owner: dict[int, str] = {}  # node id -> innermost module it computes the output of
    depth: dict[int, int] = {}
    for module, inside in members.items():
        leaving = []
        for node in nodes:
            if id(node) not in inside or node.op_type == "Constant":
                continue  # the exporter shares constants across modules
            for value in node.outputs:
                if value is None:
                    continue
                used_outside = any(id(user) not in inside for user, _ in value.uses())
                if used_outside or id(value) in outputs_of_graph:
                    leaving.append((node, value))
        if len(leaving) != 1:
            continue
        node, value = leaving[0]
        if node.outputs[0] is not value:
            continue
        level = chains[id(node)].index(module)
        if level >= depth.get(id(node), -1):
            owner[id(node)] = module
            depth[id(node)] = level
    for node in nodes:
        chain = chains[id(node)]
        if id(node) in owner:
            label = owner[id(node)]
        else:
            label = f"{chain[-1] if chain else ROOT}/{ops[id(node)]}"
        node.metadata_props[SOURCE_KEY] = label
    for node in model.graph.all_nodes():
        for key in DROPPED_METADATA:
            node.metadata_props.pop(key, None)
