"""The Torch7 module translation table.

A translator is ``fn(ctx, m, x) -> value``: ``m`` is the module (a :class:`~.load.Module`
giving typed access to its fields), ``x`` its input (an ``ir.Value``, or a list for modules
that take a table) and the result its output in the same form. Containers call
``ctx.run(child, x)``. Register one for a custom module::

    from modelport.importers.torch7 import torch7_module

    @torch7_module("nn.MyScale")
    def my_scale(ctx, m, x):
        return ctx.op("Mul", x, ctx.const(m.num("scale")), shape=ctx.shape(x))

Class names are registered with the ``nn.`` prefix; ``cudnn.``, ``cunn.`` and ``fbcunn.``
modules are looked up under ``nn.`` too.
"""

from __future__ import annotations

from modelport.importers.optable import OpTable

torch7_module = OpTable("Torch7 module")
