"""Layout transposes: push Transposes down through layout-agnostic ops, merge and cancel them.

Importers of channels-last formats (TensorFlow, TFLite, Keras) make semantics exact by wrapping
every layout-sensitive op (Conv, pooling, BatchNormalization...) in a Transpose pair::

    Transpose(0,3,1,2) → Conv → Transpose(0,2,3,1) → Relu → Add(·, c[C]) → Transpose(0,3,1,2) → Conv

onnxscript's ``transpose_transpose`` rule only cancels a pair that is adjacent. This pass moves
each Transpose ``y = Transpose(x, perm=p)`` past the ops that consume ``y`` (rewriting them to
work on ``x`` and re-applying ``p`` on their results) until it meets another Transpose, where the
two merge into one (``Transpose(Transpose(x, p), q) = Transpose(x, [p[i] for i in q])``) and
vanish when the merged permutation is the identity. The graph above becomes
``Conv → Relu → Add(·, c[C,1,1]) → Conv``.

Ops a Transpose is pushed through (``p`` the permutation, ``R`` the rank):

- element-wise unary ops (Relu, Sigmoid, Tanh, LeakyRelu, Clip, Cast, Erf, ...): unchanged;
- broadcasting ops (Add, Sub, Mul, Div, Pow, Max, Min, Where, PRelu, comparisons, ...): a
  constant operand is reshaped to rank ``R`` and permuted by ``p``'s inverse; an operand that is
  itself a Transpose with the same ``p`` is replaced by that Transpose's input; an operand of
  all-ones shape stays; any other operand of rank ``R`` gets the inverse Transpose (only where
  the count still drops);
- Concat (``axis → p[axis]``), Softmax/LogSoftmax/Hardmax at opset ≥ 13 (same), Split (outputs
  each get ``p``), Pad (pads permuted; attribute or constant input), Slice (constant ``axes``
  remapped, added when absent), reductions and ArgMax/ArgMin (axes remapped; with
  ``keepdims=0`` the permutation of the remaining axes follows), Squeeze and Unsqueeze (axes
  remapped, the permutation grows or shrinks), Resize (constant ``scales``/``sizes``/``roi``
  permuted; not with an ``axes`` attribute).

Two more moves that keep the count and help what follows:

- a Transpose left in front of a layout-sensitive op is pulled up to the graph input when the
  ops in between are single-consumer ops of one data input with constant operands
  (normalisation, padding), so that a Pad meets the Conv it can be absorbed into;
- a Transpose that only moves size-1 axes keeps the bytes in order, so it is a Reshape: on
  ``Reshape(s, t)`` it becomes ``Reshape(s, t permuted)`` (or ``s`` when that has the shape
  already), a Reshape consumer takes its input directly, an operand that would need such a
  Transpose gets a Reshape; conversely a Reshape that only moves size-1 axes is handled as a
  Transpose during the pass, and whatever such Transposes stand at the end become Reshapes.

Safety rules:

- A push is made only when it does not increase the number of Transpose nodes, counting those
  it removes (the pushed one once no consumer is left, operands' Transposes it makes dead, the
  ones downstream that cancel) and those it adds (one per rewritten output still used by a
  non-Transpose consumer or by a graph output, one per operand that needs the inverse). A push
  that adds an operand Transpose must strictly lower the count, so nothing oscillates; a
  count-neutral push only moves a Transpose downstream, so the pass terminates.
- A Transpose with several consumers is pushed into all of them when that pays, otherwise into
  each one where that alone pays; it stays for the rest.
- The model's interface never changes: graph inputs keep their layout and a rewritten value that
  is a graph output gets a Transpose whose output keeps the value's name (and metadata). Every
  rewritten value keeps its name on the value that holds the same data, so names that refer to
  values (per-layer verification) stay right. Shapes and types of new values are permuted from
  the old ones.
- Only the main graph is rewritten (the pass manager inlines functions first); values of unknown
  rank and constants that are graph inputs (overridable initializers) are left alone.

The same job is done by onnxruntime's transpose optimizer and tf2onnx's TransposeOptimizer; this
is a separate implementation on onnx_ir.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from modelport.graph_ir.layout import compose, invert
from modelport.graph_ir.passes.manager import register_pass
from modelport.graph_ir.tensors import SMALL_TENSOR_ELEMENTS, lazy_tensor

Perm = tuple[int, ...]
_SUFFIX = re.compile(r"(_nchw\d+)+$")

UNARY = frozenset({
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BitwiseNot", "Cast", "Ceil",
    "Celu", "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish",
    "Identity", "IsInf", "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal",
    "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign",
    "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
})
# Clip: input 0 is the data, min/max are scalars that stay as they are.
SCALAR_EXTRA_INPUTS = frozenset({"Clip"})
BROADCAST = frozenset({
    "Add", "And", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Div", "Equal",
    "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Max", "Mean", "Min", "Mod", "Mul",
    "Or", "Pow", "PRelu", "Sub", "Sum", "Where", "Xor",
})
REDUCE = frozenset({
    "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
})
ARG = frozenset({"ArgMax", "ArgMin"})
SOFTMAX = frozenset({"Softmax", "LogSoftmax", "Hardmax"})


def _is_identity(perm) -> bool:
    return list(perm) == list(range(len(perm)))


def _perm_of(node: ir.Node) -> Perm | None:
    """A Transpose's permutation (the default reverses the axes), None if the rank is unknown."""
    attr = node.attributes.get("perm")
    if attr is not None:
        return tuple(int(i) for i in attr.as_ints())
    x = node.inputs[0]
    if x is None or x.shape is None:
        return None
    return tuple(reversed(range(len(x.shape))))


