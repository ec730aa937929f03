"""TF 2 functional control flow: ``While``/``StatelessWhile`` become an ONNX ``Loop``,
``If``/``StatelessIf`` an ONNX ``If``; their FunctionDef bodies become subgraphs.

A While's loop variables are sorted by what the body does with them:

- returned unchanged (weights, the list an RNN reads its inputs from, the bound ``n``): not
  loop-carried; the body reads the outer value directly (captured), constants stay initializers
  of the main graph (hoisted);
- a TensorList written once per iteration at the iteration's index (an RNN's outputs): an ONNX
  scan output, i.e. the stacked tensor after the loop; written at a constant index into a
  1-element list (an RNN that returns its last output): the scan output's last row;
- anything else: an ONNX loop-carried value.

The condition function is read first: when it is a conjunction of counters against bounds
(``i < n`` with ``i`` starting at ``i0`` and incremented by 1 each iteration, Keras' RNN loops),
ONNX gets the trip count ``M = min(n - i0)`` and no condition; otherwise the condition is
evaluated before the loop and again at the end of each body (data-dependent trip counts), and
``M`` is still derived from whichever conjuncts are counters.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.graph_ir.source import SOURCE_KEY
from modelport.importers.tensorflow.ops.lists import BodyList, TList, last_element_list
from modelport.importers.tensorflow.source import Resource
from modelport.importers.tensorflow.tensors import shape_of, to_array

WHILE_OPS = ("While", "StatelessWhile")
IF_OPS = ("If", "StatelessIf")
FUNCTION_ATTRS = ("f", "body", "cond", "then_branch", "else_branch")


# ---- reading FunctionDefs (before translating them) ---------------------------------------------

def _resolve(scope, ref: str):
    """Follow Identity chains: ("arg", name), ("const", array) or ("node", NodeDef, index)."""
    for _ in range(64):
        parsed = scope.parse(ref)
        if parsed is None:
            return None
        name, idx = parsed
        if idx == -1:
            return ("arg", name)
        nd = scope.nodes.get(name)
        if nd is None:
            return None
        if nd.op in ("Identity", "StopGradient", "Snapshot") and nd.input:
            ref = nd.input[0]
            continue
        if nd.op == "Const":
            try:
                return ("const", to_array(nd.attr["value"].tensor))
            except Exception:
                return None
        return ("node", nd, idx)
    return None


def _is_one(resolved) -> bool:
    return resolved is not None and resolved[0] == "const" and resolved[1].size == 1 and \
        float(np.asarray(resolved[1]).reshape(-1)[0]) == 1


def _is_counter(scope, ret: str, keys: set[str]) -> bool:
    """Whether the body returns ``arg + 1`` for the loop variable named by ``keys``."""
    r = _resolve(scope, ret)
    if r is None or r[0] != "node" or r[1].op not in ("AddV2", "Add"):
        return False
    a, b = (_resolve(scope, x) for x in r[1].input[:2])
    return (a is not None and a[0] == "arg" and a[1] in keys and _is_one(b)) or \
        (b is not None and b[0] == "arg" and b[1] in keys and _is_one(a))


def _bounds(scope, ret: str, index: dict[str, int], counters: set[int]):
    """The (counter position, bound) conjuncts of a condition, and whether that is all of it.

    ``index`` maps the condition's argument names to loop-variable positions; a bound is
    ("arg", position) or ("const", array)."""
    leaves, complete = [], True

    def walk(ref):
        nonlocal complete
        r = _resolve(scope, ref)
        if r is None or r[0] != "node":
            complete = False
            return
        nd = r[1]
        if nd.op == "LogicalAnd":
            walk(nd.input[0])
            walk(nd.input[1])
            return
        if nd.op in ("Less", "Greater"):
            lo, hi = (_resolve(scope, x) for x in nd.input[:2])
            if nd.op == "Greater":
                lo, hi = hi, lo
            if lo is not None and lo[0] == "arg" and index.get(lo[1]) in counters and \
                    hi is not None and (hi[0] == "const" or (hi[0] == "arg" and hi[1] in index)):
                bound = ("arg", index[hi[1]]) if hi[0] == "arg" else hi
                leaves.append((index[lo[1]], bound))
                return
        complete = False

    walk(ret)
    return leaves, complete


# ---- building subgraphs ------------------------------------------------------------------------

def _produced_in(graph: ir.Graph, value: ir.Value) -> bool:
    node = value.producer()
    return node is not None and node.graph is graph


def _own(ctx, graph: ir.Graph, value: ir.Value) -> ir.Value:
    """``value`` as a subgraph output: produced inside ``graph`` (an Identity if not)."""
    if isinstance(value, ir.Value) and _produced_in(graph, value):
        return value
    out = ctx.b.op("Identity", value, name=f"{graph.name}/{value.name}")
    out.type, out.shape = value.type, value.shape
    return out


def _no_sources(graph: ir.Graph) -> None:
    """Values inside a loop are not compared layer by layer: the loop's outputs are."""
    for node in ir.traversal.RecursiveGraphIterator(graph):
        node.metadata_props.pop(SOURCE_KEY, None)


