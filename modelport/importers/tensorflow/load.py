"""Build the IR graph from a TensorFlow graph: a frozen GraphDef or a SavedModel signature.

The graph is walked back from the requested outputs, so only what they depend on is
translated (a SavedModel's saver functions, training-only branches and dead nodes are never
looked at). Function calls (``PartitionedCall`` / ``StatefulPartitionedCall``) are inlined from
the function library; resource variables become lazy initializers reading the checkpoint.
Each op is translated by a small function of the op table (:mod:`.ops`); every emitted node is
typed by ONNX shape inference as it is made, and nodes whose inputs are all small constants
(shape arithmetic: ``Shape`` -> ``StridedSlice`` -> ``Pack`` -> ``Reshape``) are evaluated on
the spot, so the output is static wherever the model is.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper

from modelport.errors import InvalidModelError, ModelportError, UnsupportedOpsError
from modelport.graph_ir import GraphBuilder, keep_open
from modelport.graph_ir.metadata import SOURCE_PERM_KEY, io_key
from modelport.importers.optable import load_translators
from modelport.importers.registry import LoadOptions
from modelport.importers.tensorflow import control, dtypes
from modelport.importers.tensorflow.control import FUNCTION_ATTRS, IF_OPS, WHILE_OPS
from modelport.importers.tensorflow.source import Resource, Source, TensorRef, read_source
from modelport.importers.tensorflow.table import CONTROL_FLOW, tf_op
from modelport.importers.tensorflow.tensors import lazy_or_array, shape_of, to_array

load_translators("modelport.importers.tensorflow.ops")

IO_KEY = io_key("tensorflow")
VECTOR_FOLD_LIMIT = 1 << 14  # and vectors (one dim > 1) up to this many
FOLD_LIMIT = 1 << 16  # constant inputs up to this many elements are evaluated when translating
CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")
INPUT_OPS = ("Placeholder",)
# Outputs of ops with several output arguments, by argument name (function bodies refer to
# tensors as "node:arg:index"); other ops have one output argument (a single tensor or a list).
OUTPUT_ARGS = {
    "FusedBatchNorm": ("y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"),
    "FusedBatchNormV2": ("y", "batch_mean", "batch_variance", "reserve_space_1",
                         "reserve_space_2"),
    "FusedBatchNormV3": ("y", "batch_mean", "batch_variance", "reserve_space_1",
                         "reserve_space_2", "reserve_space_3"),
    "TopKV2": ("values", "indices"),
    "Unique": ("y", "idx"),
    "QuantizeV2": ("output", "output_min", "output_max"),
}


def load(path: str, options: LoadOptions | None = None) -> ir.Model:
    options = normalize_names(options or LoadOptions())
    try:
        source = read_source(path, options)
        return build(source, options)
    except ModelportError as exc:
        if exc.path is None and type(exc) is InvalidModelError:  # raised without the path
            # at hand (dtypes...)
            raise type(exc)(exc.problem, path=path) from exc
        raise


def _strip0(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def normalize_names(options: LoadOptions) -> LoadOptions:
    """Tensor names in --input/--output as the ONNX graph has them: ``x:0`` is ``x``.

    Done in place, so that the pipeline's generic input/output handling sees the same names.
    """
    options.input_shapes = {_strip0(k): v for k, v in options.input_shapes.items()}
    options.input_dtypes = {_strip0(k): v for k, v in options.input_dtypes.items()}
    if options.outputs:
        options.outputs = [_strip0(o) for o in options.outputs]
    return options


# ---- nodes ------------------------------------------------------------------------------------

class Node:
    """A NodeDef with attribute helpers; ``name`` is unique in the whole (inlined) graph."""

    def __init__(self, nd, name: str) -> None:
        self.nd = nd
        self.name = name
        self.op = nd.op

    def has(self, key: str) -> bool:
        return key in self.nd.attr

    def attr(self, key: str):
        return self.nd.attr[key] if key in self.nd.attr else None

    def i(self, key: str, default: int | None = None) -> int:
        a = self.attr(key)
        return int(a.i) if a is not None else default

    def f(self, key: str, default: float | None = None) -> float:
        a = self.attr(key)
        return float(a.f) if a is not None else default

    def b(self, key: str, default: bool = False) -> bool:
        a = self.attr(key)
        return bool(a.b) if a is not None else default

    def s(self, key: str, default: str = "") -> str:
        a = self.attr(key)
        return a.s.decode("utf-8", "replace") if a is not None else default

    def ints(self, key: str, default: Sequence[int] | None = None) -> list[int]:
        a = self.attr(key)
        return [int(x) for x in a.list.i] if a is not None else list(default or [])

    def type(self, key: str = "T", default: int = dtypes.FLOAT) -> int:
        a = self.attr(key)
        return int(a.type) if a is not None else default


# ---- the translation context ------------------------------------------------------------------

class Context:
    """What translators see: the builder, shapes, constants and helpers."""

    def __init__(self, builder: GraphBuilder, source: Source, options: LoadOptions) -> None:
        self.b = builder
        self.source = source
        self.options = options
        self.path = source.path
        self.node: Node | None = None
        self.scope: Scope | None = None  # the body the current node belongs to
        self.translator: Translator | None = None
        self._variables: dict[str, ir.Value] = {}
        self._evaluator = None

    def tf_input(self, nd, k: int):
        """The NodeDef producing the ``k``-th data input of NodeDef ``nd`` (of the current
        body) and that input's translated value; (None, value) for a function argument."""
        refs = [r for r in nd.input if not r.startswith("^")]
        name, idx = self.scope.parse(refs[k])
        producer = None if idx == -1 else self.scope.nodes.get(name)
        return producer, self.translator.value(self.scope, refs[k])

    def sole_reader(self, k: int = 0) -> bool:
        """True when the current node is the only reader of its ``k``-th data input (no other
        node, no graph or function output reads that tensor): the translator may then fuse
        the op producing it, leaving nothing computed twice."""
        refs = [r for r in self.node.nd.input if not r.startswith("^")]
        return self.scope is not None and k < len(refs) and self.scope.uses(refs[k]) == 1

    # -- errors --------------------------------------------------------------------------------
    def fail(self, message: str) -> InvalidModelError:
        where = f"node {self.node.name!r} ({self.node.op}): " if self.node else ""
        return InvalidModelError(where + message, path=self.path)

    # -- values ----------------------------------------------------------------------------------
    @staticmethod
    def const_array(value: ir.Value) -> np.ndarray | None:
        """The value's contents if it is a (small) constant, else None."""
        tensor = value.const_value if isinstance(value, ir.Value) else None
        if tensor is None:
            return None
        size = math.prod(tensor.shape.dims) if tensor.shape else 1
        if size > FOLD_LIMIT:
            return None
        return tensor.numpy()

    @staticmethod
    def _small(value: ir.Value) -> bool:
        """Small enough to evaluate while translating: shape arithmetic, and vectors such as
        the per-channel scale and shift that a decomposed BatchNorm computes from its
        statistics (then folded into the convolution before it). Not weights: those stay lazy
        and are folded, if at all, by the optimiser."""
        t = value.const_value
        if t is None:
            return False
        dims = t.shape.dims
        size = math.prod(dims)
        return size <= 1024 or (size <= VECTOR_FOLD_LIMIT and sum(d > 1 for d in dims) <= 1)

    def need_const(self, value: ir.Value, what: str) -> np.ndarray:
        arr = self.const_array(value)
        if arr is None:
            raise self.fail(f"{what} must be a constant (it is computed at run time here)")
        return arr

    def partial_ints(self, value: ir.Value) -> list[int | None] | None:
        """The entries of a 1-D integer tensor that are known statically (None where not),
        looking through Concat / Unsqueeze / Cast of shape computations; None if unknown."""
        arr = self.const_array(value)
        if arr is not None:
            return [int(v) for v in np.asarray(arr).reshape(-1)]
        node = value.producer()
        if node is not None and node.op_type == "Cast":
            return self.partial_ints(node.inputs[0])
        if node is not None and node.op_type == "Concat":
            parts = [self.partial_ints(v) for v in node.inputs]
            if all(p is not None for p in parts):
                return [x for p in parts for x in p]
        shape = self.shape(value)
        if shape is not None and len(shape) <= 1:
            n = shape[0] if shape else 1
            if isinstance(n, int):
                return [None] * n
        return None

    @staticmethod
    def shape(value: ir.Value) -> list[int | None] | None:
        """Static shape (None for unknown dims), or None if even the rank is unknown."""
        if value.shape is None:
            return None
        return [d if isinstance(d, int) else None for d in value.shape.dims]

    def rank(self, value: ir.Value) -> int:
        shape = self.shape(value)
        if shape is None:
            raise self.fail("needs the rank of its input, which is unknown (give the input's "
                            "shape with --input NAME:DIMS)")
        return len(shape)

    @staticmethod
    def dtype(value: ir.Value) -> ir.DataType | None:
        return value.type.dtype if value.type is not None else None

    def const(self, array: Any, name: str = "const", dtype: Any = None) -> ir.Value:
        arr = np.asarray(array, dtype=dtype)
        value = self.b.initializer(f"{self.node.name}/{name}" if self.node else name, arr)
        return value

    def ints(self, values: Sequence[int], name: str = "shape") -> ir.Value:
        return self.const(np.asarray(list(values), dtype=np.int64), name)

    def scalar(self, x: float, like: ir.Value, name: str = "scalar") -> ir.Value:
        dt = self.dtype(like)
        np_dtype = dt.numpy() if dt is not None else np.float32
        return self.const(np.asarray(x, dtype=np_dtype), name)

    def cast(self, value: ir.Value, to: ir.DataType) -> ir.Value:
        if self.dtype(value) == to:
            return value
        return self.op("Cast", value, to=int(to))

    # -- nodes -----------------------------------------------------------------------------------
    def op(self, op_type: str, *inputs: ir.Value | None, outputs: int = 1, **attrs: Any):
        """Append an ONNX node (typed by shape inference), or its result if it folds."""
        attrs = {k: v for k, v in attrs.items() if v is not None}
        folded = self._fold(op_type, inputs, outputs, attrs)
        if folded is not None:
            return folded[0] if outputs == 1 else tuple(folded)
        result = self.b.op(op_type, *inputs, outputs=outputs, **_ir_attrs(attrs))
        values = [result] if outputs == 1 else list(result)
        if not _infer_simple(op_type, inputs, values, attrs):
            self._infer(op_type, inputs, values, attrs)
        return result

    _NO_FOLD = frozenset({"RandomUniform", "RandomNormal", "RandomUniformLike",
                          "RandomNormalLike", "Multinomial", "Dropout"})

    def _fold(self, op_type, inputs, outputs, attrs):
        if op_type in self._NO_FOLD or not inputs:
            return None
        if op_type == "Identity" and inputs[0] is not None and inputs[0].const_value is not None:
            return [inputs[0]]  # a constant passed through: no copy
        arrays = []
        for v in inputs:
            if v is None:
                arrays.append(None)
                continue
            arr = self.const_array(v) if self._small(v) else None
            if arr is None:
                return None
            arrays.append(arr)
        fast = _NUMPY_FOLDS.get(op_type)
        if fast is not None and outputs == 1:
            try:
                result = fast(arrays, attrs)
            except Exception:  # (the reference evaluator below decides)
                result = None
            if result is not None:
                result = np.asarray(result)
                if result.size > FOLD_LIMIT:
                    return None
                return [self.const(result, f"{op_type}_folded")]
        names = [f"i{k}" if a is not None else "" for k, a in enumerate(arrays)]
        outs = [f"o{k}" for k in range(outputs)]
        try:
            node = helper.make_node(op_type, names, outs, **attrs)
            graph = helper.make_graph(
                [node], "fold", [], [helper.make_tensor_value_info(o, 0, None) for o in outs],
                [numpy_helper.from_array(np.asarray(a), n) for a, n in zip(arrays, names)
                 if a is not None])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.b.opset)])
            from onnx.reference import ReferenceEvaluator

            results = ReferenceEvaluator(model).run(None, {})
        except Exception:
            return None
        if any(np.asarray(r).size > FOLD_LIMIT for r in results):
            return None
        return [self.const(np.asarray(r), f"{op_type}_folded") for r in results]

    def _infer(self, op_type, inputs, values, attrs) -> None:
        try:
            schema = onnx.defs.get_schema(op_type, self.b.opset, "")
        except Exception:
            return
        names = [f"i{k}" if v is not None else "" for k, v in enumerate(inputs)]
        types, data = {}, {}
        for n, v in zip(names, inputs):
            if v is None:
                continue
            if v.type is None:
                return
            dims = None if v.shape is None else [
                d if isinstance(d, int) else getattr(d, "value", None) for d in v.shape.dims]
            types[n] = helper.make_tensor_type_proto(int(v.type.dtype), dims)
            arr = self.const_array(v)
            if arr is not None:
                data[n] = numpy_helper.from_array(np.asarray(arr), n)
        outs = [f"o{k}" for k in range(len(values))]
        try:
            node = helper.make_node(op_type, names, outs, **attrs)
            result = onnx.shape_inference.infer_node_outputs(
                schema, node, types, data,
                opset_imports=[helper.make_opsetid("", self.b.opset)])
        except Exception:
            return
        for o, value in zip(outs, values):
            t = result.get(o)
            if t is None or not t.HasField("tensor_type"):
                continue
            tt = t.tensor_type
            if tt.elem_type:
                value.type = ir.TensorType(ir.DataType(tt.elem_type))
            if tt.HasField("shape"):
                value.shape = ir.Shape([
                    d.dim_value if d.HasField("dim_value") else (
                        d.dim_param if d.HasField("dim_param") else None)
                    for d in tt.shape.dim])

    # -- variables -------------------------------------------------------------------------------
    def variable(self, resource: Resource) -> ir.Value:
        """The current value of a resource variable: a lazy initializer from the checkpoint."""
        if resource.key in self._variables:
            return self._variables[resource.key]
        ckpt = self.source.checkpoint
        if ckpt is None or resource.key not in ckpt:
            raise InvalidModelError(
                f"variable {resource.key!r} is not in the checkpoint "
                f"({self.source.variables_prefix or 'no variables found'})", path=self.path)
        ckpt.check(resource.key)
        shape = ckpt.shape(resource.key)
        from modelport.graph_ir import lazy_tensor

        key = resource.key
        tensor = lazy_tensor(lambda: ckpt.read(key), dtypes.to_ir(ckpt.dtype(key)), shape)
        name = resource.name or key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")
        value = self.b.initializer(name, tensor)
        self._variables[key] = value
        return value