def _const_tensor(value: ir.Value | None) -> ir.TensorProtocol | None:
    """The value's tensor, unread, when it is a constant no caller can override."""
    if value is None or value.is_graph_input():
        return None
    tensor = ir.convenience.get_const_tensor(value)
    if tensor is None or not all(isinstance(d, int) for d in tensor.shape):
        return None
    return tensor


def _const(value: ir.Value | None) -> np.ndarray | None:
    """A small constant's data (axes, pads, scales, shapes); None for anything else. Large
    weights are never read here: importers' tensors are read once, when they are written."""
    tensor = _const_tensor(value)
    if tensor is None or tensor.size > SMALL_TENSOR_ELEMENTS:
        return None
    return tensor.numpy()


def _ones_shape(value: ir.Value) -> bool:
    shape = value.shape
    return shape is not None and all(isinstance(d, int) and d == 1 for d in shape.dims)


def _rank(value: ir.Value | None) -> int | None:
    return None if value is None or value.shape is None else len(value.shape)


def _remaining(perm: Perm, removed: set[int]) -> Perm:
    """Permutation of what is left after removing axes ``removed`` (of the permuted value)."""
    kept = [perm[i] for i in range(len(perm)) if i not in removed]
    order = sorted(kept)
    return tuple(order.index(a) for a in kept)


def _order_kept(shape: ir.Shape | None, perm: Perm) -> bool:
    """True when transposing a value of ``shape`` by ``perm`` moves only size-1 axes: the
    bytes stay in order, so the Transpose is a Reshape."""
    if shape is None or len(shape) != len(perm):
        return False
    moved = [a for a in perm if not (isinstance(shape[a], int) and shape[a] == 1)]
    return moved == sorted(moved)


def _reshape_target(shape: ir.Shape, perm: Perm) -> np.ndarray | None:
    """The Reshape target equal to that Transpose (at most one dim unknown, written -1)."""
    target = [d if isinstance(d, int) else -1 for d in (shape[a] for a in perm)]
    return np.array(target, np.int64) if target.count(-1) <= 1 else None


def _order_kept_after(shape: ir.Shape | None, perm: Perm) -> bool:
    """``_order_kept`` for the Transpose by ``perm`` whose *result* has ``shape``."""
    if shape is None or len(shape) != len(perm):
        return False
    moved = [perm[i] for i in range(len(perm))
             if not (isinstance(shape[i], int) and shape[i] == 1)]
    return moved == sorted(moved)


def _matches(shape: ir.Shape | None, target: list[int]) -> bool:
    """True when a value of ``shape`` already has the shape Reshape ``target`` gives (a single
    -1 stands for the one dim left: the element counts agree)."""
    return shape is not None and len(shape) == len(target) and target.count(-1) <= 1 \
        and all(t == -1 or (isinstance(d, int) and d == t) for d, t in zip(shape.dims, target))


def _reshape_source(value: ir.Value, target: list[int]) -> ir.Value | None:
    """``s`` when ``value = Reshape(s, ·)`` and ``s`` has the shape of ``Reshape(value,
    target)``: reshaping back gives ``s`` itself."""
    producer = value.producer()
    if producer is None or producer.op_type != "Reshape" or producer.domain not in ("", "ai.onnx") \
            or producer.inputs[0] is None:
        return None
    source = producer.inputs[0]
    return source if _matches(source.shape, target) else None


def _plain_reshape_use(use) -> bool:
    """A Reshape reading the value as data with a constant target without 0 (which would copy
    an input dim): the layout of its input does not matter when the bytes are in order."""
    node = use.node
    if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or use.idx != 0 \
            or len(node.inputs) < 2:
        return False
    target = _const(node.inputs[1])
    return target is not None and not (target == 0).any()


def _reshape_as_perm(node: ir.Node) -> Perm | None:
    """The permutation a Reshape amounts to when it only moves size-1 axes, else None."""
    if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2 \
            or node.inputs[0] is None:
        return None
    target = _const(node.inputs[1])
    src, dst = node.inputs[0].shape, node.outputs[0].shape
    if target is None or (target == 0).any() or src is None or dst is None \
            or len(src) != len(dst) or target.size != len(dst):
        return None

    def one(d) -> bool:
        return isinstance(d, int) and d == 1

    src_big = [i for i, d in enumerate(src.dims) if not one(d)]
    dst_big = [j for j, d in enumerate(dst.dims) if not one(d)]
    if len(src_big) != len(dst_big):
        return None
    unknown = 0
    for i, j in zip(src_big, dst_big):
        a, b = src.dims[i], dst.dims[j]
        if isinstance(a, int) and isinstance(b, int):
            if a != b:
                return None
        elif int(target[j]) == -1:
            unknown += 1  # the -1 takes what the other dims leave: the same dim
        else:
            return None
    if unknown > 1:
        return None
    perm = [0] * len(dst)
    for i, j in zip(src_big, dst_big):
        perm[j] = i
    for i, j in zip([i for i in range(len(src)) if one(src.dims[i])],
                    [j for j in range(len(dst)) if one(dst.dims[j])]):
        perm[j] = i
    return None if _is_identity(perm) else tuple(perm)


