"""Build the IR graph from an MXNet symbol: inputs, one translator call per operator node
(only those the heads depend on), outputs.

Variables (``op: "null"``) are parameters when the params file holds them (``arg:``/``aux:``
names) and graph inputs otherwise. Symbol files rarely fix input shapes, so the shapes come
from ``--input`` (or a variable's ``__shape__`` attribute); every value's static shape is then
known, which translators such as Reshape (special codes), Pooling (``full`` rounding) and
FullyConnected (flatten) need. Shapes of ONNX nodes are inferred node by node with ONNX's own
shape inference, so translators only state them where they know better.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from modelport.errors import InvalidModelError
from modelport.graph_ir import GraphBuilder, keep_open, lazy_tensor
from modelport.graph_ir.metadata import io_key
from modelport.importers.mxnet.params import ParamsFile, is_params_file
from modelport.importers.mxnet.symbol import BadNodeError, Node, Symbol, read_symbol
from modelport.importers.mxnet.table import mxnet_op
from modelport.importers.optable import load_translators
from modelport.importers.registry import LoadOptions

load_translators("modelport.importers.mxnet.ops")

IO_KEY = io_key("mxnet")
# Inputs of training-only heads that inference ignores (labels).
IGNORED_INPUTS = {
    "SoftmaxOutput": {1}, "LinearRegressionOutput": {1}, "LogisticRegressionOutput": {1},
    "MAERegressionOutput": {1}, "SVMOutput": {1}, "MakeLoss": set(), "BlockGrad": set(),
}
# Ops whose inputs after the first are learned parameters (used for --random-weights).
WEIGHT_OPS = {"Convolution", "Deconvolution", "FullyConnected", "BatchNorm", "LayerNorm",
              "InstanceNorm", "LeakyReLU", "Embedding", "RNN", "UpSampling", "GroupNorm"}
_PARAM_SUFFIX = re.compile(r"_(weight|bias|gamma|beta|moving_mean|moving_var|running_mean|"
                           r"running_var|alpha|parameters)$")
_EPOCH = re.compile(r"-(\d+)\.params$")


def resolve_files(path: str, options: LoadOptions) -> tuple[str, str | None]:
    """(symbol JSON, params file or None) for a source path and ``--weights``."""
    p = Path(path)
    if not p.is_file():
        raise InvalidModelError("no such file", path=path)
    with open(p, "rb") as f:
        head = f.read(64)
    if is_params_file(head):  # the params given as the source: find the symbol beside it
        m = _EPOCH.search(p.name)
        prefix = p.name[: m.start()] if m else p.stem
        symbol = p.parent / f"{prefix}-symbol.json"
        if options.extra.get("symbol"):
            symbol = Path(options.extra["symbol"])
        if not symbol.is_file():
            raise InvalidModelError(
                f"is an MXNet .params file (weights only) and {symbol.name} is not beside it; "
                f"convert the symbol file: modelport convert PREFIX-symbol.json --weights "
                f"{p.name}", path=path)
        return str(symbol), str(p)
    if options.weights is not None:
        if not Path(options.weights).is_file():
            raise InvalidModelError("weights file not found", path=options.weights)
        return str(p), options.weights
    return str(p), find_params(p)


def find_params(symbol: Path) -> str | None:
    """``PREFIX-NNNN.params`` beside ``PREFIX-symbol.json``: the highest epoch."""
    name = symbol.name
    prefix = name[: -len("-symbol.json")] if name.endswith("-symbol.json") else symbol.stem
    best: tuple[int, str] | None = None
    for candidate in symbol.parent.glob(f"{glob_escape(prefix)}-*.params"):
        m = _EPOCH.search(candidate.name)
        if m and candidate.name[: m.start()] == prefix:
            epoch = int(m.group(1))
            if best is None or epoch > best[0]:
                best = (epoch, str(candidate))
    if best is None:
        plain = symbol.parent / f"{prefix}.params"
        return str(plain) if plain.is_file() else None
    return best[1]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def load(path: str, options: LoadOptions | None = None) -> ir.Model:
    options = options or LoadOptions()
    symbol_path, params_path = resolve_files(path, options)
    symbol = read_symbol(symbol_path)
    params = ParamsFile(params_path) if params_path else None
    if params is None:
        return build(symbol, params, options, symbol_path)
    try:
        model = build(symbol, params, options, symbol_path)
    except BaseException:
        params.close()
        raise
    keep_open(model, [params])  # lazy tensors read it; the pipeline closes it
    return model


class Pending:
    """A parameter absent from the params file, made randomly (``--random-weights``) once a
    translator states its shape."""

    def __init__(self, name: str) -> None:
        self.name = name


class Context:
    """What a translator sees: the builder, static shapes, parameters and the current node."""

    def __init__(self, builder: GraphBuilder, params: ParamsFile | None, options: LoadOptions,
                 path: str) -> None:
        self.b = builder
        self.params = params
        self.options = options
        self.path = path
        self.seed = int(options.extra.get("seed", 0))
        self.node: Node | None = None
        self._param_values: dict[str, ir.Value] = {}

    # -- shapes -------------------------------------------------------------------------------
    @staticmethod
    def shape(value: ir.Value) -> tuple[int, ...]:
        if value.shape is None:
            raise BadNodeError(f"value {value.name!r} has no known shape")
        return tuple(int(d) if isinstance(d, int) else d for d in value.shape.dims)

    @staticmethod
    def rank(value: ir.Value) -> int:
        return len(value.shape)

    @staticmethod
    def dtype(value: ir.Value) -> ir.DataType:
        return value.dtype if value.dtype is not None else ir.DataType.FLOAT

    # -- nodes --------------------------------------------------------------------------------
    def op(self, op_type: str, *inputs, outputs: int = 1, shape: Sequence[int] | None = None,
           dtype: ir.DataType | None = None, **attrs) -> Any:
        result = self.b.op(op_type, *inputs, outputs=outputs, **attrs)
        values = result if isinstance(result, tuple) else (result,)
        node = values[0].producer()
        if shape is not None:
            values[0].shape = ir.Shape([int(d) for d in shape])
            values[0].type = ir.TensorType(dtype or self.dtype(inputs[0]))
        else:
            _infer(node, self)
        return result

    def const(self, array, name: str = "const", dtype=None) -> ir.Value:
        arr = np.asarray(array, dtype=dtype)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return self.b.const(arr, name=f"{self.node.name}.{name}")

    def scalar(self, value: float, like: ir.Value, name: str = "scalar") -> ir.Value:
        """A 0-d constant of ``like``'s dtype."""
        return self.const(np.asarray(value, dtype=self.dtype(like).numpy()), name)

    def ints(self, values: Sequence[int], name: str = "shape") -> ir.Value:
        return self.const(np.asarray(list(values), dtype=np.int64), name)

    def reduce(self, op_type: str, x: ir.Value, axes: Sequence[int] | None, *, keepdims: int,
               ) -> ir.Value:
        """A Reduce* node, its axes as the opset wants them (GraphBuilder.reduce_axes); over
        every axis when ``axes`` is None."""
        if axes is None:
            return self.op(op_type, x, keepdims=keepdims)
        extra, attrs = self.b.reduce_axes(op_type, axes)
        return self.op(op_type, x, *extra, keepdims=keepdims, **attrs)

    def fail(self, message: str) -> InvalidModelError:
        n = self.node
        return InvalidModelError(f"node {n.name!r} ({n.op}): {message}", path=self.path)

    # -- parameters ---------------------------------------------------------------------------
    def param(self, name: str) -> ir.Value | Pending | None:
        """The initializer for variable ``name`` from the params file (None if absent)."""
        if name in self._param_values:
            return self._param_values[name]
        ref = self.params.lookup(name) if self.params is not None else None
        if ref is None:
            return None
        read = self.params.reader(ref)
        dtype = ref.dtype
        if dtype.kind == "f" or ref.type_flag == 12:
            dtype = np.dtype(np.float32)
            read = (lambda r: lambda: np.asarray(r(), dtype=np.float32))(read)
        value = self.b.initializer(name, lazy_tensor(read, dtype, ref.shape))
        self._param_values[name] = value
        return value

    def weight(self, value: ir.Value | Pending | None, shape: Sequence[int], kind: str = "weight",
               what: str = "weight") -> ir.Value:
        """A learned input of the current node, checked against the ``shape`` it must have."""
        shape = tuple(int(d) for d in shape)
        if isinstance(value, Pending):
            if value.name in self._param_values:
                value = self._param_values[value.name]
            else:
                read = _random_reader(self.seed, value.name, shape, kind)
                made = self.b.initializer(value.name, lazy_tensor(read, np.float32, shape))
                self._param_values[value.name] = made
                return made
        if value is None:
            raise self.fail(f"has no {what} input")
        have = self.shape(value)
        if have != shape:
            if int(np.prod(have, dtype=np.int64)) == int(np.prod(shape, dtype=np.int64)) and \
                    value.const_value is not None:
                return self.op("Reshape", value, self.ints(shape, f"{what}_shape"), shape=shape)
            raise self.fail(f"{what} {value.name!r} has shape {list(have)}, the operator needs "
                            f"{list(shape)}")
        return value

    def aux(self, inputs: list, index: int, suffix: str):
        """Input ``index``, or for legacy symbols that leave auxiliary states implicit,
        the parameter ``NODE_suffix`` (``aux:bn0_moving_mean``)."""
        if index < len(inputs):
            return inputs[index]
        name = f"{self.node.name}_{suffix}"
        found = self.param(name)
        if found is not None:
            return found
        if self.options.random_weights:
            return Pending(name)
        raise self.fail(f"the params file has no {name!r}")

    def data(self, value) -> ir.Value:
        """An input that must be a computed value (or a parameter given in the params file)."""
        if isinstance(value, Pending):
            raise self.fail(f"parameter {value.name!r} is not in the params file and its shape "
                            "cannot be derived here; pass the .params file")
        if value is None:
            raise self.fail("an input is missing")
        if not isinstance(value, ir.Value):
            raise self.fail("an input has no static shape here (a state with an inferred "
                            "batch size is only supported as an RNN begin state)")
        return value