def _run_function(tr, fn, prefix: str, bound: list):
    from modelport.importers.tensorflow.load import function_scope

    scope = function_scope(fn, prefix, bound)
    rets = [fn.ret[a.name] for a in fn.signature.output_arg]
    tr.run(scope, [p[0] for p in (scope.parse(r) for r in rets) if p and p[1] != -1])
    return [tr.value(scope, r) for r in rets]


def _function(tr, node, attr: str):
    name = node.nd.attr[attr].func.name
    fn = tr.source.functions.get(name)
    if fn is None:
        raise tr.ctx.fail(f"calls function {name!r}, which the function library does not have")
    return fn


def _as_bool_scalar(ctx, value: ir.Value) -> ir.Value:
    if isinstance(value, (TList, BodyList, Resource)):
        raise ctx.fail("its condition is not a tensor")
    if ctx.dtype(value) != ir.DataType.BOOL:
        # TensorFlow: a numeric condition is true when non-zero.
        value = ctx.op("Not", ctx.op("Equal", value, ctx.scalar(0, value)))
    shape = ctx.shape(value)
    if shape is None or len(shape) != 0:
        value = ctx.op("Reshape", value, ctx.ints([], "scalar"))
    return value


# ---- While -------------------------------------------------------------------------------------

class LoopSpec:
    """A loop to translate, whatever wrote it (a functional While, a TF 1 frame).

    ``body_keys[k]`` / ``cond_keys[k]``: the names loop variable ``k`` has in the body / the
    condition (a TF 1 frame reads a variable under two names: ``Switch:1`` and ``Identity``);
    ``body_scope(prefix, values)`` / ``cond_scope(...)``: a scope binding them to ``values``;
    ``body_rets[k]``: what the body returns for it; ``cond_ret``: the condition."""

    def __init__(self, name, body_scope, body_keys, body_rets, cond_scope, cond_keys, cond_ret,
                 shapes=None):
        self.name = name
        self.body_scope, self.body_keys, self.body_rets = body_scope, body_keys, body_rets
        self.cond_scope, self.cond_keys, self.cond_ret = cond_scope, cond_keys, cond_ret
        self.shapes = shapes or [None] * len(body_rets)


def while_loop(tr, node, inputs: list) -> list:
    from modelport.importers.tensorflow.load import function_scope

    body_fn, cond_fn = _function(tr, node, "body"), _function(tr, node, "cond")
    args = [a.name for a in body_fn.signature.input_arg]
    rets = [body_fn.ret[a.name] for a in body_fn.signature.output_arg]
    cond_args = [a.name for a in cond_fn.signature.input_arg]
    if len(args) != len(inputs) or len(rets) != len(inputs) or len(cond_args) != len(inputs):
        raise tr.ctx.fail("its body's signature does not match its inputs")
    shapes = [shape_of(s) for s in node.attr("output_shapes").list.shape] \
        if node.has("output_shapes") else None
    spec = LoopSpec(
        node.name, lambda prefix, values: function_scope(body_fn, prefix, values),
        [[a] for a in args], rets,
        lambda prefix, values: function_scope(cond_fn, prefix, values),
        [[a] for a in cond_args], cond_fn.ret[cond_fn.signature.output_arg[0].name], shapes)
    return build_loop(tr, spec, inputs)