def _producer_transpose(value: ir.Value) -> ir.Node | None:
    node = value.producer()
    if node is None or node.op_type != "Transpose" or node.domain not in ("", "ai.onnx"):
        return None
    return node


# -- plans: what a push would do, computed before anything changes -----------------------------


@dataclasses.dataclass
class _In:
    """How one input of the rewritten node is obtained."""

    kind: str  # "keep", "value" (another value), "const" (new array), "transpose", "reshape"
    value: ir.Value | None = None
    array: np.ndarray | None = None
    perm: Perm | None = None
    tensor: ir.TensorProtocol | None = None  # a lazy constant (instead of array)


@dataclasses.dataclass
class _Plan:
    node: ir.Node
    inputs: list[_In]
    attributes: dict[str, ir.Attr]
    out_perms: list[Perm | None]  # per output: the Transpose that restores it (None: none)
    cost: int = 0
    inserted: bool = False  # an operand Transpose is added
    dead: set[int] = dataclasses.field(default_factory=set)  # id() of Transposes made dead


class _Planner:
    """Builds the plan for pushing ``y = Transpose(x, p)`` through one consumer."""

    def __init__(self, y: ir.Value, x: ir.Value, perm: Perm, opset: int) -> None:
        self.y, self.x, self.perm, self.opset = y, x, perm, opset
        # Consumers of y pushed together: id(node) -> the permutations of its outputs. Their
        # results reach each other already in x's layout (the swish idiom: Mul(y, Sigmoid(y))).
        self.group: dict[int, list[Perm | None] | None] = {}
        self.rank = len(perm)
        self.inv = tuple(invert(list(perm)))

    # operands -------------------------------------------------------------------------------
    def operand(self, plan: _Plan, value: ir.Value | None, exact_rank: bool = False) -> _In | None:
        """``value`` brought into ``x``'s layout, or None when that cannot be done."""
        if value is None:
            return _In("keep")
        if value is self.y:
            return _In("value", self.x)
        producer = value.producer()
        if producer is not None and id(producer) in self.group and (
                self.group[id(producer)] is None
                or self.group[id(producer)][value.index()] == self.perm):
            return _In("keep")  # estimate only: the plan is made again when it is applied
        rank = _rank(value)
        tensor = _const_tensor(value)
        if tensor is not None:
            shape = tuple(int(d) for d in tensor.shape)
            if len(shape) > self.rank or (exact_rank and len(shape) != self.rank):
                return None
            if all(d == 1 for d in shape):
                return _In("keep")
            full = (1,) * (self.rank - len(shape)) + shape
            moved = [full[i] for i in self.inv]
            # Leading size-1 axes broadcast anyway: keep the constant as small as it was.
            lead = 0
            while lead < self.rank - len(shape) and moved[lead] == 1:
                lead += 1
            final = tuple(moved[lead:])
            inv = self.inv

            def read() -> np.ndarray:
                array = np.asarray(tensor.numpy()).reshape(full).transpose(inv)
                return np.ascontiguousarray(array).reshape(final)

            if tensor.size <= SMALL_TENSOR_ELEMENTS:
                return _In("const", array=read())
            # A large weight stays lazy: permuted when the exporter reads it.
            return _In("const", tensor=lazy_tensor(read, tensor.dtype, final))
        other = _producer_transpose(value)
        q = _perm_of(other) if other is not None else None
        if q is not None and len(q) == self.rank and other.inputs[0] is not None:
            r = tuple(compose(list(q), list(self.inv)))
            only_here = all(use.node is plan.node for use in value.uses()) and \
                not value.is_graph_output()
            if only_here and id(other) not in plan.dead:
                plan.dead.add(id(other))
                plan.cost -= 1
            if _is_identity(r):
                return _In("value", other.inputs[0])
            plan.cost += 1  # a Transpose with the merged permutation
            plan.inserted = True
            return _In("transpose", other.inputs[0], perm=r)
        if rank is None or rank > self.rank:
            return None
        if _ones_shape(value) and not exact_rank:
            return _In("keep")
        if rank != self.rank:
            return None
        plan.inserted = True
        if _order_kept(value.shape, self.inv):
            target = _reshape_target(value.shape, self.inv)
            if target is not None:  # a Reshape does it (squeeze-excite vectors)
                source = _reshape_source(value, [int(t) for t in target])
                if source is not None:
                    return _In("value", source)
                return _In("reshape", value, array=target, perm=self.inv)
        plan.cost += 1
        return _In("transpose", value, perm=self.inv)

    def data_only(self, node: ir.Node, positions: set[int]) -> bool:
        """True when ``y`` feeds ``node`` only at the given input positions."""
        return all(i in positions for i, v in enumerate(node.inputs) if v is self.y)

    def new_plan(self, node: ir.Node) -> _Plan:
        return _Plan(node, [_In("keep") for _ in node.inputs], {}, [self.perm] * len(node.outputs))

    def axis(self, a: int) -> int:
        return a + self.rank if a < 0 else a

    # per op family ------------------------------------------------------------------------
    def plan(self, node: ir.Node) -> _Plan | None:
        if node.domain not in ("", "ai.onnx"):
            return None
        op = node.op_type
        handler = _HANDLERS.get(op)
        if handler is None:
            if op in UNARY or op in SCALAR_EXTRA_INPUTS:
                handler = _Planner.unary
            elif op in BROADCAST:
                handler = _Planner.broadcast
            elif op in REDUCE or op in ARG:
                handler = _Planner.reduce
            elif op in SOFTMAX:
                handler = _Planner.softmax
            else:
                return None
        return handler(self, node)

    def unary(self, node: ir.Node) -> _Plan | None:
        if not self.data_only(node, {0}):
            return None
        plan = self.new_plan(node)
        plan.inputs[0] = _In("value", self.x)
        return plan

    def broadcast(self, node: ir.Node) -> _Plan | None:
        if any(_rank(o) not in (None, self.rank) for o in node.outputs):
            return None
        plan = self.new_plan(node)
        for i, v in enumerate(node.inputs):
            got = self.operand(plan, v)
            if got is None:
                return None
            plan.inputs[i] = got
        return plan

    def concat(self, node: ir.Node) -> _Plan | None:
        plan = self.new_plan(node)
        for i, v in enumerate(node.inputs):
            got = self.operand(plan, v, exact_rank=True)
            if got is None:
                return None
            plan.inputs[i] = got
        a = self.axis(node.attributes["axis"].as_int())
        plan.attributes["axis"] = ir.AttrInt64("axis", self.perm[a])
        return plan

    def softmax(self, node: ir.Node) -> _Plan | None:
        if self.opset < 13:  # before 13 these flatten the trailing axes: layout-sensitive
            return None
        plan = self.unary(node)
        if plan is not None:
            attr = node.attributes.get("axis")
            a = self.axis(attr.as_int() if attr is not None else -1)
            plan.attributes["axis"] = ir.AttrInt64("axis", self.perm[a])
        return plan

    def _axes(self, node: ir.Node, index: int) -> tuple[list[int] | None, str]:
        """The node's axes and where they are: ("attr"), ("input") or ("absent")."""
        attr = node.attributes.get("axes")
        if attr is not None:
            return [int(a) for a in attr.as_ints()], "attr"
        if len(node.inputs) > index and node.inputs[index] is not None:
            array = _const(node.inputs[index])
            return (None if array is None else [int(a) for a in array.reshape(-1)]), "input"
        return [], "absent"

    def _set_axes(self, plan: _Plan, where: str, index: int, axes: list[int]) -> None:
        if where == "attr":
            plan.attributes["axes"] = ir.AttrInt64s("axes", axes)
        else:
            while len(plan.inputs) <= index:
                plan.inputs.append(_In("keep"))
            plan.inputs[index] = _In("const", array=np.array(axes, np.int64))

    def reduce(self, node: ir.Node) -> _Plan | None:
        if not self.data_only(node, {0}):
            return None
        plan = self.new_plan(node)
        plan.inputs[0] = _In("value", self.x)
        keepdims = node.attributes.get("keepdims")
        keep = True if keepdims is None else bool(keepdims.as_int())
        if node.op_type in ARG:
            attr = node.attributes.get("axis")
            a = self.axis(attr.as_int() if attr is not None else 0)
            plan.attributes["axis"] = ir.AttrInt64("axis", self.perm[a])
            removed = {a}
        else:
            axes, where = self._axes(node, 1)
            if axes is None:
                return None
            if not axes:
                noop = node.attributes.get("noop_with_empty_axes")
                if noop is not None and noop.as_int():
                    return plan  # an identity
                # Reduces everything: the result has no layout left.
                plan.out_perms = [None]
                return plan
            removed = {self.axis(a) for a in axes}
            self._set_axes(plan, where, 1, sorted(self.perm[a] for a in removed))
        if not keep:
            rest = _remaining(self.perm, removed)
            plan.out_perms = [None if _is_identity(rest) else rest]
        return plan

    def split(self, node: ir.Node) -> _Plan | None:
        if not self.data_only(node, {0}):
            return None
        plan = self.new_plan(node)
        plan.inputs[0] = _In("value", self.x)
        attr = node.attributes.get("axis")
        a = self.axis(attr.as_int() if attr is not None else 0)
        plan.attributes["axis"] = ir.AttrInt64("axis", self.perm[a])
        return plan

    def pad(self, node: ir.Node) -> _Plan | None:
        if not self.data_only(node, {0}) or (len(node.inputs) > 3 and node.inputs[3] is not None):
            return None
        plan = self.new_plan(node)
        plan.inputs[0] = _In("value", self.x)
        attr = node.attributes.get("pads")
        pads = [int(v) for v in attr.as_ints()] if attr is not None else None
        if pads is None:
            array = _const(node.inputs[1]) if len(node.inputs) > 1 else None
            if array is None:
                return None
            pads = [int(v) for v in array.reshape(-1)]
        if len(pads) != 2 * self.rank:
            return None
        new = [0] * (2 * self.rank)
        for i, a in enumerate(self.perm):
            new[a] = pads[i]
            new[a + self.rank] = pads[i + self.rank]
        if attr is not None:
            plan.attributes["pads"] = ir.AttrInt64s("pads", new)
        else:
            plan.inputs[1] = _In("const", array=np.array(new, np.int64))
        return plan

    def slice(self, node: ir.Node) -> _Plan | None:
        if self.opset < 10 or not self.data_only(node, {0}):
            return None
        starts = _const(node.inputs[1])
        if starts is None:
            return None
        axes, where = self._axes(node, 3)
        if axes is None:
            return None
        if where == "absent":
            axes = list(range(starts.size))
        plan = self.new_plan(node)
        plan.inputs[0] = _In("value", self.x)
        self._set_axes(plan, "input", 3, [self.perm[self.axis(a)] for a in axes])
        return plan

    def squeeze(self, node: ir.Node) -> _Plan | None:
        if not self.data_only(node, {0}):
            return None
        axes, where = self._axes(node, 1)
        if axes is None:
            return None
        if where == "absent":
            if self.y.shape is None or not all(isinstance(d, int) for d in self.y.shape.dims):
                return None
            axes = [i for i, d in enumerate(self.y.shape.dims) if d == 1]
            where = "attr" if self.opset < 13 else "input"
        removed = {self.axis(a) for a in axes}
        plan = self.new_plan(node)
        plan.inputs[0] = _In("value", self.x)
        self._set_axes(plan, where, 1, sorted(self.perm[a] for a in removed))
        rest = _remaining(self.perm, removed)
        plan.out_perms = [None if _is_identity(rest) else rest]
        return plan

    def unsqueeze(self, node: ir.Node) -> _Plan | None:
        if not self.data_only(node, {0}):
            return None
        axes, where = self._axes(node, 1)
        if not axes:
            return None
        out_rank = self.rank + len(axes)
        added = {a + out_rank if a < 0 else a for a in axes}
        old = [j for j in range(out_rank) if j not in added]
        q = list(range(out_rank))
        for m, j in enumerate(old):
            q[j] = old[self.perm[m]]
        plan = self.new_plan(node)
        plan.inputs[0] = _In("value", self.x)
        plan.out_perms = [None if _is_identity(q) else tuple(q)]
        return plan

    def resize(self, node: ir.Node) -> _Plan | None:
        if self.opset < 11 or "axes" in node.attributes or not self.data_only(node, {0}):
            return None
        plan = self.new_plan(node)
        plan.inputs[0] = _In("value", self.x)
        for index, per_axis in ((1, 2), (2, 1), (3, 1)):  # roi holds starts then ends
            if len(node.inputs) <= index or node.inputs[index] is None:
                continue
            array = _const(node.inputs[index])
            if array is None:
                return None
            if array.size == 0:
                continue
            if array.size != per_axis * self.rank:
                return None
            parts = array.reshape(per_axis, self.rank)
            moved = np.empty_like(parts)
            moved[:, list(self.perm)] = parts
            plan.inputs[index] = _In("const", array=moved.reshape(-1))
        return plan