# ---- fast paths of Context.op -------------------------------------------------------------------
# Most nodes an importer emits have int, float, string or int-list attributes, and a shape that
# follows from their input's (Transpose, activations); building those directly, without
# onnx_ir's attribute type inference (slow protocol checks) and ONNX's per-node shape inference,
# halves the translation time of a CNN. Anything else takes the general path.

def _ir_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if isinstance(v, bool) or isinstance(v, (int, np.integer)):
            out[k] = ir.AttrInt64(k, int(v))
        elif isinstance(v, (float, np.floating)):
            out[k] = ir.AttrFloat32(k, float(v))
        elif isinstance(v, str):
            out[k] = ir.AttrString(k, v)
        elif isinstance(v, (list, tuple)) and v and all(
                isinstance(e, (int, np.integer)) for e in v):
            out[k] = ir.AttrInt64s(k, [int(e) for e in v])
        else:
            out[k] = v
    return out


_SAME_SHAPE = frozenset({
    "Relu", "Sigmoid", "Tanh", "Elu", "Selu", "Softplus", "Softsign", "Erf", "Exp", "Log",
    "Neg", "Abs", "Sqrt", "Reciprocal", "Identity", "LeakyRelu", "Softmax", "LogSoftmax",
    "Clip", "Floor", "Ceil", "HardSigmoid", "Sin", "Cos"})