def _run(tr, scope, rets: list[str]) -> list:
    tr.run(scope, [p[0] for p in (scope.parse(r) for r in rets) if p and p[1] != -1])
    return [tr.value(scope, r) for r in rets]


def build_loop(tr, spec: LoopSpec, inputs: list, layer: str | None = "") -> list:
    """The ONNX Loop of ``spec``; the values of the loop variables after it. ``layer``: the
    source layer of the Loop node (default: the spec's name; None for a TF 1 frame, whose
    values TensorFlow shows at its Exit nodes)."""
    ctx, b = tr.ctx, tr.ctx.b
    name, n = spec.name, len(inputs)
    plain = spec.body_scope("", [None] * n)
    invariant = [(r := _resolve(plain, spec.body_rets[k])) is not None and r[0] == "arg"
                 and r[1] in spec.body_keys[k] for k in range(n)]
    counters = {k for k in range(n) if not invariant[k] and isinstance(inputs[k], ir.Value)
                and _is_counter(plain, spec.body_rets[k], set(spec.body_keys[k]))}
    cond_plain = spec.cond_scope("", [None] * n)
    cond_index = {key: k for k, keys in enumerate(spec.cond_keys) for key in keys}
    leaves, complete = _bounds(cond_plain, spec.cond_ret, cond_index, counters)
    leaves = [(j, bd) for j, bd in leaves if bd[0] == "const" or invariant[bd[1]]]

    # The trip count, from the counters' bounds.
    trip = None
    for j, bound in leaves:
        hi = inputs[bound[1]] if bound[0] == "arg" else ctx.const(
            np.asarray(bound[1]).reshape(()), "bound")
        count = ctx.op("Sub", ctx.cast(hi, ir.DataType.INT64),
                       ctx.cast(inputs[j], ir.DataType.INT64))
        trip = count if trip is None else ctx.op("Min", trip, count)
    if trip is not None:
        trip = ctx.op("Max", ctx.op("Reshape", trip, ctx.ints([], "scalar")),
                      ctx.const(np.asarray(0, np.int64), "zero"))
    use_cond = not (complete and leaves)
    cond_init = None
    if use_cond:
        scope = spec.cond_scope(name + "/cond/", list(inputs))
        cond_init = _as_bool_scalar(ctx, _run(tr, scope, [spec.cond_ret])[0])

    # The body.
    iter_in = ir.Value(name=b.unique_name(f"{name}/iteration"),
                       type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([]))
    cond_in = ir.Value(name=b.unique_name(f"{name}/cond_in"),
                       type=ir.TensorType(ir.DataType.BOOL), shape=ir.Shape([]))
    graph = ir.Graph([iter_in, cond_in], [], nodes=[], name=b.unique_name(f"{name}/body"))
    bound_args, carried, lists, derived = [], [], [], []
    for k, x in enumerate(inputs):
        label = spec.body_keys[k][0]
        if invariant[k]:
            bound_args.append(x)
        elif k in counters and not use_cond and ctx.dtype(x) is not None and \
                ctx.dtype(x).is_integer() and ctx.shape(x) in ([], [1]):
            # With M exact, a counter is i0 + the iteration number: not carried.
            with b.into(graph):
                it = ctx.cast(iter_in, ctx.dtype(x))
                if ctx.shape(x) == [1]:
                    it = ctx.op("Reshape", it, ctx.ints([1], "one"))
                init = ctx.const_array(x)
                value = it if init is not None and not np.asarray(init).any() else \
                    ctx.op("Add", it, x)
            bound_args.append(value)
            derived.append(k)
        elif isinstance(x, TList):
            bound_args.append(BodyList(k, x))
            lists.append(k)
        elif isinstance(x, ir.Value):
            dims = spec.shapes[k] if k < len(spec.shapes) and spec.shapes[k] is not None \
                else ctx.shape(x)
            v = ir.Value(name=b.unique_name(f"{name}/{label}"), type=x.type,
                         shape=None if dims is None else ir.Shape(
                             [d if d is not None and d >= 0 else None for d in dims]))
            graph.inputs.append(v)
            bound_args.append(v)
            carried.append(k)
        else:
            raise ctx.fail(f"loop variable {k} ({label}) changes in the loop and is not a "
                           "tensor or a TensorList")
    with b.into(graph):
        outs = _run(tr, spec.body_scope(name + "/body/", bound_args), spec.body_rets)
        if use_cond:
            cond_bound = [outs[k] if not invariant[k] else inputs[k] for k in range(n)]
            cond_out = _as_bool_scalar(ctx, _run(
                tr, spec.cond_scope(name + "/body/cond/", cond_bound), [spec.cond_ret])[0])
        else:
            cond_out = cond_in  # true throughout: M alone ends the loop (not a constant,
            # which the optimiser would fold into a subgraph initializer)
        graph.outputs.append(_own(ctx, graph, cond_out))
        for k in carried:
            if not isinstance(outs[k], ir.Value):
                raise ctx.fail(f"loop variable {k} ({spec.body_keys[k][0]}) is a tensor before "
                               "the loop and not after an iteration")
            graph.outputs.append(_own(ctx, graph, outs[k]))
        scans = []
        for k in lists:
            out = outs[k]
            label = spec.body_keys[k][0]
            if not isinstance(out, BodyList) or out.slot != k or out.item is None:
                raise ctx.fail(f"list loop variable {k} ({label}) is not written once per "
                               "iteration (not supported)")
            last = _iteration_index(ctx, out.index, iter_in, graph, inputs, carried, counters)
            if last is None:
                raise ctx.fail(f"list loop variable {k} ({label}) is written at an index that "
                               "is neither the iteration number nor a constant")
            graph.outputs.append(_own(ctx, graph, out.item))
            scans.append((k, last, out.item))
    _no_sources(graph)

    count = len(carried) + len(scans)
    layer = name if layer == "" else layer
    with b.layer(layer):
        result = b.op("Loop", trip, cond_init, *[inputs[k] for k in carried],
                      outputs=max(count, 1), body=graph)
    loop_outs = [result] if max(count, 1) == 1 else list(result)
    values = list(inputs)
    for k, out, body_in in zip(carried, loop_outs, graph.inputs[2:]):
        out.type, out.shape = body_in.type, body_in.shape
        values[k] = out
    for k in derived:  # i0 + M after the loop
        dt = ctx.dtype(inputs[k])
        values[k] = ctx.op("Add", inputs[k], ctx.op("Reshape", ctx.cast(trip, dt), ctx.ints(
            [1] if ctx.shape(inputs[k]) == [1] else [], "shape")))
    for (k, last, item), out in zip(scans, loop_outs[len(carried):]):
        out.type = item.type
        out.shape = None if item.shape is None else ir.Shape([None, *item.shape.dims])
        stacked = last_element_list(ctx, out) if last else out
        values[k] = TList(stacked, element_shape=inputs[k].element_shape, dtype=inputs[k].dtype)
    if layer:
        # Compared positionally with the op's outputs: up to the first that is no tensor.
        tensors = []
        for v in values:
            if not isinstance(v, ir.Value):
                break
            tensors.append(v)
        if tensors:
            b.layer_returns(layer, tensors)
        else:
            b.layer_has_no_value(layer, "its outputs are TensorLists")
    return values