# Ops a Transpose is pulled up through on its way to the graph input: those that keep the
# tensor's size (more or less), so the Transpose does not get more expensive.
_PULL_THROUGH = UNARY | SCALAR_EXTRA_INPUTS | BROADCAST | {"Pad"}

_HANDLERS: dict[str, Callable[[_Planner, ir.Node], _Plan | None]] = {
    "Concat": _Planner.concat,
    "Split": _Planner.split,
    "Pad": _Planner.pad,
    "Slice": _Planner.slice,
    "Squeeze": _Planner.squeeze,
    "Unsqueeze": _Planner.unsqueeze,
    "Resize": _Planner.resize,
}


# -- the pass -----------------------------------------------------------------------------------


class TransposePushPass(ir.passes.InPlacePass):
    """Push Transposes down through layout-agnostic ops; merge and cancel them (see module)."""

    max_sweeps = 64

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.graph = model.graph
        self.opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 17))
        self.names = {v.name for v in self.graph.inputs} | set(self.graph.initializers)
        for node in self.graph.all_nodes():  # value and node names, subgraphs included
            self.names.update(v.name for v in node.outputs if v.name)
            if node.name:
                self.names.add(node.name)
        self.counter = 0
        modified = False
        # Reshapes that only move size-1 axes are Transposes: they move and cancel like them
        # (importers write squeeze-excite vectors so); what stays becomes a Reshape again.
        virtual = set()
        for node in list(self.graph):
            perm = _reshape_as_perm(node)
            if perm is not None:
                virtual.add(id(self.replace_by_transpose(node, perm)))
        for _ in range(self.max_sweeps):
            changed = False
            for node in list(self.graph):
                if node.op_type == "Transpose" and node.domain in ("", "ai.onnx") \
                        and node.graph is self.graph:
                    changed |= self.visit(node)
            modified |= changed
            if not changed:
                break
        for node in list(self.graph):
            if node.op_type == "Transpose" and node.domain in ("", "ai.onnx"):
                if self.replace_by_reshape(node) and id(node) not in virtual:
                    modified = True
        return ir.passes.PassResult(model, modified)

    def replace_by_transpose(self, node: ir.Node, perm: Perm) -> ir.Node:
        t = self.transpose(node.inputs[0], perm, None, node)
        self.graph.insert_before(node, t)
        self.rename_onto(node.outputs[0], t.outputs[0])
        t.outputs[0].shape = node.outputs[0].shape
        self.replace_output(node.outputs[0], t.outputs[0])
        self.graph.remove(node, safe=True)
        return t

    def replace_by_reshape(self, node: ir.Node) -> bool:
        """A Transpose that only moves size-1 axes becomes a Reshape (no data moves)."""
        x, y = node.inputs[0], node.outputs[0]
        perm = _perm_of(node)
        if x is None or perm is None or not _order_kept(x.shape, perm):
            return False
        target = _reshape_target(x.shape, perm)
        if target is None:
            return False
        self.reshape_instead(node, x, target, f"{y.name}_shape")
        return True

    # helpers ------------------------------------------------------------------------------
    def initializer(self, base: str, tensor: ir.TensorProtocol) -> ir.Value:
        """A new initializer holding ``tensor``, named after ``base``."""
        value = ir.Value(name=self.fresh(base), shape=ir.Shape(tensor.shape),
                         type=ir.TensorType(tensor.dtype), const_value=tensor)
        self.graph.register_initializer(value)
        return value

    def reshape_instead(self, node: ir.Node, source: ir.Value, target: np.ndarray,
                        base: str) -> None:
        """Replace ``node`` (one output) by ``Reshape(source, target)``, the new output taking
        its name, its place among the graph outputs and its metadata."""
        y = node.outputs[0]
        out = ir.Value(name=self.fresh(y.name), type=y.type, shape=y.shape)
        reshape = ir.Node("", "Reshape", [source, self.initializer(base, ir.tensor(target))],
                          outputs=[out], name=self.fresh(node.name or "Reshape"),
                          metadata_props=dict(node.metadata_props))
        self.graph.insert_before(node, reshape)
        self.rename_onto(y, out)
        self.replace_output(y, out)
        self.graph.remove(node, safe=True)

    def fresh(self, base: str | None) -> str:
        base = _SUFFIX.sub("", base or "v")
        while True:
            self.counter += 1
            name = f"{base}_nchw{self.counter}"
            if name not in self.names:
                self.names.add(name)
                return name

    def transpose(self, x: ir.Value, perm: Perm, name: str | None, like: ir.Node | None
                  ) -> ir.Node:
        """A Transpose node of ``x`` (not inserted), output shape/type derived from ``x``."""
        out = ir.Value(name=name or self.fresh(x.name), type=x.type)
        if x.shape is not None:
            out.shape = ir.Shape([x.shape[i] for i in perm])
        meta = dict(like.metadata_props) if like is not None else {}
        return ir.Node("", "Transpose", [x], [ir.AttrInt64s("perm", list(perm))],
                       outputs=[out], name=self.fresh("Transpose"), metadata_props=meta)

    def replace_output(self, old: ir.Value, new: ir.Value) -> None:
        """Uses and graph-output slots of ``old`` go to ``new``; ``new`` takes the name."""
        old.replace_all_uses_with(new, replace_graph_outputs=True)

    def remove_if_dead(self, node: ir.Node) -> bool:
        if node.graph is self.graph and not any(o.uses() or o.is_graph_output()
                                                for o in node.outputs):
            self.graph.remove(node, safe=True)
            return True
        return False

    # one Transpose ----------------------------------------------------------------------------
    def visit(self, node: ir.Node) -> bool:
        x, y = node.inputs[0], node.outputs[0]
        perm = _perm_of(node)
        if x is None or perm is None:
            return False
        changed = False
        # A Transpose of a Transpose: one Transpose.
        inner = _producer_transpose(x)
        if inner is not None and _perm_of(inner) is not None and inner.inputs[0] is not None:
            perm = tuple(compose(list(_perm_of(inner)), list(perm)))
            x = inner.inputs[0]
            node.replace_input_with(0, x)
            node.attributes["perm"] = ir.AttrInt64s("perm", list(perm))
            self.remove_if_dead(inner)
            changed = True
        if _is_identity(perm):
            if self.bypass(node):
                return True
            return changed
        if self.remove_if_dead(node):
            return True
        if self.fold_into_reshape(node, perm):
            return True
        if _order_kept(x.shape, perm):
            reshapes = [use for use in y.uses() if _plain_reshape_use(use)]
            for use in reshapes:  # Reshape(Transpose(x)) = Reshape(x) when bytes keep order
                use.node.replace_input_with(use.idx, x)
                self.drop_noop_reshape(use.node)
            if reshapes:
                self.remove_if_dead(node)
                return True
        planner = _Planner(y, x, perm, self.opset)
        consumers = list(dict.fromkeys(use.node for use in y.uses()))
        plans: dict[int, _Plan] = {}
        for consumer in consumers:
            if consumer.op_type == "Transpose" or consumer.graph is not self.graph:
                continue  # (a consumer inside a subgraph is never rewritten)
            plan = planner.plan(consumer)
            if plan is not None:
                self.score_outputs(plan)
                plans[id(consumer)] = plan
        others = [c for c in consumers if c.op_type != "Transpose"]
        everyone = bool(others) and not y.is_graph_output() \
            and all(c.graph is self.graph for c in others)
        if everyone and len(others) > 1:
            # Estimate again knowing that all of them move: they may feed one another. First
            # assuming each result comes out in x's layout, then with the layouts they get.
            group_plans = dict(plans)
            planner.group = {id(c): None for c in others}
            for _ in range(2):
                for consumer in others:
                    plan = planner.plan(consumer)
                    if plan is None:
                        everyone = False
                        break
                    group_plans[id(consumer)] = plan
                if not everyone:
                    break
                planner.group = {key: plan.out_perms for key, plan in group_plans.items()}
            if everyone:
                for plan in group_plans.values():
                    self.score_outputs(plan, planner.group)
            planner.group = {}
        else:
            group_plans = plans
        everyone = everyone and len(group_plans) == len(others)
        if everyone:
            order = {id(n): i for i, n in enumerate(self.graph)}
            others.sort(key=lambda n: order[id(n)])
            # (group_plans are estimates only; each consumer is planned again when applied)
            total = -1 + sum(p.cost for p in group_plans.values())
            inserted = any(p.inserted for p in group_plans.values())
            # A count-neutral move only goes downstream, and never takes a Transpose away
            # from a graph input (where pull_to_input puts it).
            if total < 0 or (total == 0 and not inserted and not x.is_graph_input()):
                # Merge the Transpose consumers first, then rewrite the others one by one
                # (planned afresh: an earlier rewrite can only make a later one cheaper).
                self.merge_transpose_consumers(node)
                for consumer in others:
                    if consumer.graph is not self.graph:
                        continue
                    plan = planner.plan(consumer)
                    if plan is None:
                        break
                    self.apply(plan, x)
                self.remove_if_dead(node)
                return True
        for consumer in others:
            plan = plans.get(id(consumer))
            if plan is not None and plan.cost < 0:
                self.apply(plan, x)
                return True
        if any(c.op_type == "Transpose" for c in consumers):
            self.merge_transpose_consumers(node)
            self.remove_if_dead(node)
            return True
        return self.pull_to_input(node, perm) or changed

    def pull_to_input(self, node: ir.Node, perm: Perm) -> bool:
        """Move a Transpose that stayed (e.g. before a Conv) up to the graph input when only
        single-consumer ops of one data input with constant operands lie in between
        (normalisation, padding): the count is unchanged, the graph's interface too, and the
        ops it passes can then fuse with what follows (Pad into Conv)."""
        y = node.outputs[0]
        if y.is_graph_output() or _order_kept(node.inputs[0].shape, perm):
            return False  # (one that only moves size-1 axes ends as a Reshape where it is)
        value, user = node.inputs[0], node
        inverse = tuple(invert(list(perm)))
        while not value.is_graph_input():
            producer = value.producer()
            if producer is None or len(producer.outputs) != 1 or value.is_graph_output() \
                    or any(use.node is not user for use in value.uses()):
                return False
            data = [v for v in producer.inputs if v is not None and _const_tensor(v) is None]
            if producer.op_type not in _PULL_THROUGH or producer.domain not in ("", "ai.onnx") \
                    or len(data) != 1 or producer.inputs[0] is not data[0] \
                    or _rank(data[0]) not in (None, len(perm)):
                return False
            # The move below must be possible at every step: plan it (with a stand-in value).
            plan = _Planner(data[0], ir.Value(name="_"), inverse, self.opset).plan(producer)
            if plan is None or plan.inserted or plan.out_perms != [inverse]:
                return False
            value, user = data[0], producer
        # The ops passed keep the rank (the plans check it), so the input's rank is everyone's.
        if value is node.inputs[0] or _rank(value) != len(perm):
            return False
        moved = False
        while not node.inputs[0].is_graph_input():
            producer = node.inputs[0].producer()
            source = producer.inputs[0]
            pulled = self.transpose(source, perm, None, node)
            planner = _Planner(source, pulled.outputs[0], inverse, self.opset)
            plan = planner.plan(producer)
            if plan is None or plan.inserted or plan.out_perms != [inverse]:
                return moved
            self.graph.insert_before(producer, pulled)
            self.apply(plan, pulled.outputs[0])  # node becomes an identity Transpose
            if not self.bypass(node):
                return True
            node, moved = pulled, True
        return moved

    def fold_into_reshape(self, node: ir.Node, perm: Perm) -> bool:
        """``Transpose(Reshape(s, t))`` where the Transpose only moves size-1 axes keeps the
        bytes in order: it is ``Reshape(s, t permuted)``, and just ``s`` where that has the
        shape already (channels-last importers reshape squeeze-excite vectors this way)."""
        x, y = node.inputs[0], node.outputs[0]
        reshape = x.producer()
        if reshape is None or reshape.op_type != "Reshape" or reshape.domain not in ("", "ai.onnx") \
                or len(reshape.inputs) < 2 or reshape.inputs[0] is None:
            return False
        target = _const(reshape.inputs[1])
        if target is None or target.ndim != 1 or target.size != len(perm) or (target == 0).any():
            return False
        target = [int(d) for d in target]
        moved = [a for a in perm if target[a] != 1]
        if moved != sorted(moved):
            return False
        new_target = [target[a] for a in perm]
        source = reshape.inputs[0]
        if _matches(source.shape, new_target):
            # Reshape(s, t) then the Transpose give back s itself.
            if not y.is_graph_output():
                self.replace_output(y, source)
                self.graph.remove(node, safe=True)
                self.remove_if_dead(reshape)
                return True
        self.reshape_instead(node, source, np.array(new_target, np.int64),
                             f"{reshape.name or 'Reshape'}_shape")
        self.remove_if_dead(reshape)
        return True

    def drop_noop_reshape(self, node: ir.Node) -> None:
        """Remove a Reshape whose input already has the target shape."""
        target = _const(node.inputs[1])
        out = node.outputs[0]
        if target is None or out.is_graph_output() \
                or not _matches(node.inputs[0].shape, [int(t) for t in target.reshape(-1)]):
            return
        self.replace_output(out, node.inputs[0])
        self.graph.remove(node, safe=True)

    def merge_transpose_consumers(self, node: ir.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        perm = _perm_of(node)
        for use in list(y.uses()):
            other = use.node
            if other.op_type != "Transpose" or other is node:
                continue
            q = _perm_of(other)
            if q is None:
                continue
            other.replace_input_with(0, x)
            merged = compose(list(perm), list(q))
            other.attributes["perm"] = ir.AttrInt64s("perm", merged)
            if _is_identity(merged):
                self.bypass(other)

    def bypass(self, node: ir.Node) -> bool:
        """Remove an identity Transpose; False where a graph output forbids it."""
        x, y = node.inputs[0], node.outputs[0]
        if y.is_graph_output():
            if x.is_graph_input() or x.is_graph_output() or x.is_initializer() \
                    or x.producer() is None:
                return False
            name = y.name
            y.name = self.fresh(name)
            x.name = name
            for key, text in y.metadata_props.items():
                x.metadata_props.setdefault(key, text)
        self.replace_output(y, x)
        self.graph.remove(node, safe=True)
        return True

    def score_outputs(self, plan: _Plan, group: dict[int, list[Perm | None]] | None = None
                      ) -> None:
        """Add to the plan's cost the Transposes its outputs need, less those that cancel."""
        for out, perm in zip(plan.node.outputs, plan.out_perms):
            if perm is None:
                continue
            needed = out.is_graph_output()
            for use in out.uses():
                if group and id(use.node) in group:
                    continue  # pushed as well: takes this output in the new layout
                if use.node.op_type == "Transpose" and (q := _perm_of(use.node)) is not None:
                    if _is_identity(compose(list(perm), list(q))):
                        plan.cost -= 1
                elif not (_plain_reshape_use(use) and _order_kept_after(out.shape, perm)):
                    needed = True
            plan.cost += int(needed)

    def apply(self, plan: _Plan, x: ir.Value) -> None:
        node = plan.node
        old_inputs = list(node.inputs)
        before: list[ir.Node] = []
        inputs: list[ir.Value | None] = []
        for old, how in zip([*old_inputs, *[None] * len(plan.inputs)], plan.inputs):
            if how.kind == "keep":
                inputs.append(old)
            elif how.kind == "value":
                inputs.append(how.value)
            elif how.kind == "const":
                tensor = how.tensor if how.tensor is not None else ir.tensor(how.array)
                inputs.append(self.initializer(
                    (old.name if old is not None else None) or
                    f"{node.name or node.op_type}_axes", tensor))
            elif how.kind == "reshape":
                target = self.initializer(f"{how.value.name}_shape", ir.tensor(how.array))
                out = ir.Value(name=self.fresh(how.value.name), type=how.value.type,
                               shape=ir.Shape([how.value.shape[a] for a in how.perm]))
                before.append(ir.Node("", "Reshape", [how.value, target], outputs=[out],
                                      name=self.fresh("Reshape"),
                                      metadata_props=dict(node.metadata_props)))
                inputs.append(out)
            else:
                t = self.transpose(how.value, how.perm, None, node)
                before.append(t)
                inputs.append(t.outputs[0])
        while inputs and inputs[-1] is None:
            inputs.pop()
        attributes = dict(node.attributes)
        attributes.update(plan.attributes)
        new_outputs = []
        for out, perm in zip(node.outputs, plan.out_perms):
            value = ir.Value(name=self.fresh(out.name), type=out.type)
            if out.shape is not None:
                if perm is None:
                    value.shape = out.shape
                else:
                    dims = [None] * len(perm)
                    for i, a in enumerate(perm):
                        dims[a] = out.shape[i]
                    value.shape = ir.Shape(dims)
            new_outputs.append(value)
        rewritten = ir.Node(node.domain, node.op_type, inputs, attributes.values(),
                            outputs=new_outputs, name=node.name, overload=node.overload,
                            metadata_props=dict(node.metadata_props))
        self.graph.insert_before(node, [*before, rewritten])
        after: list[ir.Node] = []
        for out, new, perm in zip(node.outputs, new_outputs, plan.out_perms):
            if perm is None:
                self.rename_onto(out, new)
                self.replace_output(out, new)
                continue
            users = [use for use in out.uses()]
            reshapes = [u for u in users if _plain_reshape_use(u)
                        and _order_kept_after(out.shape, perm)]
            plain = [u for u in users if u not in reshapes and (
                u.node.op_type != "Transpose" or _perm_of(u.node) is None)]
            for use in reshapes:
                use.node.replace_input_with(use.idx, new)
                self.drop_noop_reshape(use.node)
            for use in users:
                if use in plain or use in reshapes:
                    continue
                other = use.node
                merged = compose(list(perm), list(_perm_of(other)))
                other.replace_input_with(use.idx, new)
                other.attributes["perm"] = ir.AttrInt64s("perm", merged)
            if plain or out.is_graph_output():
                t = self.transpose(new, perm, None, node)
                self.rename_onto(out, t.outputs[0])
                t.outputs[0].shape = out.shape
                after.append(t)
                self.replace_output(out, t.outputs[0])
        if after:
            self.graph.insert_after(rewritten, after)
        self.graph.remove(node, safe=True)
        for value in inputs:
            producer = value.producer() if value is not None else None
            if producer is not None and producer.op_type == "Transpose":
                self.remove_if_dead(producer)
        for old in old_inputs:
            producer = old.producer() if old is not None else None
            if producer is not None and producer.op_type == "Transpose":
                self.remove_if_dead(producer)
        # Identity Transposes left by merges downstream are removed when the sweep reaches them.

    def rename_onto(self, old: ir.Value, new: ir.Value) -> None:
        """``new`` holds ``old``'s data from now on: it takes the name and the metadata."""
        name = old.name
        old.name = self.fresh(name)
        new.name = name
        for key, text in old.metadata_props.items():
            new.metadata_props.setdefault(key, text)


@register_pass(1, "layout_transposes", late=True)
def layout_pass() -> ir.passes.PassBase:
    return TransposePushPass()
