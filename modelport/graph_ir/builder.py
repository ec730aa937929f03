"""GraphBuilder: how importers create onnx_ir graphs.

It adds what every importer needs on top of plain ``ir.Node``/``ir.Value``: unique, readable
value names, the current source layer stamped on each node, initializers (lazy or not), and
constants. Attributes are given as Python keyword arguments::

    b = GraphBuilder("lenet")
    x = b.input("data", np.float32, [1, 1, 28, 28])
    with b.layer("conv1"):
        w = b.initializer("conv1.weight", lazy_tensor(read_w, np.float32, (20, 1, 5, 5)))
        y = b.op("Conv", x, w, kernel_shape=[5, 5], strides=[1, 1])
    b.output(y, "prob")
    model = b.build()
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from modelport._version import __version__
from modelport.graph_ir.metadata import LAYER_SKIPS_META, LAYER_VALUES_META
from modelport.graph_ir.source import set_source

DEFAULT_OPSET = 17
PRODUCER_NAME = "modelport"

_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.:/\-]")


class GraphBuilder:
    """Builds one ``onnx_ir`` graph at ``opset`` (default 17): see the module's example.

    ``graph`` is the ``ir.Graph`` under construction and ``opset`` its default-domain opset;
    :meth:`build` wraps it in an ``ir.Model``.
    """

    def __init__(self, name: str = "main", *, opset: int = DEFAULT_OPSET) -> None:
        self.graph = ir.Graph(inputs=[], outputs=[], nodes=[], name=name, opset_imports={"": opset})
        self.opset = opset
        self._names: set[str] = set()
        self._counters: dict[str, int] = {}
        self._layer: str | None = None
        self._layer_values: dict[str, list[ir.Value]] = {}
        self._layer_skips: dict[str, str] = {}
        self._target: ir.Graph | None = None  # a subgraph (Loop/If body) being built

    # -- what each source layer returns (per-layer verification) -------------------------------
    def layer_returns(self, layer: str, values: Sequence[ir.Value]) -> None:
        """State that source layer ``layer`` returns ``values`` (in the source's order).

        Without it a layer maps to the outputs of the last node it created, which is wrong for
        a layer whose last node computes something else (a mask, say)."""
        self._layer_values[layer] = list(values)
        self._layer_skips.pop(layer, None)

    def layer_has_no_value(self, layer: str, reason: str) -> None:
        """State that ``layer`` has no value of its own in the graph, and why."""
        self._layer_skips[layer] = reason
        self._layer_values.pop(layer, None)

    # -- naming -------------------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        """``base`` made safe for a value name and unique in this graph (``base_1``, ...)."""
        base = _NAME_SAFE.sub("_", base) or "value"
        if base not in self._names:
            self._names.add(base)
            return base
        n = self._counters.get(base, 0)
        while True:
            n += 1
            candidate = f"{base}_{n}"
            if candidate not in self._names:
                self._counters[base] = n
                self._names.add(candidate)
                return candidate

    @contextlib.contextmanager
    def layer(self, name: str | None) -> Iterator[None]:
        """Nodes created inside this block record ``name`` as their source layer."""
        previous, self._layer = self._layer, name
        try:
            yield
        finally:
            self._layer = previous

    @contextlib.contextmanager
    def into(self, graph: ir.Graph) -> Iterator[ir.Graph]:
        """Nodes created inside this block go to ``graph`` (a Loop/If body); initializers
        stay in the main graph, whose values a subgraph may read."""
        previous, self._target = self._target, graph
        try:
            yield graph
        finally:
            self._target = previous

    @property
    def in_subgraph(self) -> bool:
        return self._target is not None

    @property
    def current_layer(self) -> str | None:
        return self._layer

    # -- graph interface ----------------------------------------------------------------------
    def input(
        self, name: str, dtype: Any, shape: Sequence[int | str | None] | None
    ) -> ir.Value:
        """Add a graph input of ``dtype`` (numpy or ``ir.DataType``) and ``shape`` (ints,
        names of symbolic dims, or None for unknown dims; None: unknown rank)."""
        value = ir.Value(
            name=self.unique_name(name),
            type=ir.TensorType(_ir_dtype(dtype)),
            shape=ir.Shape(list(shape)) if shape is not None else None,
        )
        self.graph.inputs.append(value)
        return value

    def output(self, value: ir.Value, name: str | None = None) -> ir.Value:
        """Mark ``value`` as a graph output, named ``name`` if given.

        A value that is already an input or output (or an initializer) is passed through an
        Identity so that every graph output has its own producer and name.
        """
        if (
            value in self.graph.outputs
            or value.producer() is None
            or (name and value.name != name and name in self._names)
        ):
            value = self.op("Identity", value, name=name or value.name)
        elif name and value.name != name:
            self._names.discard(value.name)
            value.name = self.unique_name(name)
        self.graph.outputs.append(value)
        return value

    def reduce_axes(self, op_type: str, axes: Sequence[int], name: str = "axes"
                    ) -> tuple[list[ir.Value], dict[str, Any]]:
        """The axes of a ``Reduce*`` node as this opset wants them: ``(inputs, attributes)``.

        ReduceSum takes its axes as an input from opset 13, every other Reduce* from opset 18;
        before that they are the ``axes`` attribute. Importers append the inputs after the
        data input and pass the attributes on, so one place knows the rule::

            extra, attrs = b.reduce_axes("ReduceMean", [1])
            y = b.op("ReduceMean", x, *extra, keepdims=1, **attrs)
        """
        axes = [int(a) for a in axes]
        if self.opset >= 18 or (op_type == "ReduceSum" and self.opset >= 13):
            return [self.const(np.array(axes, np.int64), name)], {}
        return [], {"axes": axes}

    def initializer(self, name: str, tensor: ir.TensorProtocol | np.ndarray) -> ir.Value:
        """Add a weight: a numpy array, or any ``onnx_ir`` tensor (a lazy one from
        :func:`~modelport.graph_ir.lazy_tensor` reads its bytes only when exported)."""
        if isinstance(tensor, np.ndarray):
            tensor = ir.Tensor(np.asarray(tensor, order="C"))  # keeps 0-d scalars 0-d
        unique = self.unique_name(name)
        value = ir.Value(
            name=unique,
            type=ir.TensorType(tensor.dtype),
            shape=ir.Shape(tensor.shape.dims),
            const_value=tensor,
        )
        if tensor.name != unique:
            tensor.name = unique
        self.graph.register_initializer(value)
        return value

    def const(self, array: Any, name: str = "const", dtype: Any = None) -> ir.Value:
        """A small constant (shapes, axes, scalars), stored as an initializer."""
        arr = np.asarray(array, dtype=dtype)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return self.initializer(name, arr)

    def op(
        self,
        op_type: str,
        *inputs: ir.Value | None,
        outputs: int | Sequence[str] = 1,
        domain: str = "",
        name: str | None = None,
        **attributes: Any,
    ) -> Any:
        """Append a node; returns its output Value, or a tuple of them if ``outputs`` > 1.

        ``name`` names the (first) output; nodes are named after the layer they belong to.
        """
        attrs = {k: v for k, v in attributes.items() if v is not None}
        if isinstance(outputs, int):
            count = outputs
            base = name or (f"{self._layer}/{op_type}" if self._layer else op_type)
            out_names = [base] + [f"{base}:{i}" for i in range(1, count)]
        else:
            count = len(outputs)
            out_names = list(outputs)
        out_values = [ir.Value(name=self.unique_name(n)) for n in out_names]
        node_base = f"{self._layer}/{op_type}" if self._layer else op_type
        node = ir.Node(
            domain,
            op_type,
            inputs=list(inputs),
            attributes=ir.convenience.convert_attributes(attrs),
            outputs=out_values,
            name=self._unique_node_name(node_base),
        )
        set_source(node, self._layer)
        (self._target if self._target is not None else self.graph).append(node)
        return out_values[0] if count == 1 else tuple(out_values)

    def _unique_node_name(self, base: str) -> str:
        key = "node:" + base
        n = self._counters.get(key, 0)
        self._counters[key] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def build(
        self,
        *,
        producer_version: str | None = None,
        doc: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ir.Model:
        """The finished ``ir.Model`` (producer modelport, IR version for the opset), with
        ``metadata`` as its metadata_props and the per-layer mapping that
        :meth:`layer_returns`/:meth:`layer_has_no_value` recorded."""
        model = ir.Model(
            self.graph,
            ir_version=8 if self.opset <= 17 else 10,
            producer_name=PRODUCER_NAME,
            producer_version=producer_version or __version__,
            doc_string=doc,
        )
        if metadata:
            model.metadata_props.update(metadata)
        if self._layer_values:
            model.meta[LAYER_VALUES_META] = dict(self._layer_values)
        if self._layer_skips:
            model.meta[LAYER_SKIPS_META] = dict(self._layer_skips)
        return model


def _ir_dtype(dtype: Any) -> ir.DataType:
    if isinstance(dtype, ir.DataType):
        return dtype
    return ir.DataType.from_numpy(np.dtype(dtype))
