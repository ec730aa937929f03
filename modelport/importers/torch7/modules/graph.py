"""``nngraph.gModule``: a graph of nodes in ``forwardnodes`` (topologically sorted, as nngraph
runs them). Each node's ``data`` holds its module (none for the input, output and split
nodes), ``mapindex`` (the position of each parent's output in the node's input table) and,
for the nodes that ``split()`` makes, ``selectindex``. A node with one input gets that tensor,
with several the table of them; ``children`` are the nodes its output goes to.
"""

from __future__ import annotations

from modelport.errors import UnsafeModelError
from modelport.importers.torch7.reader import LuaFunction, LuaTable, TorchObject
from modelport.importers.torch7.table import torch7_module


def _get(ctx, m, table, key):
    value = table.get(key) if isinstance(table, (LuaTable, TorchObject)) else None
    if isinstance(value, LuaFunction):
        raise UnsafeModelError(
            f"module {m.name!r} ({m.class_name}): a graph node's {key!r} holds a Lua function; "
            "modelport never runs Lua code stored in a model", path=ctx.path)
    return value


@torch7_module("nngraph.gModule")
def gmodule(ctx, m, x):
    nodes = m.children("forwardnodes")
    innode = m.field("innode")
    outnode = m.field("outnode")
    in_data = _get(ctx, m, innode, "data")
    out_data = _get(ctx, m, outnode, "data")
    n_inputs = m.int("nInputs", None)
    if n_inputs is None:
        children = _get(ctx, m, innode, "children")
        n_inputs = len(children.array()) if isinstance(children, LuaTable) else 1
    if n_inputs != 1:
        raise m.fail(f"has {n_inputs} inputs; modelport reads Torch7 graphs with one input")
    if not nodes or not isinstance(in_data, LuaTable) or not isinstance(out_data, LuaTable):
        raise m.fail("is not a complete nngraph graph (no forwardnodes/innode/outnode)")

    inputs: dict[int, dict[int, object]] = {id(in_data): {1: x}}
    result = None
    for node in nodes:
        data = _get(ctx, m, node, "data")
        if not isinstance(data, LuaTable):
            raise m.fail("a graph node has no data")
        got = inputs.get(id(data), {})
        select = _get(ctx, m, data, "selectindex")
        module = _get(ctx, m, data, "module")
        if select is not None:
            if len(got) != 1 or not isinstance(got.get(1), list):
                raise m.fail("a split node does not receive one table")
            table = got[1]
            if not 1 <= int(select) <= len(table):
                raise m.fail(f"a split node selects {int(select)} of {len(table)}")
            output = table[int(select) - 1]
        else:
            if not got:
                raise m.fail("a graph node has no inputs (nnop parameter nodes are not "
                             "supported)")
            if sorted(got) != list(range(1, len(got) + 1)):
                raise m.fail("a graph node's inputs do not fill its input table")
            value = got[1] if len(got) == 1 else [got[i] for i in range(1, len(got) + 1)]
            if module is None:
                output = value
            elif isinstance(module, TorchObject):
                output = ctx.run(module, value)
            else:
                raise m.fail(f"a graph node's module is a {type(module).__name__}")
        if data is out_data:
            result = output
        children = _get(ctx, m, node, "children")
        for child in children.array() if isinstance(children, LuaTable) else []:
            child_data = _get(ctx, m, child, "data")
            mapindex = _get(ctx, m, child_data, "mapindex")
            index = mapindex.get(data) if isinstance(mapindex, LuaTable) else None
            if index is None:
                raise m.fail("a graph node's mapindex does not name its parent")
            slot = inputs.setdefault(id(child_data), {})
            if int(index) in slot:
                raise m.fail("a graph node's input is computed twice")
            slot[int(index)] = output
    if result is None:
        raise m.fail("the graph's output node is not among its forward nodes")
    return result
