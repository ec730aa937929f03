"""Dense layers on N-D inputs run as a 2-D Gemm.

A dense (fully-connected) layer applied to every position of a sequence is exported as::

    y = Add(MatMul(x[d1, .., dk, K], W[K, N]), b[N])        (rank of x >= 3)

onnxscript's ``matmul_add_to_gemm`` rule (-O2, :mod:`.fusions`) makes a ``Gemm`` of it only
for a 2-D ``x``. onnxruntime runs a ``Gemm`` on a 2-D view faster than the N-D ``MatMul`` and
the broadcast ``Add`` (the bias is added inside the GEMM kernel, no second pass over the
output), so this pass rewrites such layers into::

    x2 = Reshape(x, [-1, K]);  g = Gemm(x2, W, b);  y = Reshape(g, [d1, .., dk, N])

without letting the node count grow:

- one ``Reshape`` of ``x`` serves every dense layer that reads ``x`` (the query, key and
  value projections of an attention block); where ``x`` is itself made by a ``Reshape`` that
  nothing else reads (the merge of the heads before an output projection), that Reshape is
  given the 2-D target instead;
- a ``Reshape`` that reads ``y`` (the split into heads) reads ``g`` with a target that
  yields the same result; a dense layer that reads ``y`` reads ``g`` (consecutive dense layers
  stay 2-D); so does an element-wise operator of one tensor (Relu, Gelu, Clip with scalar
  bounds...) whose result is read only in these ways (the feed-forward block
  ``dense → Relu → dense`` becomes ``Reshape → Gemm → Relu → Gemm → Reshape``);
- only what reads ``y`` otherwise (and ``y`` as a graph output) gets the one ``Reshape`` back.

The rewrites are counted per connected set of layers (layers that share an input, or of which
one reads another's output) and made where the set's count does not grow: a lone layer
between other operators (a new Reshape and a Reshape back) is left alone, and so is a set
that the count would grow by. A set that keeps its count is rewritten (the output projection
of an attention block, whose input Reshape takes the 2-D target and whose output needs the
Reshape back): onnxruntime runs the Gemm form faster at the same count.

The pass runs once the other -O2 passes have reached their fixed point (``closing``): the N-D
``MatMul``/``Add`` pair is what they look for (torch's packed q/k/v split on the last axis,
for one), and the count it decides by is that of the graph they leave.

Also here, ``gemm-scale``: a ``Mul`` by a scalar constant of a ``Gemm``'s output, through
``Reshape``s and ``Transpose``s that nothing else reads (the query scaled by
``1/sqrt(head_dim)`` after its head split), goes into the Gemm's ``alpha`` and ``beta``: one
node less, and one pass less over the query in onnxruntime.

Exactly where legal: ``W`` is a 2-D constant and ``b`` a constant with ``N`` elements that
broadcasts over the last axis only (``[N]``, ``[1, N]``, ``[1, 1, N]``...), float or double;
``x``'s rank is known and at least 3; every target written back uses constant dims and at most
one ``-1`` (a dynamic batch with static other dims, the usual case; a head split's own
``-1``, as in ``[0, 0, heads, -1]``, is worked out from the static dims where the dims it
copies are all the unknown ones); a ``Reshape`` with ``allowzero=1`` and a ``0`` in its
target is not retargeted.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from modelport.graph_ir.passes.counting import CountingPass
from modelport.graph_ir.passes.manager import register_pass

_FLOATS = (ir.DataType.FLOAT, ir.DataType.DOUBLE)
_DEFAULT = ("", "ai.onnx")


@dataclasses.dataclass(eq=False)
class _Dense:
    matmul: ir.Node
    add: ir.Node
    x: ir.Value
    w: ir.Value
    bias: ir.Value
    lead: list  # x's dims but the last: int or ir.SymbolicDim
    chained: list = dataclasses.field(default_factory=list)  # dense layers that read y
    retarget: list = dataclasses.field(default_factory=list)  # (Reshape, new target, value)
    unary: list = dataclasses.field(default_factory=list)  # element-wise nodes run on 2-D
    back: list[int] | None = None  # the target of the Reshape back, when one is needed

    @property
    def y(self) -> ir.Value:
        return self.add.outputs[0]


# Element-wise operators of one tensor (Clip: and its scalar bounds), indifferent to its shape.
_UNARY = frozenset({"Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "Tanh",
                    "Softplus", "Softsign", "Gelu", "Erf", "Exp", "Log", "Abs", "Neg", "Sqrt",
                    "Reciprocal", "HardSwish", "Mish", "Sin", "Cos", "Clip", "ThresholdedRelu"})


def _unary(node: ir.Node) -> bool:
    if node.op_type not in _UNARY or node.domain not in _DEFAULT or len(node.outputs) != 1:
        return False
    return all(v is None or (v.const_value is not None and v.const_value.size == 1)
               for v in node.inputs[1:])


def _const_shape(value: ir.Value | None) -> list[int] | None:
    if value is None or value.const_value is None:
        return None
    arr = value.const_value.numpy()
    if arr.ndim != 1 or arr.dtype not in (np.int64, np.int32):
        return None
    return [int(v) for v in arr]


def _target(dims: list) -> list[int] | None:
    """A constant Reshape target for a tensor of ``dims`` from a 2-D input (no ``0``): known
    dims as they are, at most one unknown one (or ``-1``) as ``-1``."""
    out, free = [], 0
    for d in dims:
        if not isinstance(d, int) or d == -1:
            out.append(-1)
            free += 1
        elif d > 0:
            out.append(d)
        else:
            return None
    return out if free <= 1 else None


def _match(add: ir.Node) -> _Dense | None:
    if add.op_type != "Add" or add.domain not in _DEFAULT or len(add.inputs) != 2:
        return None
    for i in (0, 1):
        mm_out, bias = add.inputs[i], add.inputs[1 - i]
        mm = mm_out.producer() if mm_out is not None else None
        if mm is not None and mm.op_type == "MatMul" and mm.domain in _DEFAULT:
            break
    else:
        return None
    if len(mm_out.uses()) != 1 or mm_out.is_graph_output() or bias is None:
        return None
    x, w = mm.inputs
    if x is None or w is None or w.const_value is None or bias.const_value is None:
        return None
    if x.shape is None or len(x.shape) < 3 or x.dtype not in _FLOATS:
        return None
    if w.dtype != x.dtype or bias.dtype != x.dtype or add.outputs[0].dtype not in (None, x.dtype):
        return None
    w_shape = list(w.const_value.shape)
    if len(w_shape) != 2:
        return None
    k, n = w_shape
    if isinstance(x.shape[-1], int) and x.shape[-1] != k:
        return None
    b_shape = list(bias.const_value.shape)
    # the bias broadcasts over the last axis only, and does not add axes to the output
    if (not b_shape or len(b_shape) > len(x.shape) or b_shape[-1] != n
            or any(d != 1 for d in b_shape[:-1])):
        return None
    return _Dense(mm, add, x, w, bias, list(x.shape)[:-1])


def _retarget(reshape: ir.Node, dims: list) -> list[int] | None:
    """The constant target that makes ``reshape`` (which reads a tensor of ``dims``) give the
    same result from the 2-D view, or None."""
    shape = _const_shape(reshape.inputs[1] if len(reshape.inputs) > 1 else None)
    if shape is None:
        return None
    if 0 in shape and reshape.attributes.get_int("allowzero", 0):
        return None
    resolved = []
    for i, s in enumerate(shape):
        if s == 0:
            if i >= len(dims):
                return None
            resolved.append(dims[i])
        else:
            resolved.append(s)
    if -1 in resolved:  # [0, 0, heads, -1]: the -1 is known where the copied dims are alike
        copied = [d for d in resolved if not isinstance(d, int)]
        free = [d for d in dims if not isinstance(d, int)]
        if len(copied) == len(free) and all(a is b for a, b in zip(copied, free)):
            total = int(np.prod([d for d in dims if isinstance(d, int)]))
            known = int(np.prod([d for d in resolved if isinstance(d, int) and d != -1]))
            if known > 0 and total % known == 0:
                resolved[resolved.index(-1)] = total // known
    return _target(resolved)


class DenseToGemmPass(CountingPass):
    """N-D MatMul + bias Add to a Gemm on a 2-D view (see module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self._names: set[str] = set()

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.rewrites = 0
        graph = model.graph
        found = [d for d in (_match(n) for n in graph) if d is not None]
        if not found:
            return ir.passes.PassResult(model, False)
        layers = self._plan(found)
        if layers:
            self._names = {v.name for node in graph for v in (*node.inputs, *node.outputs)
                           if v is not None and v.name}
            self._names.update(graph.initializers)
            self._names.update(v.name for v in graph.inputs if v.name)
            self._apply(graph, layers)
        return ir.passes.PassResult(model, bool(layers))

    # -- planning -----------------------------------------------------------------------------

    def _plan(self, found: list[_Dense]) -> list[_Dense]:
        """The layers to rewrite: each feasible, in sets whose node count does not grow."""
        layers = list(found)
        while True:  # drop layers whose output cannot be given back; others may follow
            by_matmul = {id(d.matmul): d for d in layers}
            kept = [d for d in layers if self._outputs(d, by_matmul)]
            if len(kept) == len(layers):
                break
            layers = kept
        if not layers:
            return []
        groups: dict[int, list[_Dense]] = {}
        for d in layers:
            groups.setdefault(id(d.x), []).append(d)
        # connected sets: layers that share x, and a layer with those that read its output
        parent = {id(d): id(d) for d in layers}

        def root(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for members in groups.values():
            for d in members[1:]:
                parent[root(id(d))] = root(id(members[0]))
        for d in layers:
            for c in d.chained:
                parent[root(id(c))] = root(id(d))
        produced = {id(d.y) for d in layers}
        produced.update(id(u.outputs[0]) for d in layers for u in d.unary)
        net: dict[int, int] = {}
        for members in groups.values():
            first = members[0]
            cost = 0 if id(first.x) in produced else self._input_cost(first.x, members)
            net[root(id(first))] = net.get(root(id(first)), 0) + cost
        for d in layers:
            net[root(id(d))] += (d.back is not None) - 1  # Gemm for MatMul + Add, Reshape back
        return [d for d in layers if net[root(id(d))] <= 0]

    @staticmethod
    def _input_cost(x: ir.Value, members: list[_Dense]) -> int:
        """0 where x comes from a Reshape that only these layers read (it takes the 2-D
        target), else 1 (a new Reshape)."""
        prev = x.producer()
        if (prev is not None and prev.op_type == "Reshape" and prev.domain in _DEFAULT
                and not x.is_graph_output()):
            ours = {id(d.matmul) for d in members}
            if all(id(u.node) in ours for u in x.uses()):
                return 0
        return 1

    @classmethod
    def _outputs(cls, d: _Dense, by_matmul: dict[int, _Dense]) -> bool:
        """Sort what reads y: dense layers, Reshapes to retarget, element-wise operators whose
        results need nothing else (they run on the 2-D view), the rest (one Reshape back).
        False when the rest needs a Reshape back that constant dims cannot express."""
        dims = [*d.lead, d.w.const_value.shape[1]]
        d.chained, d.retarget, d.unary = [], [], []
        rest = cls._sort(d, d.y, dims, by_matmul)
        d.back = _target(dims) if rest else None
        return not rest or d.back is not None

    @classmethod
    def _sort(cls, d: _Dense, v: ir.Value, dims: list, by_matmul) -> bool:
        """Record in ``d`` what reads ``v`` and can take the 2-D view; True when something
        else reads it (or it is a graph output)."""
        rest = v.is_graph_output()
        for use in v.uses():
            node = use.node
            other = by_matmul.get(id(node))
            if other is not None and use.idx == 0:
                d.chained.append(other)
                continue
            if node.op_type == "Reshape" and node.domain in _DEFAULT and use.idx == 0:
                target = _retarget(node, dims)
                if target is not None:
                    d.retarget.append((node, target, v))
                    continue
            if use.idx == 0 and _unary(node):
                saved = len(d.chained), len(d.retarget), len(d.unary)
                d.unary.append(node)
                if not cls._sort(d, node.outputs[0], dims, by_matmul):
                    continue
                # its result would need a Reshape back of its own: it stays on the N-D tensor
                del d.chained[saved[0]:], d.retarget[saved[1]:], d.unary[saved[2]:]
            rest = True
        return rest

    # -- rewriting ----------------------------------------------------------------------------

    def _apply(self, graph: ir.Graph, layers: list[_Dense]) -> None:
        order = {id(n): i for i, n in enumerate(graph)}
        layers.sort(key=lambda d: order[id(d.add)])
        flat: dict[int, ir.Value] = {}  # id(x) -> its 2-D view
        groups: dict[int, list[_Dense]] = {}
        for d in layers:
            groups.setdefault(id(d.x), []).append(d)
        for d in layers:
            k, n = d.w.const_value.shape
            src = d.matmul.metadata_props
            x2 = flat.get(id(d.x))
            if x2 is None:
                x2 = self._flatten(graph, d, groups[id(d.x)], int(k))
                flat[id(d.x)] = x2
            bias = d.bias
            if len(bias.const_value.shape) != 1:
                bias = self._initializer(graph, d.bias, d.bias.const_value.numpy().reshape(-1))
            gemm = ir.node("Gemm", [x2, d.w, bias], num_outputs=1,
                           metadata_props=dict(d.add.metadata_props or src))
            g = gemm.outputs[0]
            g.name = self._fresh(f"{d.y.name or 'dense'}_gemm")
            g.dtype = d.y.dtype or d.x.dtype
            g.shape = ir.Shape([self._rows(x2), n])
            graph.insert_before(d.add, gemm)
            flat[id(d.y)] = g
            for node in d.unary:  # parents first; those that read y read g instead
                if node.inputs[0] is d.y:
                    node.replace_input_with(0, g)
                out = node.outputs[0]
                out.shape = ir.Shape(list(g.shape))
                flat[id(out)] = out
            for node, target, view in d.retarget:
                node.replace_input_with(0, flat[id(view)])
                node.replace_input_with(1, self._initializer(graph, node.inputs[1], target))
            if d.back is not None:
                back = ir.node("Reshape", [g, self._initializer(graph, d.y, d.back)],
                               num_outputs=1, metadata_props=dict(gemm.metadata_props))
                out = back.outputs[0]
                out.dtype, out.shape = g.dtype, d.y.shape
                graph.insert_after(gemm, back)
                ours = {id(c.matmul) for c in d.chained}
                for use in list(d.y.uses()):
                    if id(use.node) not in ours:
                        use.node.replace_input_with(use.idx, out)
                for i, v in enumerate(graph.outputs):
                    if v is d.y:
                        graph.outputs[i] = out
                # the value that stands for y takes its name
                out.name, d.y.name = d.y.name, None
            self.rewrites += 1
        old = [n for d in layers for n in (d.add, d.matmul)]
        graph.remove(old, safe=True)

    def _flatten(self, graph: ir.Graph, d: _Dense, members: list[_Dense], k: int) -> ir.Value:
        """The 2-D view [-1, K] of d.x: a retargeted producer Reshape or a new one."""
        target = self._initializer(graph, d.x, [-1, k])
        rows = [int(np.prod(d.lead))] if all(isinstance(v, int) for v in d.lead) else [None]
        if self._input_cost(d.x, members) == 0:
            prev = d.x.producer()
            prev.replace_input_with(1, target)
            out = prev.outputs[0]
        else:
            node = ir.node("Reshape", [d.x, target], num_outputs=1,
                           metadata_props=dict(d.matmul.metadata_props))
            out = node.outputs[0]
            out.name = self._fresh(f"{d.x.name or 'x'}_2d")
            out.dtype = d.x.dtype
            graph.insert_before(d.add, node)
        out.shape = ir.Shape([rows[0] if rows[0] is not None else ir.SymbolicDim(None), k])
        return out

    @staticmethod
    def _rows(x2: ir.Value):
        return x2.shape[0] if x2.shape is not None else ir.SymbolicDim(None)

    def _initializer(self, graph: ir.Graph, like: ir.Value, data) -> ir.Value:
        arr = np.asarray(data)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        name = self._fresh(f"{like.name or 'dense'}_{'target' if arr.dtype.kind == 'i' else 'flat'}")
        value = ir.Value(name=name, const_value=ir.tensor(arr, name=name))
        graph.register_initializer(value)
        return value


def _scalar(value: ir.Value | None) -> float | None:
    if value is None or value.const_value is None or value.dtype not in _FLOATS:
        return None
    arr = value.const_value.numpy()
    return float(arr.reshape(-1)[0]) if arr.size == 1 else None


def _single_use(value: ir.Value) -> bool:
    return len(value.uses()) == 1 and not value.is_graph_output()


class GemmScalePass(CountingPass):
    """A Mul by a scalar constant after a Gemm, through Reshapes and Transposes that nothing
    else reads, goes into the Gemm's alpha and beta (see module doc)."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.rewrites = 0
        graph = model.graph
        for mul in list(graph):
            if mul.op_type != "Mul" or mul.domain not in _DEFAULT or len(mul.inputs) != 2:
                continue
            for i in (0, 1):
                v, c = mul.inputs[i], _scalar(mul.inputs[1 - i])
                if v is not None and c is not None and self._fold(graph, mul, v, c):
                    self.rewrites += 1
                    break
        return ir.passes.PassResult(model, self.rewrites > 0)

    @staticmethod
    def _fold(graph: ir.Graph, mul: ir.Node, v: ir.Value, c: float) -> bool:
        const = mul.inputs[1] if mul.inputs[0] is v else mul.inputs[0]
        if (v.shape is None or const.dtype != v.dtype
                or len(const.const_value.shape) > len(v.shape)):  # would add axes
            return False
        node, value = v.producer(), v
        while node is not None and node.domain in _DEFAULT and node.op_type in ("Reshape",
                                                                                "Transpose"):
            if not _single_use(value):
                return False
            value = node.inputs[0]
            node = value.producer() if value is not None else None
        if (node is None or node.op_type != "Gemm" or node.domain not in _DEFAULT
                or not _single_use(value) or value.dtype != v.dtype):
            return False
        alpha = node.attributes.get_float("alpha", 1.0)
        node.attributes["alpha"] = ir.AttrFloat32("alpha", alpha * c)
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            beta = node.attributes.get_float("beta", 1.0)
            node.attributes["beta"] = ir.AttrFloat32("beta", beta * c)
        out = mul.outputs[0]
        if out.is_graph_output():
            for k, g in enumerate(graph.outputs):
                if g is out:
                    graph.outputs[k] = v
            v.name, out.name = out.name, None
        out.replace_all_uses_with(v)
        graph.remove(mul, safe=True)
        return True


@register_pass(2, "dense-to-gemm", closing=True)
def dense_to_gemm_pass() -> ir.passes.PassBase:
    return DenseToGemmPass()


@register_pass(2, "gemm-scale", closing=True)
def gemm_scale_pass() -> ir.passes.PassBase:
    return GemmScalePass()