def _iteration_index(ctx, index, iter_in, graph, inputs, carried, counters):
    """False if ``index`` is the iteration number (a counter from 0), True if a constant
    (the list keeps the last element written), None otherwise."""
    if ctx.const_array(index) is not None:
        return True
    while index.producer() is not None and index.producer().op_type in (
            "Identity", "Cast", "Reshape"):
        index = index.producer().inputs[0]
    if index is iter_in:
        return False
    if index in graph.inputs:
        k = carried[graph.inputs.index(index) - 2]
        init = ctx.const_array(inputs[k])
        if k in counters and init is not None and int(np.asarray(init).reshape(-1)[0]) == 0:
            return False
    return None


# ---- If ----------------------------------------------------------------------------------------

def if_op(tr, node, inputs: list) -> list:
    ctx, b = tr.ctx, tr.ctx.b
    cond, args = inputs[0], inputs[1:]
    then_fn, else_fn = _function(tr, node, "then_branch"), _function(tr, node, "else_branch")
    cond = _as_bool_scalar(ctx, cond)
    branches, results = [], []
    for label, fn in (("then", then_fn), ("else", else_fn)):
        graph = ir.Graph([], [], nodes=[], name=b.unique_name(f"{node.name}/{label}"))
        with b.into(graph):
            outs = _run_function(tr, fn, f"{node.name}/{label}/", list(args))
            for k, v in enumerate(outs):
                if not isinstance(v, ir.Value):
                    raise ctx.fail(f"output {k} of its {label} branch is not a tensor "
                                   "(not supported)")
                graph.outputs.append(_own(ctx, graph, v))
        _no_sources(graph)
        branches.append(graph)
        results.append(outs)
    count = len(results[0])
    if count == 0:
        return []
    with b.layer(node.name):
        out = b.op("If", cond, outputs=count, then_branch=branches[0],
                   else_branch=branches[1])
    outs = [out] if count == 1 else list(out)
    for o, t, e in zip(outs, branches[0].outputs, branches[1].outputs):
        o.type = t.type or e.type
        if t.shape is not None and e.shape is not None and len(t.shape) == len(e.shape):
            o.shape = ir.Shape([a if a == c else None for a, c in zip(t.shape.dims,
                                                                      e.shape.dims)])
    b.layer_returns(node.name, outs)
    return outs


