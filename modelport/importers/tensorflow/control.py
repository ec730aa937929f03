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


def _is_counter(scope, ret: str, arg: str) -> bool:
    """Whether the body returns ``arg + 1`` for this loop variable."""
    r = _resolve(scope, ret)
    if r is None or r[0] != "node" or r[1].op not in ("AddV2", "Add"):
        return False
    a, b = (_resolve(scope, x) for x in r[1].input[:2])
    return (a == ("arg", arg) and _is_one(b)) or (b == ("arg", arg) and _is_one(a))


def _bounds(scope, ret: str, args: list[str], counters: set[int]):
    """The (counter index, bound) conjuncts of a condition, and whether that is all of it.

    A bound is ("arg", index) or ("const", array)."""
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
            if lo is not None and lo[0] == "arg" and args.index(lo[1]) in counters and \
                    hi is not None and hi[0] in ("arg", "const"):
                bound = ("arg", args.index(hi[1])) if hi[0] == "arg" else hi
                leaves.append((args.index(lo[1]), bound))
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

def while_loop(tr, node, inputs: list) -> list:
    from modelport.importers.tensorflow.load import function_scope

    ctx, b = tr.ctx, tr.ctx.b
    body_fn, cond_fn = _function(tr, node, "body"), _function(tr, node, "cond")
    args = [a.name for a in body_fn.signature.input_arg]
    rets = [body_fn.ret[a.name] for a in body_fn.signature.output_arg]
    n = len(inputs)
    if len(args) != n or len(rets) != n:
        raise ctx.fail("its body's signature does not match its inputs")
    plain = function_scope(body_fn, "", [])
    invariant = [_resolve(plain, rets[k]) == ("arg", args[k]) for k in range(n)]
    counters = {k for k in range(n) if not invariant[k] and isinstance(inputs[k], ir.Value)
                and _is_counter(plain, rets[k], args[k])}
    cond_plain = function_scope(cond_fn, "", [])
    cond_args = [a.name for a in cond_fn.signature.input_arg]
    cond_ret = cond_fn.ret[cond_fn.signature.output_arg[0].name]
    leaves, complete = _bounds(cond_plain, cond_ret, cond_args, counters)
    leaves = [(j, bd) for j, bd in leaves if bd[0] == "const" or invariant[bd[1]]]
    shapes = [shape_of(s) for s in node.attr("output_shapes").list.shape] \
        if node.has("output_shapes") else [None] * n

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
        cond_init = _as_bool_scalar(ctx, _run_function(tr, cond_fn, node.name + "/cond/",
                                                       list(inputs))[0])

    # The body.
    iter_in = ir.Value(name=b.unique_name(f"{node.name}/iteration"),
                       type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([]))
    cond_in = ir.Value(name=b.unique_name(f"{node.name}/cond_in"),
                       type=ir.TensorType(ir.DataType.BOOL), shape=ir.Shape([]))
    graph = ir.Graph([iter_in, cond_in], [], nodes=[], name=b.unique_name(f"{node.name}/body"))
    bound_args, carried, lists = [], [], []
    for k, x in enumerate(inputs):
        if invariant[k]:
            bound_args.append(x)
        elif isinstance(x, TList):
            bound_args.append(BodyList(k, x))
            lists.append(k)
        elif isinstance(x, ir.Value):
            dims = shapes[k] if k < len(shapes) and shapes[k] is not None else ctx.shape(x)
            v = ir.Value(name=b.unique_name(f"{node.name}/{args[k]}"), type=x.type,
                         shape=None if dims is None else ir.Shape(
                             [d if d is not None and d >= 0 else None for d in dims]))
            graph.inputs.append(v)
            bound_args.append(v)
            carried.append(k)
        else:
            raise ctx.fail(f"loop variable {k} ({args[k]}) changes in the loop and is not a "
                           "tensor or a TensorList")
    with b.into(graph):
        outs = _run_function(tr, body_fn, node.name + "/body/", bound_args)
        if use_cond:
            cond_bound = [outs[k] if not invariant[k] else inputs[k] for k in range(n)]
            cond_out = _as_bool_scalar(ctx, _run_function(
                tr, cond_fn, node.name + "/body/cond/", cond_bound)[0])
        else:
            cond_out = ctx.const(np.asarray(True), "true")
        graph.outputs.append(_own(ctx, graph, cond_out))
        for k in carried:
            if not isinstance(outs[k], ir.Value):
                raise ctx.fail(f"loop variable {k} ({args[k]}) is a tensor before the loop "
                               "and not after an iteration")
            graph.outputs.append(_own(ctx, graph, outs[k]))
        scans = []
        for k in lists:
            out = outs[k]
            if not isinstance(out, BodyList) or out.slot != k or out.item is None:
                raise ctx.fail(f"TensorList loop variable {k} ({args[k]}) is not written once "
                               "per iteration (not supported)")
            last = _iteration_index(ctx, out.index, graph, inputs, carried, counters)
            if last is None:
                raise ctx.fail(f"TensorList loop variable {k} ({args[k]}) is written at an "
                               "index that is neither the iteration number nor a constant")
            graph.outputs.append(_own(ctx, graph, out.item))
            scans.append((k, last, out.item))
    _no_sources(graph)

    count = len(carried) + len(scans)
    with b.layer(node.name):
        result = b.op("Loop", trip, cond_init, *[inputs[k] for k in carried],
                      outputs=max(count, 1), body=graph)
    loop_outs = [result] if max(count, 1) == 1 else list(result)
    values = list(inputs)
    for k, out, body_in in zip(carried, loop_outs, graph.inputs[2:]):
        out.type, out.shape = body_in.type, body_in.shape
        values[k] = out
    for (k, last, item), out in zip(scans, loop_outs[len(carried):]):
        out.type = item.type
        out.shape = None if item.shape is None else ir.Shape([None, *item.shape.dims])
        stacked = last_element_list(ctx, out) if last else out
        values[k] = TList(stacked, element_shape=inputs[k].element_shape, dtype=inputs[k].dtype)
    b.layer_returns(node.name, [v for v in values if isinstance(v, ir.Value)])
    return values


def _iteration_index(ctx, index, graph, inputs, carried, counters):
    """False if ``index`` is the iteration number (a counter from 0), True if a constant
    (the list keeps the last element written), None otherwise."""
    if ctx.const_array(index) is not None:
        return True
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
