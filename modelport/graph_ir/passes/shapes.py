"""Symbolic shape arithmetic: folds the shape-vector chains of dynamic-batch exports.

Exporters of dynamic-shape graphs compute reshape targets at run time::

    s = Shape(x)                      # [batch, 2, 7, 8]
    t = Concat(Slice(s, 0, 2), [8], [7])
    y = Reshape(z, t)

Each element of such an int64 vector is tracked as a known integer, as "dimension i of tensor
v" (the same key for two dims that carry one symbolic name) or as unknown. With that:

- a vector whose elements are all known integers becomes an initializer (the chain is dead);
- ``Reshape(x, t)`` with a computed ``t`` gets a constant target: known integers stay, an
  element equal to ``x``'s own dimension at that position becomes ``0`` (copy), and at most
  one other element becomes ``-1``;
- ``Expand(x, t)`` that only restates ``x``'s shape is removed;
- a chain of Reshape/Squeeze/Unsqueeze/Flatten whose intermediate results have no other use
  becomes one Reshape built from the final output's shape the same way, and a Reshape
  whose target restates its input's shape is removed;
- a chain of them (``Unsqueeze(Squeeze(x))`` with the same axes, say) whose output has the
  shape of a tensor earlier in the chain, dim for dim, is that tensor, whatever other uses
  the results in between have (reshape-like nodes never reorder elements);
- a Transpose that moves only dims of size 1 becomes a Reshape;
- a Concat whose input is another Concat on the same axis takes that Concat's inputs
  instead (the inner one goes when nothing else reads it).

Element-wise Add/Sub/Mul/Div/Max/Min of such vectors are followed where the result is known
(``Max(d, d)`` is ``d`` for a symbolic ``d``).

The onnxscript constant folder already folds vectors that shape inference made fully static;
this pass adds the partially-dynamic cases onnxslim and onnxsim handle.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.graph_ir.passes.counting import CountingPass

# An element: int (known), a hashable key (a symbolic dimension), or None (unknown).
_MAX_LEN = 64
_INT_TYPES = (ir.DataType.INT64, ir.DataType.INT32)
_RESHAPE_LIKE = {"Reshape", "Squeeze", "Unsqueeze", "Flatten"}
_MAX_CHAIN = 8  # reshape-like producers looked through for an equal-shaped tensor


def dim_key(value: ir.Value, i: int):
    """The element that stands for dimension ``i`` of ``value``."""
    shape = value.shape
    if shape is not None and 0 <= i < len(shape):
        d = shape[i]
        if isinstance(d, int):
            return d
        if d.value is not None:
            return ("sym", d.value)
    return ("dim", id(value), i)


class _Vec:
    """A symbolic int vector (or scalar)."""

    __slots__ = ("elems", "scalar")

    def __init__(self, elems: list, scalar: bool = False) -> None:
        self.elems = elems
        self.scalar = scalar

    def static(self) -> bool:
        return all(isinstance(e, int) for e in self.elems)


def _const_ints(value: ir.Value | None) -> np.ndarray | None:
    if value is None or value.const_value is None:
        return None
    if value.const_value.dtype not in _INT_TYPES or value.const_value.size > _MAX_LEN:
        return None
    return value.const_value.numpy()


class _Analysis:
    def __init__(self) -> None:
        self.vecs: dict[int, _Vec] = {}
        self.keep: list[ir.Value] = []  # keeps ids stable while the analysis lives

    def get(self, value: ir.Value | None) -> _Vec | None:
        if value is None:
            return None
        arr = _const_ints(value)
        if arr is not None and arr.ndim <= 1:
            return _Vec([int(v) for v in arr.reshape(-1)], arr.ndim == 0)
        return self.vecs.get(id(value))

    def set(self, value: ir.Value, vec: _Vec) -> None:
        if len(vec.elems) <= _MAX_LEN:
            self.vecs[id(value)] = vec
            self.keep.append(value)

    def visit(self, node: ir.Node) -> None:
        if node.domain not in ("", "ai.onnx") or not node.outputs:
            return
        handler = getattr(self, "_" + node.op_type, None)
        if handler is None:
            return
        vec = handler(node)
        if vec is not None:
            self.set(node.outputs[0], vec)

    # -- handlers: each returns the output's _Vec or None ----------------------------------

    def _Shape(self, node):
        x = node.inputs[0]
        if x is None or x.shape is None:
            return None
        rank = len(x.shape)
        start = node.attributes.get_int("start", 0)
        end = node.attributes.get_int("end", rank)
        return _Vec([dim_key(x, i) for i in range(rank)][start:end])

    def _Identity(self, node):
        return self.get(node.inputs[0])

    def _Cast(self, node):
        if node.attributes.get_int("to", 0) not in (int(t) for t in _INT_TYPES):
            return None
        return self.get(node.inputs[0])

    def _Gather(self, node):
        data, idx = self.get(node.inputs[0]), _const_ints(node.inputs[1])
        if data is None or data.scalar or idx is None or node.attributes.get_int("axis", 0):
            return None
        n = len(data.elems)
        if any(not -n <= i < n for i in idx.reshape(-1)):
            return None
        picked = [data.elems[int(i)] for i in idx.reshape(-1)]
        return _Vec(picked, idx.ndim == 0) if idx.ndim <= 1 else None

    def _Slice(self, node):
        data = self.get(node.inputs[0])
        if data is None or data.scalar or len(node.inputs) < 3:
            return None
        inputs = list(node.inputs) + [None] * (5 - len(node.inputs))
        starts, ends = _const_ints(inputs[1]), _const_ints(inputs[2])
        axes = np.array([0]) if inputs[3] is None else _const_ints(inputs[3])
        steps = np.array([1]) if inputs[4] is None else _const_ints(inputs[4])
        if any(a is None or a.size != 1 for a in (starts, ends, axes, steps)):
            return None
        if int(axes.reshape(-1)[0]) not in (0, -1) or int(steps.reshape(-1)[0]) == 0:
            return None
        s, e, st = (int(a.reshape(-1)[0]) for a in (starts, ends, steps))
        return _Vec(data.elems[slice(s, e, st)])

    def _Concat(self, node):
        parts = [self.get(v) for v in node.inputs]
        if any(p is None or p.scalar for p in parts):
            return None
        return _Vec([e for p in parts for e in p.elems])

    def _Unsqueeze(self, node):
        data = self.get(node.inputs[0])
        axes = _const_ints(node.inputs[1]) if len(node.inputs) > 1 else None
        if axes is None and "axes" in node.attributes:
            axes = np.array(node.attributes["axes"].as_ints())
        if data is None or not data.scalar or axes is None or list(axes.reshape(-1)) not in (
                [0], [-1]):
            return None
        return _Vec(list(data.elems))

    def _Squeeze(self, node):
        data = self.get(node.inputs[0])
        if data is None or data.scalar or len(data.elems) != 1:
            return None
        return _Vec(list(data.elems), scalar=True)

    def _Reshape(self, node):
        data, shape = self.get(node.inputs[0]), _const_ints(node.inputs[1])
        if data is None or shape is None:
            return None
        if shape.size == 0 and len(data.elems) == 1:
            return _Vec(list(data.elems), scalar=True)
        if shape.size == 1 and int(shape[0]) in (-1, len(data.elems)):
            return _Vec(list(data.elems))
        return None

    def _binary(self, node, fn, neutral_right, neutral_left=None):
        a, b = self.get(node.inputs[0]), self.get(node.inputs[1])
        if a is None or b is None:
            return None
        la, lb = len(a.elems), len(b.elems)
        if la != lb and 1 not in (la, lb):
            return None
        out = []
        for i in range(max(la, lb)):
            x, y = a.elems[i if la > 1 else 0], b.elems[i if lb > 1 else 0]
            if isinstance(x, int) and isinstance(y, int):
                try:
                    out.append(int(fn(x, y)))
                except ZeroDivisionError:
                    return None
            elif y == neutral_right and x is not None:
                out.append(x)
            elif neutral_left is not None and x == neutral_left and y is not None:
                out.append(y)
            else:
                out.append(None)
        return _Vec(out, a.scalar and b.scalar)

    def _Add(self, node):
        return self._binary(node, lambda x, y: x + y, 0, 0)

    def _Sub(self, node):
        return self._binary(node, lambda x, y: x - y, 0)

    def _Mul(self, node):
        return self._binary(node, lambda x, y: x * y, 1, 1)

    def _same_or_static(self, node, fn):
        """Max/Min of dims: known integers combine; a dim against itself is itself (how
        tf2onnx broadcasts the batch dims of two operands of an Einsum)."""
        if len(node.inputs) != 2:
            return None
        a, b = self.get(node.inputs[0]), self.get(node.inputs[1])
        if a is None or b is None or len(a.elems) != len(b.elems):
            return None
        out = []
        for x, y in zip(a.elems, b.elems):
            if isinstance(x, int) and isinstance(y, int):
                out.append(fn(x, y))
            elif x is not None and x == y:
                out.append(x)
            else:
                out.append(None)
        return _Vec(out, a.scalar and b.scalar)

    def _Max(self, node):
        return self._same_or_static(node, max)

    def _Min(self, node):
        return self._same_or_static(node, min)

    def _Div(self, node):
        # ONNX integer Div truncates toward zero
        return self._binary(node, _trunc_div, 1)


def _trunc_div(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


def reshape_target(x: ir.Value, elems: list) -> list[int] | None:
    """A constant Reshape target (allowzero=0) for ``x`` that yields ``elems``, or None."""
    if x.shape is None:
        return None
    target: list[int] = []
    unknown = 0
    for i, e in enumerate(elems):
        if isinstance(e, int) and e > 0:
            target.append(e)
        elif e is not None and not isinstance(e, int) and i < len(x.shape) and dim_key(x, i) == e:
            target.append(0)
        elif e == -1 or e is None or not isinstance(e, int):
            target.append(-1)
            unknown += 1
        else:  # a literal 0 would mean "copy": only right if x's dim is 0 too
            return None
    return target if unknown <= 1 else None


def is_identity_reshape(x: ir.Value, target: list[int]) -> bool:
    if x.shape is None or len(x.shape) != len(target):
        return False
    free = 0
    for i, t in enumerate(target):
        if t == 0:
            continue
        if t == -1:
            free += 1
        elif x.shape[i] != t:
            return False
    return free <= 1


def _record_shape(value: ir.Value, elems: list) -> None:
    """Give ``value`` the dims that the symbolic target names, where its shape lacks them
    (shape inference cannot see through a target with -1 and a dynamic input)."""
    old = value.shape
    if old is not None and len(old) != len(elems):
        return
    dims = []
    for i, e in enumerate(elems):
        known = old[i] if old is not None else None
        if isinstance(known, int) or (known is not None and known.value is not None):
            dims.append(known)
        elif isinstance(e, int) and e > 0:
            dims.append(e)
        elif isinstance(e, tuple) and e[0] == "sym":
            dims.append(ir.SymbolicDim(e[1]))
        else:
            dims.append(known if known is not None else ir.SymbolicDim(None))
    value.shape = ir.Shape(dims)


def _infer_minus_one(node: ir.Node) -> None:
    """Name the dim that a constant Reshape target's -1 stands for, when the input has one
    symbolic dim that the target does not copy and the static sizes balance (shape
    inference leaves it unknown)."""
    x, y = node.inputs[0], node.outputs[0]
    target = _const_ints(node.inputs[1]) if len(node.inputs) > 1 else None
    if x is None or x.shape is None or target is None or target.ndim != 1:
        return
    t = [int(v) for v in target]
    if t.count(-1) != 1 or node.attributes.get_int("allowzero", 0) and 0 in t:
        return
    elems: list = []
    for i, v in enumerate(t):
        if v == 0:
            if i >= len(x.shape):
                return
            elems.append(dim_key(x, i))
        else:
            elems.append(v)
    x_keys = [dim_key(x, i) for i in range(len(x.shape))]
    x_static = int(np.prod([k for k in x_keys if isinstance(k, int)]))
    x_sym = [k for k in x_keys if not isinstance(k, int)]
    t_static = int(np.prod([e for e in elems if isinstance(e, int) and e != -1]))
    for e in elems:
        if not isinstance(e, int):
            if e not in x_sym:
                return
            x_sym.remove(e)
    pos = elems.index(-1)
    if len(x_sym) == 1 and x_static == t_static and x_sym[0][0] == "sym":
        elems[pos] = x_sym[0]
    elif not x_sym and t_static and x_static % t_static == 0:
        elems[pos] = x_static // t_static
    else:
        return
    _record_shape(y, elems)


def _initializer(graph: ir.Graph, like: ir.Value, data: list[int], dtype=np.int64) -> ir.Value:
    base = f"{like.name or 'shape'}_folded"
    name, k = base, 1
    while name in graph.initializers:
        name, k = f"{base}_{k}", k + 1
    value = ir.Value(name=name, const_value=ir.tensor(np.array(data, dtype=dtype), name=name))
    graph.register_initializer(value)
    return value


def _replace(old: ir.Value, new: ir.Value, graph: ir.Graph | None = None) -> bool:
    """Point the uses of ``old`` at ``new``. A graph output is handed over (name included)
    only to a fresh value made by this pass (``graph`` given)."""
    if old.is_graph_output():
        if graph is None:
            return False
        name = old.name
        for i, v in enumerate(graph.outputs):
            if v is old:
                graph.outputs[i] = new
        old.replace_all_uses_with(new)
        old.name = None
        new.name = name
        return True
    old.replace_all_uses_with(new)
    return True


class SymbolicShapePass(CountingPass):
    """Folds shape-vector arithmetic and simplifies Reshape/Expand chains (see module doc)."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.rewrites = 0
        graph = model.graph
        analysis = _Analysis()
        for node in list(graph):
            analysis.visit(node)
            if node.graph is None:
                continue
            self._fold_vector(graph, node, analysis)
            if node.op_type == "Reshape" and node.domain in ("", "ai.onnx"):
                self._reshape(graph, node, analysis)
                _infer_minus_one(node)
            elif node.op_type == "Expand" and node.domain in ("", "ai.onnx"):
                self._expand(node, analysis)
        for node in list(graph):
            if node.graph is None or node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "Reshape" and self._reshape_transpose_reshape(graph, node):
                continue
            if node.op_type == "Gather":
                self._gather_of_split_view(graph, node)
                continue
            if node.op_type == "Transpose" and self._unit_transpose(graph, node):
                continue
            if node.op_type in _RESHAPE_LIKE:
                self._chain(graph, node)
        if model.opset_imports.get("", 0) >= 13:  # Split with sizes as an input
            self._slices_to_split(graph)
        for node in list(graph):
            if node.op_type == "Concat" and node.domain in ("", "ai.onnx") and node.graph:
                self._flatten_concat(node)
        return ir.passes.PassResult(model, self.rewrites > 0)

    def _flatten_concat(self, node) -> None:
        """``Concat(a, Concat(b, c), d)`` on one axis is ``Concat(a, b, c, d)``; the inner
        Concat goes once no other node reads it (DPN's growing dense path is a chain of
        them, each read by the next block)."""
        out = node.outputs[0]
        rank = len(out.shape) if out.shape is not None else None
        axis = node.attributes.get_int("axis", 0)
        flat, changed = [], False
        for v in node.inputs:
            inner = v.producer() if v is not None else None
            if (inner is not None and inner.op_type == "Concat"
                    and inner.domain in ("", "ai.onnx") and inner.graph is node.graph
                    and None not in inner.inputs):
                a = inner.attributes.get_int("axis", 0)
                if a == axis or (rank is not None and a % rank == axis % rank):
                    flat.extend(inner.inputs)
                    changed = True
                    continue
            flat.append(v)
        if not changed:
            return
        node.resize_inputs(len(flat))
        for i, v in enumerate(flat):
            node.replace_input_with(i, v)
        self.rewrites += 1

    def _slices_to_split(self, graph) -> None:
        """Two or more Slices of one tensor along one axis that tile it exactly, each from
        ``start`` to ``end`` with step 1, become one ``Split``."""
        groups: dict[tuple[int, int], list] = {}
        order: dict[int, int] = {}
        for position, node in enumerate(graph):
            order[id(node)] = position
            if node.op_type != "Slice" or node.domain not in ("", "ai.onnx"):
                continue
            x = node.inputs[0]
            if x is None or x.shape is None or len(node.inputs) < 4:
                continue
            args = [_const_ints(v) for v in node.inputs[1:4]]
            steps = _const_ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[
                4] is not None else np.array([1])
            if any(a is None or a.size != 1 for a in (*args, steps)) or int(steps[0]) != 1:
                continue
            rank = len(x.shape)
            axis = int(args[2].reshape(-1)[0])
            if not -rank <= axis < rank or not isinstance(x.shape[axis], int):
                continue
            axis %= rank
            dim = x.shape[axis]
            start, end = (int(a.reshape(-1)[0]) for a in args[:2])
            start, end = slice(start, end).indices(dim)[:2]
            if end <= start:
                continue
            groups.setdefault((id(x), axis), []).append((start, end, node))
        for (_, axis), parts in groups.items():
            if len(parts) < 2:
                continue
            parts.sort(key=lambda p: p[0])
            x = parts[0][2].inputs[0]
            bounds = [(p[0], p[1]) for p in parts]
            if bounds[0][0] != 0 or bounds[-1][1] != x.shape[axis] or any(
                    a[1] != b[0] for a, b in zip(bounds, bounds[1:])):
                continue
            sizes = _initializer(graph, x, [e - s_ for s_, e in bounds])
            first = min((p[2] for p in parts), key=lambda n: order[id(n)])
            split = ir.node("Split", [x, sizes], attributes={"axis": axis},
                            num_outputs=len(parts))
            graph.insert_before(first, split)
            for out, (_, _, node) in zip(split.outputs, parts):
                old = node.outputs[0]
                out.shape, out.dtype = old.shape, old.dtype
                out.name = (old.name or "part") + "_split"
                _replace(old, out, graph)
            self.rewrites += 1

    def _fold_vector(self, graph, node, analysis) -> None:
        if node.op_type == "Constant" or len(node.outputs) != 1:
            return
        out = node.outputs[0]
        if out.const_value is not None or out.dtype not in _INT_TYPES or not out.uses():
            return
        vec = analysis.get(out)
        if vec is None or not vec.static():
            return
        dtype = np.int64 if out.dtype == ir.DataType.INT64 else np.int32
        data = vec.elems[0] if vec.scalar else vec.elems
        new = _initializer(graph, out, data, dtype)
        new.shape = ir.Shape([] if vec.scalar else [len(vec.elems)])
        new.dtype = out.dtype
        if _replace(out, new):
            self.rewrites += 1

    def _reshape(self, graph, node, analysis) -> None:
        if len(node.inputs) < 2 or node.inputs[1] is None or node.inputs[1].const_value is not None:
            return
        x = node.inputs[0]
        vec = analysis.get(node.inputs[1])
        if x is None or vec is None or vec.scalar:
            return
        allowzero = node.attributes.get_int("allowzero", 0)
        if allowzero and any(e == 0 for e in vec.elems):
            return
        target = reshape_target(x, vec.elems)
        if target is None:
            return
        node.replace_input_with(1, _initializer(graph, node.inputs[1], target))
        if allowzero:
            node.attributes["allowzero"] = ir.AttrInt64("allowzero", 0)
        _record_shape(node.outputs[0], vec.elems)
        self.rewrites += 1

    def _expand(self, node, analysis) -> None:
        x, vec = node.inputs[0], analysis.get(node.inputs[1])
        if x is None or x.shape is None or vec is None or len(vec.elems) > len(x.shape):
            return
        rank = len(x.shape)
        offset = rank - len(vec.elems)
        for j, e in enumerate(vec.elems):
            if e == 1:
                continue
            if e is None or e != dim_key(x, offset + j):
                return
        if x.dtype == node.outputs[0].dtype and _replace(node.outputs[0], x):
            self.rewrites += 1

    def _reshape_transpose_reshape(self, graph, node) -> bool:
        """``Reshape(Transpose(Reshape(x)))`` where the first Reshape merges x's leading dims
        into one, the Transpose keeps that merged axis first, and the last Reshape splits it
        again: one Transpose of ``x`` (how exporters spell ``k.transpose(-2, -1)`` on 4-D)."""
        y = node.outputs[0]
        t = node.inputs[0]
        tr = t.producer() if t is not None else None
        if tr is None or tr.op_type != "Transpose" or tr.domain not in ("", "ai.onnx"):
            return False
        r = tr.inputs[0]
        first = r.producer() if r is not None else None
        if first is None or first.op_type != "Reshape" or first.domain not in ("", "ai.onnx"):
            return False
        x = first.inputs[0]
        if any(v is None or v.shape is None for v in (x, r, y)) or "perm" not in tr.attributes:
            return False
        if len(t.uses()) != 1 or len(r.uses()) != 1 or t.is_graph_output() or r.is_graph_output():
            return False
        perm = list(tr.attributes["perm"].as_ints())
        n, m = len(x.shape), len(r.shape)
        k = n - m + 1
        if k < 1 or len(perm) != m or perm[0] != 0 or len(y.shape) != n:
            return False
        if any(dim_key(r, j) != dim_key(x, k - 1 + j) for j in range(1, m)):
            return False
        new_perm = list(range(k)) + [k - 1 + p for p in perm[1:]]
        if any(dim_key(y, i) != dim_key(x, new_perm[i]) for i in range(n)):
            return False
        new = ir.node("Transpose", [x], attributes={"perm": new_perm}, num_outputs=1)
        new.outputs[0].shape = y.shape
        new.outputs[0].dtype = y.dtype
        new.outputs[0].name = (y.name or "transposed") + "_merged"
        graph.insert_before(node, new)
        _replace(y, new.outputs[0], graph)
        self.rewrites += 1
        return True

    def _gather_of_split_view(self, graph, node) -> None:
        """``Gather(Squeeze(Transpose(Reshape(x))), i, axis=0)`` where the Reshape splits x's
        last dim into [n, E] (plus dims of 1), the Transpose brings n first and keeps the other
        dims in order, and the Squeeze drops only 1s: that is x's i-th chunk of E on the
        last axis, one ``Slice`` (how torch's MultiheadAttention splits its packed q/k/v)."""
        idx = _const_ints(node.inputs[1]) if len(node.inputs) > 1 else None
        if idx is None or idx.ndim != 0 or node.attributes.get_int("axis", 0) != 0:
            return
        s = node.inputs[0]
        sq = s.producer() if s is not None else None
        if sq is None or sq.op_type != "Squeeze" or sq.domain not in ("", "ai.onnx"):
            return
        t = sq.inputs[0]
        tr = t.producer() if t is not None else None
        if tr is None or tr.op_type != "Transpose" or "perm" not in tr.attributes:
            return
        r = tr.inputs[0]
        rs = r.producer() if r is not None else None
        if rs is None or rs.op_type != "Reshape" or rs.domain not in ("", "ai.onnx"):
            return
        x, g = rs.inputs[0], node.outputs[0]
        if any(v is None or v.shape is None for v in (x, r, t, s, g)):
            return
        if len(x.shape) < 1 or not isinstance(x.shape[-1], int):
            return
        # r without its 1s must be x's leading dims (without 1s), then n, then E
        r_axes = [a for a in range(len(r.shape)) if r.shape[a] != 1]
        x_keys = [dim_key(x, a) for a in range(len(x.shape) - 1) if x.shape[a] != 1]
        if len(r_axes) != len(x_keys) + 2:
            return
        if [dim_key(r, a) for a in r_axes[:-2]] != x_keys:
            return
        n_axis, e_axis = r_axes[-2], r_axes[-1]
        n, e = r.shape[n_axis], r.shape[e_axis]
        if not isinstance(n, int) or not isinstance(e, int) or n * e != x.shape[-1]:
            return
        perm = list(tr.attributes["perm"].as_ints())
        moved = [p for p in perm if r.shape[p] != 1]
        if not moved or moved[0] != n_axis or moved[1:] != sorted(moved[1:]):
            return
        axes = _const_ints(sq.inputs[1]) if len(sq.inputs) > 1 else None
        if axes is None:
            return
        rank_t = len(t.shape)
        squeezed = sorted({int(a) % rank_t for a in axes.reshape(-1)})
        if any(t.shape[a] != 1 for a in squeezed):
            return
        kept = [a for a in range(rank_t) if a not in squeezed]
        if not kept or perm[kept[0]] != n_axis:
            return
        i = int(idx) % n if -n <= int(idx) < n else None
        if i is None:
            return
        want = [dim_key(x, a) for a in range(len(x.shape) - 1)] + [e]
        if [dim_key(g, a) for a in range(len(g.shape))] != want:
            return
        starts = _initializer(graph, g, [i * e])
        ends = _initializer(graph, g, [(i + 1) * e])
        last = _initializer(graph, g, [-1])
        new = ir.node("Slice", [x, starts, ends, last], num_outputs=1)
        new.outputs[0].shape = g.shape
        new.outputs[0].dtype = g.dtype
        new.outputs[0].name = (g.name or "chunk") + "_slice"
        graph.insert_before(node, new)
        _replace(g, new.outputs[0], graph)
        self.rewrites += 1

    def _unit_transpose(self, graph, node) -> bool:
        """A Transpose that moves only dims of size 1 keeps the element order: a Reshape
        (a view for runtimes, and mergeable with neighbouring reshapes)."""
        x, y = node.inputs[0], node.outputs[0]
        if x is None or x.shape is None or "perm" not in node.attributes:
            return False
        perm = list(node.attributes["perm"].as_ints())
        if len(perm) != len(x.shape) or perm == sorted(perm):
            return False
        moved = [p for p in perm if x.shape[p] != 1]
        if moved != sorted(moved):
            return False
        target = reshape_target(x, [dim_key(x, p) for p in perm])
        if target is None:
            return False
        shape = _initializer(graph, y, target)
        new = ir.node("Reshape", [x, shape], num_outputs=1)
        new.outputs[0].shape = ir.Shape([x.shape[p] for p in perm])
        new.outputs[0].dtype = y.dtype
        new.outputs[0].name = (y.name or "transposed") + "_reshaped"
        graph.insert_before(node, new)
        _replace(y, new.outputs[0], graph)
        self.rewrites += 1
        return True

    def _back_to_ancestor(self, node) -> bool:
        """Bypass ``node`` when its output equals, dim for dim, a tensor up its chain of
        reshape-like producers (``Unsqueeze(Squeeze(h, [0]), [0])`` -> ``h``, how Keras's
        initial states reach an RNN). The nodes in between stay for their other uses."""
        out = node.outputs[0]
        keys = [dim_key(out, i) for i in range(len(out.shape))]
        current = node
        for _ in range(_MAX_CHAIN):
            src = current.inputs[0]
            if src is None or src.shape is None:
                return False
            if (src is not node.inputs[0] and src.dtype == out.dtype
                    and [dim_key(src, i) for i in range(len(src.shape))] == keys):
                if _replace(out, src):
                    self.rewrites += 1
                    return True
                return False
            prev = src.producer()
            if prev is None or prev.op_type not in _RESHAPE_LIKE or prev.domain not in (
                    "", "ai.onnx"):
                return False
            current = prev
        return False

    def _chain(self, graph, node) -> None:
        out = node.outputs[0]
        if out.shape is None:
            return
        if self._back_to_ancestor(node):
            return
        first = node
        while True:
            src = first.inputs[0]
            prev = src.producer() if src is not None else None
            if (prev is None or prev.op_type not in _RESHAPE_LIKE or prev.domain not in ("", "ai.onnx")
                    or len(src.uses()) != 1 or src.is_graph_output()):
                break
            first = prev
        x = first.inputs[0]
        if x is None or x.shape is None:
            return
        elems = [dim_key(out, i) for i in range(len(out.shape))]
        target = reshape_target(x, elems)
        if target is None:
            return
        if is_identity_reshape(x, target):
            if _replace(out, x):
                self.rewrites += 1
            return
        if first is node:
            return  # a single reshape-like node: nothing to merge
        shape = _initializer(graph, out, target)
        new = ir.node("Reshape", [x, shape], num_outputs=1)
        new.outputs[0].shape = out.shape
        new.outputs[0].dtype = out.dtype
        new.outputs[0].name = (out.name or "reshaped") + "_merged"
        graph.insert_before(node, new)
        _replace(out, new.outputs[0], graph)
        self.rewrites += 1


from modelport.graph_ir.passes.manager import register_pass  # noqa: E402


@register_pass(2, "symbolic-shapes")
def symbolic_shape_pass() -> ir.passes.PassBase:
    return SymbolicShapePass()