# ---- TF 1 control flow: loop frames and cond ---------------------------------------------------

FRAME_OP = "_ModelportTF1Loop"  # what a TF 1 loop frame is rewritten to (see rewrite_tf1)
COND_OP = "_ModelportTF1Cond"  # what a TF 1 cond's Merge is rewritten to
ENTER_OPS = ("Enter", "RefEnter")
MERGE_OPS = ("Merge", "RefMerge")
SWITCH_OPS = ("Switch", "RefSwitch")


def _graph_ref(ref: str) -> tuple[str, int]:
    name, sep, idx = ref.rpartition(":")
    return (name, int(idx)) if sep and idx.isdigit() else (ref, 0)


class Frame:
    """A TF 1 while loop: Enter -> Merge -> Switch(LoopCond) -> body -> NextIteration -> Merge,
    Switch:0 -> Exit."""

    def __init__(self, name, nodes, variables, constants, cond_ret):
        self.name, self.nodes = name, nodes
        self.variables = variables  # [(enter, merge, switch, next_iteration)]
        self.constants = constants  # [enter] with is_constant
        self.cond_ret = cond_ret

    def scope(self, prefix, values, cond: bool):
        from modelport.importers.tensorflow.load import Scope

        args = {}
        for keys, v in zip(self.keys(cond), values):
            for key in keys:
                args[key] = v
        return Scope(self.nodes, prefix, args, function=True)

    def keys(self, cond: bool) -> list[list[str]]:
        keys = [[m.name, f"{m.name}:0"] if cond else [f"{s.name}:1"]
                for _, m, s, _ in self.variables]
        return keys + [[c.name, f"{c.name}:0"] for c in self.constants]

    def spec(self, name: str) -> LoopSpec:
        rets = [nx.input[0] for _, _, _, nx in self.variables] + [c.name for c in self.constants]
        return LoopSpec(name, lambda p, v: self.scope(p, v, False), self.keys(False), rets,
                        lambda p, v: self.scope(p, v, True), self.keys(True), self.cond_ret)

    def collect_roots(self) -> list[tuple[object, list[str]]]:
        body = self.scope("", [None] * len(self.keys(False)), False)
        cond = self.scope("", [None] * len(self.keys(True)), True)
        rets = [nx.input[0] for _, _, _, nx in self.variables]
        return [(body, rets), (cond, [self.cond_ret])]