def _conv_shape(inputs, values, attrs) -> bool:
    """Conv with explicit pads and static spatial sizes (what the TF translators emit)."""
    if len(inputs) < 2 or len(values) != 1 or any(v is None or v.type is None or v.shape
                                                  is None for v in inputs[:2]):
        return False
    x, w = inputs[0], inputs[1]
    if attrs.get("auto_pad", "NOTSET") != "NOTSET" or len(x.shape) != len(w.shape):
        return False
    dims_x = [d if isinstance(d, int) else getattr(d, "value", None) for d in x.shape.dims]
    m = len(dims_x) - 2
    ws = w.shape.dims
    if m < 1 or not all(isinstance(d, int) for d in [*dims_x[2:], *ws]):
        return False
    kernels = list(attrs.get("kernel_shape") or ws[2:])
    strides = list(attrs.get("strides") or [1] * m)
    dilations = list(attrs.get("dilations") or [1] * m)
    pads = list(attrs.get("pads") or [0] * (2 * m))
    if list(ws[2:]) != kernels or len(strides) != m or len(dilations) != m or len(pads) != 2 * m:
        return False
    out = []
    for i in range(m):
        size = dims_x[2 + i] + pads[i] + pads[m + i] - (kernels[i] - 1) * dilations[i] - 1
        if size < 0:
            return False
        out.append(size // strides[i] + 1)
    (y,) = values
    y.type = ir.TensorType(x.type.dtype)
    y.shape = ir.Shape([dims_x[0], ws[0], *out])
    return True


def _infer_simple(op_type: str, inputs, values, attrs) -> bool:
    """Type and shape of a node whose output mirrors its input's, or of a Conv; False if
    neither (ONNX's shape inference then types it)."""
    if op_type == "Conv":
        return _conv_shape(inputs, values, attrs)
    if op_type not in _SAME_SHAPE and op_type != "Transpose":
        return False
    if len(values) != 1 or not inputs or inputs[0] is None or inputs[0].type is None:
        return False
    x, (y,) = inputs[0], values
    y.type = ir.TensorType(x.type.dtype)
    if x.shape is None:
        return True
    dims = [d if isinstance(d, int) else getattr(d, "value", None) for d in x.shape.dims]
    if op_type == "Transpose":
        perm = attrs.get("perm")
        perm = list(range(len(dims)))[::-1] if perm is None else [int(p) for p in perm]
        if sorted(perm) != list(range(len(dims))):
            return False
        dims = [dims[p] for p in perm]
    y.shape = ir.Shape(dims)
    return True


def _reshape(arrays, attrs):
    x, shape = arrays
    if attrs.get("allowzero"):
        return None
    target = [x.shape[i] if s == 0 else int(s) for i, s in enumerate(shape.reshape(-1))]
    return x.reshape(target)


def _axes(arrays, attrs) -> list[int] | None:
    if len(arrays) > 1 and arrays[1] is not None:
        return [int(a) for a in arrays[1].reshape(-1)]
    axes = attrs.get("axes")
    return None if axes is None else [int(a) for a in axes]


def _squeeze(arrays, attrs):
    axes = _axes(arrays, attrs)
    return np.squeeze(arrays[0]) if axes is None else np.squeeze(arrays[0], tuple(axes))


def _unsqueeze(arrays, attrs):
    axes = _axes(arrays, attrs)
    if axes is None:
        return None
    rank = arrays[0].ndim + len(axes)
    return np.reshape(arrays[0], _unsqueezed(arrays[0].shape, sorted(a % rank for a in axes)))


def _unsqueezed(shape, axes):
    dims = list(shape)
    for a in axes:
        dims.insert(a, 1)
    return dims


def _same_type(fn, floats_only=False):
    """An element-wise numpy function applied when ONNX would see one dtype (as it requires)."""
    def fold(arrays, attrs):
        if any(a is None for a in arrays) or len({a.dtype for a in arrays}) != 1:
            return None
        if floats_only and arrays[0].dtype.kind != "f":
            return None
        with np.errstate(all="ignore"):
            return np.asarray(fn(*arrays)).astype(arrays[0].dtype, copy=False)

    return fold


_NUMPY_FOLDS = {
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Add": _same_type(np.add),
    "Sub": _same_type(np.subtract),
    "Mul": _same_type(np.multiply),
    "Div": _same_type(np.divide, floats_only=True),
    "Sqrt": _same_type(np.sqrt, floats_only=True),
    "Reciprocal": _same_type(np.reciprocal, floats_only=True),
    "Neg": _same_type(np.negative),
}


# ---- walking the graph ------------------------------------------------------------------------

@dataclasses.dataclass
class Scope:
    """One graph body: the main GraphDef or an inlined function (bound to its call's inputs)."""

    nodes: dict[str, Any]  # name -> NodeDef
    prefix: str  # prepended to node names (unique source names across inlined bodies)
    args: dict[str, Any] = dataclasses.field(default_factory=dict)  # function arg -> value
    function: bool = False
    values: dict[str, list] = dataclasses.field(default_factory=dict)
    returns: list[str] = dataclasses.field(default_factory=list)  # refs read from outside
    orders: dict = dataclasses.field(default_factory=dict)  # _order's results
    _uses: dict[tuple[str, int], int] | None = None

    def uses(self, ref: str) -> int:
        """How many data inputs in this body (and outputs of it) read tensor ``ref``."""
        if self._uses is None:
            counts: dict[tuple[str, int], int] = {}
            for nd in self.nodes.values():
                for r in nd.input:
                    parsed = self.parse(r)
                    if parsed is not None:
                        counts[parsed] = counts.get(parsed, 0) + 1
            for r in self.returns:
                parsed = self.parse(r)
                if parsed is not None:
                    counts[parsed] = counts.get(parsed, 0) + 1
            self._uses = counts
        parsed = self.parse(ref)
        return 0 if parsed is None else self._uses.get(parsed, 0)

    def parse(self, ref: str) -> tuple[str, int] | None:
        """(node name, output index) of a data input; None for a control input."""
        if ref.startswith("^"):
            return None
        if self.function:
            if ref in self.args:
                return (ref, -1)
            parts = ref.split(":")
            if len(parts) == 3:
                node, arg, idx = parts
                nd = self.nodes.get(node)
                offset = 0
                if nd is not None and nd.op in OUTPUT_ARGS and arg in OUTPUT_ARGS[nd.op]:
                    offset = OUTPUT_ARGS[nd.op].index(arg)
                return node, offset + int(idx)
            if len(parts) == 2 and parts[1].isdigit():
                return parts[0], int(parts[1])
            return ref, 0
        name, sep, idx = ref.rpartition(":")
        if sep and idx.isdigit():
            return name, int(idx)
        return ref, 0


def _order(scope: Scope, wanted: list[str], stops: set[str] = frozenset()) -> list[str]:
    """Node names that ``wanted`` depend on (data inputs only), in a topological order
    (computed once per body and request: checking, collecting and translating walk it)."""
    key = (tuple(wanted), frozenset(stops))
    cached = scope.orders.get(key)
    if cached is None:
        cached = scope.orders[key] = _walk_order(scope, wanted, stops)
    return cached


def _walk_order(scope: Scope, wanted: list[str], stops) -> list[str]:
    order, state = [], {}
    stack = [(n, False) for n in reversed(wanted)]
    while stack:
        name, done = stack.pop()
        if done:
            state[name] = 2
            order.append(name)
            continue
        if state.get(name):
            continue
        state[name] = 1
        stack.append((name, True))
        nd = scope.nodes.get(name)
        if nd is None or name in stops:
            continue
        for ref in reversed(nd.input):
            parsed = scope.parse(ref)
            if parsed is None or parsed[1] == -1:
                continue
            dep = parsed[0]
            if state.get(dep) == 1 and dep not in order:
                raise InvalidModelError(f"the graph has a cycle through node {dep!r} (a loop "
                                        "of TF 1 control flow?)", path=None)
            if not state.get(dep):
                stack.append((dep, False))
    return order


class Translator:
    def __init__(self, source: Source, options: LoadOptions, ctx: Context) -> None:
        self.source = source
        self.options = options
        self.ctx = ctx
        ctx.translator = self
        self.tf1: dict = {}  # TF 1 loop frames and conds, by the node that stands for them

    # -- checking every op first -----------------------------------------------------------------
    def collect(self, scope: Scope, wanted: list[str], used: list, seen_fn: set,
                stops: set[str]) -> None:
        for name in _order(scope, wanted, stops):
            nd = scope.nodes.get(name)
            if nd is None or name in stops:
                continue
            used.append((nd.op, scope.prefix + name))
            if nd.op in (control.FRAME_OP, control.COND_OP):  # TF 1 loops and conds
                for inner, rets in self.tf1[name].collect_roots():
                    roots = [p[0] for p in (inner.parse(r) for r in rets) if p and p[1] != -1]
                    self.collect(inner, roots, used, seen_fn, set())
                continue
            # Functions called (PartitionedCall) or run as bodies (While, If).
            for key in FUNCTION_ATTRS:
                if key not in nd.attr or not nd.attr[key].func.name:
                    continue
                fname = nd.attr[key].func.name
                fn = self.source.functions.get(fname)
                if fn is None:
                    raise InvalidModelError(f"node {name!r} calls function {fname!r}, which the "
                                            "function library does not have", path=self.source.path)
                if fname in seen_fn:
                    continue
                seen_fn.add(fname)
                inner = function_scope(fn, "", [])
                rets = [inner.parse(fn.ret[a.name]) for a in fn.signature.output_arg]
                self.collect(inner, [r[0] for r in rets if r and r[1] != -1], used, seen_fn,
                             set())

    # -- translating -----------------------------------------------------------------------------
    def value(self, scope: Scope, ref: str):
        parsed = scope.parse(ref)
        name, idx = parsed
        if idx == -1:
            return scope.args[name]
        outs = scope.values.get(name)
        if outs is None:
            raise InvalidModelError(f"tensor {ref!r} is used but its node {name!r} is not in "
                                    "the graph", path=self.source.path)
        if idx >= len(outs):
            raise InvalidModelError(f"tensor {ref!r}: node {name!r} has only {len(outs)} "
                                    "outputs", path=self.source.path)
        return outs[idx]

    def run(self, scope: Scope, wanted: list[str], stops: set[str] = frozenset()) -> None:
        for name in _order(scope, wanted, stops):
            if name in scope.values:
                continue
            nd = scope.nodes.get(name)
            if nd is None:
                raise InvalidModelError(f"node {name!r} is used but not in the graph",
                                        path=self.source.path)
            node = Node(nd, scope.prefix + name)
            inputs = [self.value(scope, r) for r in nd.input if not r.startswith("^")]
            previous, self.ctx.scope = self.ctx.scope, scope
            try:
                scope.values[name] = self.translate(node, inputs)
            finally:
                self.ctx.scope = previous

    def translate(self, node: Node, inputs: list) -> list:
        ctx = self.ctx
        previous, ctx.node = ctx.node, node
        try:
            if node.op in CALL_OPS:
                return self.call(node, inputs)
            if node.op in WHILE_OPS:
                return control.while_loop(self, node, inputs)
            if node.op in IF_OPS:
                return control.if_op(self, node, inputs)
            if node.op == control.FRAME_OP:
                return control.tf1_loop(self, node, inputs, self.tf1[node.nd.name])
            if node.op == control.COND_OP:
                return control.tf1_cond(self, node, inputs, self.tf1[node.nd.name])
            if node.op == "VarHandleOp":
                return [self.source.resource(node)]
            if node.op in ("VariableV2", "Variable"):  # TF 1 reference variables
                with ctx.b.layer(node.name):
                    return [ctx.variable(self.source.resource(node))]
            if node.op in ("ReadVariableOp", "Identity") and inputs and isinstance(
                    inputs[0], Resource):
                if node.op == "Identity":
                    return [inputs[0]]
                with ctx.b.layer(node.name):
                    return [ctx.variable(inputs[0])]
            fn = tf_op.get(node.op)
            with ctx.b.layer(node.name):
                # Ops reading a variable directly (ResourceGather...) get its value.
                inputs = [ctx.variable(i) if isinstance(i, Resource) else i for i in inputs]
                result = fn(ctx, node, inputs)
            if isinstance(result, (list, tuple)):
                return list(result)
            return [result]
        finally:
            ctx.node = previous

    def call(self, node: Node, inputs: list) -> list:
        fname = node.nd.attr["f"].func.name
        fn = self.source.functions[fname]
        scope = function_scope(fn, node.name + "/", inputs)
        rets = [fn.ret[a.name] for a in fn.signature.output_arg]
        self.run(scope, [p[0] for p in (scope.parse(r) for r in rets) if p and p[1] != -1])
        return [self.value(scope, r) for r in rets]


def function_scope(fn, prefix: str, inputs: list) -> Scope:
    args = {a.name: v for a, v in zip(fn.signature.input_arg, inputs)} if inputs else {
        a.name: None for a in fn.signature.input_arg}
    return Scope({nd.name: nd for nd in fn.node_def}, prefix, args, function=True,
                 returns=[fn.ret[a.name] for a in fn.signature.output_arg])


# ---- the whole graph --------------------------------------------------------------------------

def build(source: Source, options: LoadOptions) -> ir.Model:
    b = GraphBuilder(source.name)
    ctx = Context(b, source, options)
    tr = Translator(source, options, ctx)
    nodes, tr.tf1 = control.rewrite_tf1(source.nodes, source.path)
    main = Scope(nodes, "")
    main.returns = [t.tensor for t in source.outputs]

    inputs = source.inputs  # list[TensorRef]
    outputs = source.outputs
    stops = {main.parse(t.tensor)[0] for t in inputs}

    needed = set(_order(main, [main.parse(t.tensor)[0] for t in outputs], stops))
    inputs = [t for t in inputs if main.parse(t.tensor)[0] in needed]
    undefined = sorted({main.parse(r)[0] for n in needed if n in nodes
                        for r in nodes[n].input if not r.startswith("^")} - set(nodes))
    if undefined:
        raise InvalidModelError(
            f"nodes read {len(undefined)} tensors that the graph does not define "
            f"({', '.join(repr(u) for u in undefined[:3])}{', ...' if len(undefined) > 3 else ''})"
            ": a text GraphDef without its weights (an OpenCV graph config?); convert the "
            "frozen binary .pb that holds them", path=source.path)
    used: list[tuple[str, str]] = []
    tr.collect(main, [main.parse(t.tensor)[0] for t in outputs], used, set(), stops)
    flow = {}
    missing = []
    special = {"VarHandleOp", "VariableV2", "Variable", "ReadVariableOp", *CALL_OPS,
               *WHILE_OPS, *IF_OPS, control.FRAME_OP, control.COND_OP}
    for op, name in used:
        if op in CONTROL_FLOW and op not in special and op not in tf_op:
            flow.setdefault(op, []).append(name)
        elif op not in special and op not in tf_op:
            missing.append((op, name))
    if flow:
        raise UnsupportedOpsError(
            flow, path=source.path, kind="TensorFlow control-flow op",
            hint="TF 1 loop frames, Case and TensorArrays are not supported yet; freeze the TF 2 "
                 "model with convert_variables_to_constants_v2(lower_control_flow=False) to "
                 "keep functional While/If, or convert up to them with --output")
    if missing:
        tf_op.check(missing, path=source.path,
                    hint="register a translation with `from modelport.importers.tensorflow "
                         "import tf_op`")

    io: dict[str, Any] = {"inputs": {}, "outputs": {}}
    for t in inputs:
        shape = t.shape
        if shape is None:
            raise InvalidModelError(f"input {t.name!r} has an unknown rank; give its shape with "
                                    f"--input {t.name}:DIMS, e.g. --input {t.name}:1,784", path=source.path)
        dims = [d if (isinstance(d, str) or d >= 0) else ("N" if j == 0 else f"{t.name}_d{j}")
                for j, d in enumerate(shape)]
        np_dtype = dtypes.to_numpy(t.dtype)
        rank = len(dims)
        if options.nchw_inputs and rank >= 3 and np_dtype.kind == "f":
            # Channels-first graph input; a Transpose back to TF's NHWC (which the first
            # convolution's own Transpose cancels).
            to_source = [0, *range(2, rank), 1]
            physical = [dims[0], dims[-1], *dims[1:-1]]
            if t.shape is not None and any(k in options.input_shapes
                                            for k in (t.name, t.tensor)):
                physical = dims = list(options.input_shapes.get(t.name, options.input_shapes.get(
                    t.tensor)))
                dims = [physical[0], *physical[2:], physical[1]]
            given = b.input(t.name, np_dtype, physical)
            given.metadata_props[SOURCE_PERM_KEY] = ",".join(map(str, to_source))
            with b.layer(None):
                value = b.op("Transpose", given, perm=to_source, name=f"{t.name}/nhwc")
            value.type = given.type
            value.shape = ir.Shape(dims)
            io["inputs"][given.name] = t.tensor
        else:
            value = b.input(t.name, np_dtype, dims)
            io["inputs"][value.name] = t.tensor
        name, idx = main.parse(t.tensor)
        outs = main.values.setdefault(name, [])
        while len(outs) <= idx:
            outs.append(None)
        outs[idx] = value

    tr.run(main, [main.parse(t.tensor)[0] for t in outputs], stops)
    for t in outputs:
        value = tr.value(main, t.tensor)
        if isinstance(value, Resource):
            raise InvalidModelError(f"output {t.name!r} is a variable handle, not a tensor",
                                    path=source.path)
        out = b.output(value, t.name)
        io["outputs"][out.name] = t.tensor
    _sweep_dead_nodes(b.graph)
    for name, value in list(b.graph.initializers.items()):
        if not value.uses() and value not in b.graph.outputs:
            del b.graph.initializers[name]  # weights that were re-laid-out or not needed
    model = b.build(doc=f"converted from TensorFlow {source.kind} {source.name!r}")
    if source.mapping is not None:
        keep_open(model, [source.mapping])  # weights read from it; the pipeline closes it
    model.metadata_props[IO_KEY] = json.dumps(io, separators=(",", ":"))
    return model


def _sweep_dead_nodes(graph: ir.Graph) -> None:
    """Remove the nodes nothing reads (the convolutions replaced by ones with a folded
    BatchNorm, translations of ops whose results are unused), last to first, in one pass."""
    for node in reversed(list(graph)):
        if any(o.uses() or o.is_graph_output() for o in node.outputs):
            continue
        if node.op_type in Context._NO_FOLD or node.domain not in ("", "ai.onnx"):
            continue  # (kept as the graph had them)
        graph.remove(node, safe=True)


__all__ = ["Context", "Node", "TensorRef", "build", "load", "lazy_or_array", "shape_of",
           "to_array"]