def _random_reader(seed: int, name: str, shape: tuple[int, ...], kind: str):
    key = zlib.crc32(f"{seed}:{name}".encode())

    def read() -> np.ndarray:
        rng = np.random.default_rng(key)
        if kind == "weight":
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            arr = rng.standard_normal(shape) * np.sqrt(1.0 / max(fan_in, 1))
        elif kind in ("var", "gamma"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif kind == "slope":
            arr = rng.uniform(0.05, 0.3, shape)
        else:
            arr = rng.standard_normal(shape) * 0.1
        return arr.astype(np.float32)

    return read


# -- shape inference, node by node ------------------------------------------------------------
_SMALL = 4096


def _infer(node: ir.Node, ctx: Context) -> None:
    inputs, initializers, names = [], [], []
    for i, v in enumerate(node.inputs):
        if v is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if v.const_value is not None and (v.const_value.size <= _SMALL or
                                          v.dtype in (ir.DataType.INT64, ir.DataType.INT32)):
            t = ir.serde.serialize_tensor(v.const_value)
            t.name = name
            initializers.append(t)
        else:
            if v.shape is None or v.dtype is None:
                raise ctx.fail(f"internal: input {v.name!r} of {node.op_type} has no known type")
            dims = [d if isinstance(d, int) else str(d) for d in v.shape.dims]
            inputs.append(onnx.helper.make_tensor_value_info(name, int(v.dtype), dims))
    proto = ir.serde.serialize_node(node)
    del proto.input[:]
    proto.input.extend(names)
    out_names = [f"out{i}" for i in range(len(node.outputs))]
    del proto.output[:]
    proto.output.extend(out_names)
    graph = onnx.helper.make_graph([proto], "g", inputs, [], initializer=initializers)
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", ctx.b.opset)])
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises several types here
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ctx.fail(f"the translation does not type-check ({node.op_type}: {text})") from None
    infos = {vi.name: vi for vi in inferred.graph.value_info}
    infos.update({vi.name: vi for vi in inferred.graph.output})
    for out, name in zip(node.outputs, out_names):
        vi = infos.get(name)
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            raise ctx.fail(f"internal: no shape inferred for {node.op_type}")
        tt = vi.type.tensor_type
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                raise ctx.fail(f"internal: {node.op_type} output has an unknown dimension")
        out.shape = ir.Shape(dims)
        out.type = ir.TensorType(ir.DataType(tt.elem_type))


# -- building ----------------------------------------------------------------------------------
def needed_nodes(symbol: Symbol) -> list[bool]:
    need = [False] * len(symbol.nodes)
    stack = [h for h, _ in symbol.heads]
    while stack:
        i = stack.pop()
        if need[i]:
            continue
        need[i] = True
        node = symbol.nodes[i]
        ignored = IGNORED_INPUTS.get(node.op, set())
        stack.extend(src for k, (src, _) in enumerate(node.inputs) if k not in ignored)
    return need


def output_names(symbol: Symbol) -> list[str]:
    """MXNet's names of the heads (``list_outputs()``): ``NAME_output`` or ``NAME_outputK``."""
    names = []
    counts: dict[int, int] = {}
    for h, _ in symbol.heads:
        counts[h] = counts.get(h, 0) + 1
    for h, k in symbol.heads:
        node = symbol.nodes[h]
        if node.is_variable:
            names.append(node.name)
        elif counts[h] > 1 or k > 0:
            names.append(f"{node.name}_output{k}")
        else:
            names.append(f"{node.name}_output")
    return names


def build(symbol: Symbol, params: ParamsFile | None, options: LoadOptions, path: str
          ) -> ir.Model:
    b = GraphBuilder(Path(path).stem.removesuffix("-symbol"))
    ctx = Context(b, params, options, path)
    need = needed_nodes(symbol)
    nodes = symbol.nodes

    missing = [(n.op, n.name) for n, k in zip(nodes, need)
               if k and not n.is_variable and n.op not in mxnet_op]
    if missing:
        mxnet_op.check(missing, path=path, hint="register a translation with `from "
                       "modelport.importers.mxnet import mxnet_op`")

    # How each variable is used: as a learned parameter slot or as data.
    weight_slot: set[int] = set()
    for n, k in zip(nodes, need):
        if k and not n.is_variable:
            for pos, (src, _) in enumerate(n.inputs):
                if pos > 0 and n.op in WEIGHT_OPS:
                    weight_slot.add(src)

    values: dict[tuple[int, int], Any] = {}
    io: dict[str, Any] = {"inputs": {}, "outputs": {}}
    no_shape: list[str] = []

    def variable(i: int) -> Any:
        node = nodes[i]
        found = ctx.param(node.name)
        if found is not None:
            return found
        is_param = i in weight_slot or bool(_PARAM_SUFFIX.search(node.name))
        if is_param and options.random_weights:
            return Pending(node.name)
        if is_param and params is None and i in weight_slot:
            raise InvalidModelError(
                f"no weights for {node.name!r}: the .params file was not found beside the "
                "symbol; pass it with --weights (or --random-weights for a structure check)",
                path=path)
        if is_param and i in weight_slot:
            raise InvalidModelError(f"the params file has no array for {node.name!r} "
                                    "(arg:/aux:)", path=params.path)
        return graph_input(node)

    def graph_input(node: Node) -> ir.Value | None:
        dims = options.input_shapes.get(node.name)
        if dims is None and "__shape__" in node.user:
            dims = [int(d) for d in node.user["__shape__"].strip("()[] ").split(",") if d.strip()]
        if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
            no_shape.append(node.name)
            return None
        dtype = options.input_dtypes.get(node.name)
        if dtype is None and "__dtype__" in node.user:
            from modelport.importers.mxnet.params import DTYPES
            dtype = DTYPES.get(int(node.user["__dtype__"]), np.dtype(np.float32))
        value = b.input(node.name, np.dtype(dtype or np.float32), dims)
        io["inputs"][value.name] = node.name
        return value

    for i, node in enumerate(nodes):
        if not need[i] or not node.is_variable:
            continue
        values[(i, 0)] = variable(i)
    if no_shape:
        example = ", ".join(f"--input {n}:1,3,224,224" for n in no_shape)
        raise InvalidModelError(
            f"the symbol does not fix the shape of input{'s' if len(no_shape) > 1 else ''} "
            f"{', '.join(repr(n) for n in no_shape)}; give it with {example} (your sizes)",
            path=path)

    for i, node in enumerate(nodes):
        if not need[i] or node.is_variable:
            continue
        ignored = IGNORED_INPUTS.get(node.op, set())
        inputs = []
        for pos, ref in enumerate(node.inputs):
            if pos in ignored:
                inputs.append(None)
                continue
            if ref not in values:
                raise InvalidModelError(
                    f"node {node.name!r} reads output {ref[1]} of {nodes[ref[0]].name!r}, "
                    "which that node does not produce here", path=path)
            inputs.append(values[ref])
        ctx.node = node
        fn = mxnet_op.get(node.op)
        with b.layer(node.name):
            try:
                outs = fn(ctx, node, inputs)
            except BadNodeError as exc:
                raise ctx.fail(f"cannot translate: {exc}") from None
        for k, v in enumerate(outs):
            values[(i, k)] = v

    for (h, k), name in zip(symbol.heads, output_names(symbol)):
        v = values.get((h, k))
        if v is None or isinstance(v, Pending):
            raise InvalidModelError(f"output {name!r} cannot be computed", path=path)
        out = b.output(v, name)
        io["outputs"][out.name] = name
    model = b.build(doc=f"converted from MXNet symbol {Path(path).name}")
    model.metadata_props[IO_KEY] = json.dumps(io, separators=(",", ":"))
    return model