class Cond:
    """A TF 1 cond: a Merge of two branches fed by Switches on one predicate."""

    def __init__(self, nodes, pred: str, switches: list[str], then_ref: str, else_ref: str):
        self.nodes, self.pred, self.switches = nodes, pred, switches
        self.then_ref, self.else_ref = then_ref, else_ref

    def scope(self, prefix, values, side: int):
        from modelport.importers.tensorflow.load import Scope

        args = {}
        for s, v in zip(self.switches, values):
            keys = [f"{s}:1"] if side else [s, f"{s}:0"]
            for key in keys:
                args[key] = v
        return Scope(self.nodes, prefix, args, function=True)

    def collect_roots(self):
        blank = [None] * len(self.switches)
        return [(self.scope("", blank, 1), [self.then_ref]),
                (self.scope("", blank, 0), [self.else_ref])]


def rewrite_tf1(nodes: dict, path: str | None = None) -> tuple[dict, dict]:
    """Replace TF 1 loop frames and conds by single nodes the translator knows.

    Returns the new node map and {node name: Frame or Cond}. Each frame becomes a node
    ``FRAME_OP`` whose inputs are what enters the frame (loop variables, then constants), and
    each Exit an Identity of one of its outputs; each cond Merge becomes a node ``COND_OP``
    (same name) whose inputs are the predicate and the tensors its branches' Switches pass."""
    if not any(nd.op in ENTER_OPS or nd.op in SWITCH_OPS for nd in nodes.values()):
        return nodes, {}
    nodes = dict(nodes)
    consumers: dict[str, list] = {}
    for nd in nodes.values():
        for ref in nd.input:
            if not ref.startswith("^"):
                name, idx = _graph_ref(ref)
                consumers.setdefault(name, []).append((nd, idx))
    special: dict = {}
    frames: dict[str, list] = {}
    for nd in nodes.values():
        if nd.op in ENTER_OPS:
            frames.setdefault(nd.attr["frame_name"].s.decode(), []).append(nd)
    loop_switches: set[str] = set()
    loop_merges: set[str] = set()
    for fname, enters in frames.items():
        variables, constants, cond_ret = [], [], None
        for enter in enters:
            if enter.attr["is_constant"].b:
                constants.append(enter)
                continue
            merges = [c for c, _ in consumers.get(enter.name, []) if c.op in MERGE_OPS]
            if len(merges) != 1:
                raise _frame_error(path, fname, f"Enter {enter.name!r} does not feed one Merge")
            merge = merges[0]
            others = [_graph_ref(r)[0] for r in merge.input if not r.startswith("^")
                      and _graph_ref(r)[0] != enter.name]
            nxt = nodes.get(others[0]) if len(others) == 1 else None
            switches = [c for c, _ in consumers.get(merge.name, []) if c.op in SWITCH_OPS]
            if nxt is None or "NextIteration" not in nxt.op or len(switches) != 1:
                raise _frame_error(path, fname, f"Merge {merge.name!r} is not a loop variable's")
            switch = switches[0]
            loop_cond = nodes.get(_graph_ref(switch.input[1])[0])
            if loop_cond is None or loop_cond.op != "LoopCond":
                raise _frame_error(path, fname, f"Switch {switch.name!r} is not on a LoopCond")
            cond_ret = loop_cond.input[0]
            variables.append((enter, merge, switch, nxt))
            loop_switches.add(switch.name)
            loop_merges.add(merge.name)
        if cond_ret is None:
            raise _frame_error(path, fname, "no loop variable")
        frame = Frame(fname, nodes, variables, constants, cond_ret)
        loop_name = f"{fname}/modelport_loop"
        loop = type(enters[0])()
        loop.name, loop.op = loop_name, FRAME_OP
        loop.input.extend([e.input[0] for e, _, _, _ in variables] +
                          [c.input[0] for c in constants])
        nodes[loop_name] = loop
        special[loop_name] = frame
        for k, (_, _, switch, _) in enumerate(variables):
            for c, idx in consumers.get(switch.name, []):
                if c.op in ("Exit", "RefExit") and idx == 0:
                    exit_ = type(c)()
                    exit_.name, exit_.op = c.name, "Identity"
                    exit_.input.append(f"{loop_name}:{k}")
                    nodes[c.name] = exit_
    for merge in [nd for nd in nodes.values() if nd.op in MERGE_OPS
                  and nd.name not in loop_merges]:
        cond = _cond_of(nodes, merge, loop_switches, path)
        node = type(merge)()
        node.name, node.op = merge.name, COND_OP
        node.input.extend([cond.pred] + [nodes[s].input[0] for s in cond.switches])
        nodes[merge.name] = node
        special[merge.name] = cond
    return nodes, special


