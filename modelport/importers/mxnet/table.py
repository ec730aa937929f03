"""The MXNet operator translation table.

A translator is ``fn(ctx, node, inputs) -> list of output values`` where ``node`` is a
:class:`~modelport.importers.mxnet.symbol.Node` (``node.attrs`` parses MXNet's parameter
strings), ``inputs`` the values of its inputs (weights included: they are initializers) and
``ctx`` a :class:`~modelport.importers.mxnet.load.Context` (graph builder, static shapes).
Register one for a custom operator::

    from modelport.importers.mxnet import mxnet_op

    @mxnet_op("MyDouble")
    def my_double(ctx, node, inputs):
        return [ctx.op("Mul", inputs[0], ctx.const(2.0))]
"""

from __future__ import annotations

from modelport.importers.optable import OpTable

mxnet_op = OpTable("MXNet operator")