def _frame_error(path, frame: str, what: str):
    from modelport.errors import InvalidModelError

    return InvalidModelError(f"TF 1 loop frame {frame!r} has a form not supported: {what}",
                             path=path)


def _pred_of(nodes, ref: str) -> str:
    for _ in range(64):
        name, idx = _graph_ref(ref)
        nd = nodes.get(name)
        if nd is None or nd.op != "Identity" or idx != 0:
            return f"{name}:{idx}"
        ref = nd.input[0]
    return ref


def _cond_of(nodes, merge, loop_switches, path) -> Cond:
    from modelport.errors import InvalidModelError

    data = [r for r in merge.input if not r.startswith("^")]
    if len(data) != 2:
        raise InvalidModelError(f"Merge {merge.name!r} has {len(data)} inputs; a TF 1 cond "
                                "merges two", path=path)
    reached = []  # per input: {pred: {(switch, side)}}
    for ref in data:
        found: dict[str, set] = {}
        seen, stack = set(), [_graph_ref(ref)]
        while stack:
            name, idx = stack.pop()
            if (name, idx) in seen or len(seen) > 100000:
                continue
            seen.add((name, idx))
            nd = nodes.get(name)
            if nd is None or "NextIteration" in nd.op:  # not along a loop's back edge
                continue
            if nd.op in SWITCH_OPS and name not in loop_switches:
                found.setdefault(_pred_of(nodes, nd.input[1]), set()).add((name, idx))
                stack.append(_graph_ref(nd.input[0]))
                continue
            for r in nd.input:
                if not r.startswith("^"):
                    stack.append(_graph_ref(r))
        reached.append(found)
    for pred in list(reached[0]) + list(reached[1]):
        sides = [{s for _, s in r.get(pred, ())} for r in reached]
        if any(len(s) > 1 for s in sides):
            continue
        a, b = (next(iter(s)) if s else None for s in sides)
        if a is None and b is None or a == b:
            continue
        a = 1 - b if a is None else a
        switches = sorted({sw for r in reached for sw, _ in r.get(pred, ())})
        then_ref, else_ref = (data[0], data[1]) if a == 1 else (data[1], data[0])
        return Cond(nodes, pred, switches, then_ref, else_ref)
    raise InvalidModelError(f"Merge {merge.name!r} is not the end of a TF 1 cond that modelport "
                            "recognises (two branches of Switches on one predicate)", path=path)


def tf1_loop(tr, node, inputs: list, frame: Frame) -> list:
    return build_loop(tr, frame.spec(node.name.rsplit("/modelport_loop", 1)[0]), inputs,
                      layer=None)


def tf1_cond(tr, node, inputs: list, cond: Cond) -> list:
    ctx, b = tr.ctx, tr.ctx.b
    pred, values = _as_bool_scalar(ctx, inputs[0]), inputs[1:]
    branches = []
    for label, side, ref in (("then", 1, cond.then_ref), ("else", 0, cond.else_ref)):
        graph = ir.Graph([], [], nodes=[], name=b.unique_name(f"{node.name}/{label}"))
        with b.into(graph):
            (out,) = _run(tr, cond.scope(f"{node.name}/{label}/", values, side), [ref])
            if not isinstance(out, ir.Value):
                raise ctx.fail(f"its {label} branch does not give a tensor (not supported)")
            graph.outputs.append(_own(ctx, graph, out))
        _no_sources(graph)
        branches.append(graph)
    with b.layer(node.name):
        out = b.op("If", pred, then_branch=branches[0], else_branch=branches[1])
    t, e = branches[0].outputs[0], branches[1].outputs[0]
    out.type = t.type or e.type
    if t.shape is not None and e.shape is not None and len(t.shape) == len(e.shape):
        out.shape = ir.Shape([x if x == y else None for x, y in zip(t.shape.dims, e.shape.dims)])
    # Merge's second output: the index of the branch taken.
    index = ctx.op("Cast", pred, to=int(ir.DataType.INT32))
    return [out, index]
